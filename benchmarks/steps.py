"""One measured step: `rate` calls/s for a few seconds against a running Environment, and its verdict."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import roundtrips
from benchmarks.environment import Environment, uac_endpoint
from benchmarks.probes import RedisSample, udp_drops
from benchmarks.procstat import CpuMeter, CpuSnapshot
from benchmarks.profiling import PySpy
from benchmarks.promhist import Histogram, counter, samples
from benchmarks.results import ControllerLatency, Criteria, RedisMemory, StepResult
from benchmarks.roundtrips import RoundTripSnapshot
from benchmarks.settings import DID, Settings
from benchmarks.sipp_load import SippUac, UacResult, percentile
from benchmarks.watch import Watch, watch_until_done


@dataclass(frozen=True)
class StepStart:
    """What the probes read just before a step's first call."""

    metrics: str
    media: dict[str, int]
    redis: RedisSample
    drops: dict[str, int]
    cpu: CpuSnapshot
    trips: RoundTripSnapshot = field(default_factory=RoundTripSnapshot)


def run_step(env: Environment, settings: Settings, mode: str, rate: float, workdir: Path, *,
             calls: int | None = None, profiler: PySpy | None = None) -> StepResult:
    calls = calls or max(1, round(rate * settings.step_seconds))
    return with_one_retry(lambda where, prof: _attempt(env, settings, mode, rate, calls, where, prof),
                          workdir, profiler)


def with_one_retry(attempt: Callable[[Path, PySpy | None], StepResult], workdir: Path,
                   profiler: PySpy | None) -> StepResult:
    """Run a step; if SIPp placed no call, once more on fresh ports (in `workdir`/retry, unprofiled)."""
    for where, prof in ((workdir, profiler), (workdir / "retry", None)):
        try:
            return attempt(where, prof)
        except NoCallPlaced:
            continue
    raise RuntimeError(f"SIPp placed no call, twice; see {workdir}")


def _attempt(env: Environment, settings: Settings, mode: str, rate: float, calls: int, workdir: Path,
             profiler: PySpy | None) -> StepResult:
    uac = SippUac(uac_endpoint(), env.stack.sip_hostport, DID, workdir, rate=rate, calls=calls,
                  call_ms=round(settings.call_seconds * 1000))
    sockets = env.udp_sockets(uac.endpoint)
    before = StepStart(
        metrics=env.controller.metrics() if env.controller else "", media=env.rtpengine.totals(),
        redis=env.redis.sample(), drops=udp_drops(sockets), cpu=env.meter.snapshot(), trips=roundtrips.take(env))
    uac.start()
    try:
        if profiler:
            profiler.start()
        return _measure(env, settings, mode, uac, before, sockets)
    finally:
        if uac.poll() is None:  # interrupted (Ctrl-C, a probe failed): stop our SIPp, by its PID
            uac.kill()


class NoCallPlaced(Exception):
    """SIPp exited before its first call (e.g. its port was taken between choosing and binding it)."""


def _measure(env: Environment, settings: Settings, mode: str, uac: SippUac, before: StepStart,
             sockets: dict[str, tuple[str, int]]) -> StepResult:
    rate, calls = uac.rate, uac.calls
    # concurrency has ramped up once the first calls start hanging up; sample Redis then
    steady_at = max(0.5, min(settings.call_seconds + 1.5, uac.generation_s - 0.5))
    redis_steady: list[tuple[RedisSample, int, float]] = []

    def sample_redis_once_steady(elapsed: float, dialogs: int) -> None:
        if env.full and not redis_steady and elapsed >= steady_at:
            redis_steady.append((env.redis.sample(), dialogs, elapsed))

    watch = watch_until_done(env, uac, sockets, before.drops, backlog=env.full, on_probe=sample_redis_once_steady)
    sipp = uac.result()
    if sipp.created == 0:
        raise NoCallPlaced()
    drained = env.settle()
    drops_after = watch.drops | udp_drops(sockets)
    cpu = CpuMeter.usage(before.cpu, env.meter.snapshot())
    media_after = env.rtpengine.totals()
    trips = roundtrips.per_unit(before.trips, roundtrips.take(env), sipp.successful)

    step = StepResult(
        mode=mode, rate=rate, calls=calls, call_s=settings.call_seconds, created=sipp.created,
        successful=sipp.successful, failed=sipp.failed, failure_causes=sipp.failure_causes,
        retransmissions=sipp.retransmissions, achieved_rate=sipp.achieved_rate, sipp_exit=sipp.exit_code,
        setup_ms=setup_percentiles(sipp),
        setup_tick_ms=math.gcd(*sipp.setup_ms) if any(sipp.setup_ms) else 0,
        wall_s=cpu.wall_s, cpu_s=cpu.groups | {"sipp_uac": sipp.cpu_s}, others_cpu_s=cpu.others_s,
        top_others=cpu.top_others, machine_busy_s=cpu.machine_busy_s, machine_capacity_s=cpu.machine_capacity_s,
        peak_dialogs=watch.peak_dialogs, kamailio_shm_max=watch.shm_max,
        media={k: v - before.media.get(k, 0) for k, v in media_after.items() if k != "sessions"},
        sip_drops={name: n - before.drops.get(name, 0) for name, n in drops_after.items()},
        drained=drained, ng_ping_ms=ping_summary(watch), max_backlog=watch.max_backlog,
        end_backlog=watch.end_backlog, files=sipp.files, round_trips=trips,
    )
    if env.controller:
        after = env.controller.metrics()
        step.controller = controller_latency(before.metrics, after, env.redis.sample().inbound_backlog)
        notified = counter(after, "xfer_notifications_total") - counter(before.metrics, "xfer_notifications_total")
        step.notifications_per_call = notified / sipp.created if sipp.created else 0.0
    if redis_steady:
        sample, dialogs, at = redis_steady[0]
        r0 = before.redis
        step.redis = RedisMemory(
            used_memory_delta=sample.used_memory - r0.used_memory, concurrent_calls=dialogs,
            conversation_records=max(0, sample.keys - r0.keys) // 2,  # a hash + a call-id index
            streams_delta=sample.events_bytes + sample.inbound_bytes - r0.events_bytes - r0.inbound_bytes,
            events_added=sample.events_len - r0.events_len,
            events_bytes_delta=sample.events_bytes - r0.events_bytes,
            calls_started=min(calls, round(rate * at)),
        )
    judge(step, settings.criteria, killed=sipp.killed)
    return step


def ping_summary(watch: Watch) -> dict[str, float | None]:
    return {"p50": percentile(watch.pings, 50), "max": max(watch.pings, default=None)}


def setup_percentiles(sipp: UacResult) -> dict[str, float | None]:
    values = {name: percentile(sipp.setup_ms, q) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}
    return values | {"max": float(max(sipp.setup_ms)) if sipp.setup_ms else None}


def controller_latency(before: str, after: str, backlog: int) -> ControllerLatency:
    """The step's share of the controller's route.invite histogram and error counters. A controller that no
    longer answers callbacks (Kamailio routes calls itself: controller/proxy) has no such histogram: then
    no latency (None) and 0 callbacks, the error counters as ever."""
    hist = Histogram.parse(after, "xfer_callback_seconds", method="route.invite") - Histogram.parse(
        before, "xfer_callback_seconds", method="route.invite")
    p50, _ = hist.quantile(0.50)
    p99, p99_open = hist.quantile(0.99)
    errors = {}
    for labels, _value in samples(after, "xfer_errors_total"):
        component = labels.get("component", "?")
        delta = counter(after, "xfer_errors_total", component=component) - counter(
            before, "xfer_errors_total", component=component)
        if delta:
            errors[component] = round(delta)
    return ControllerLatency(
        callbacks=round(hist.count),
        p50_ms=None if p50 is None else p50 * 1000, p99_ms=None if p99 is None else p99 * 1000,
        p99_is_lower_bound=p99_open, mean_ms=None if hist.mean is None else hist.mean * 1000,
        errors=sum(errors.values()), notification_backlog=backlog, errors_by_component=errors,
    )


def judge(step: StepResult, criteria: Criteria, *, killed: bool = False) -> None:
    reasons = []
    if step.success_pct < criteria.min_success_pct:
        causes = ", ".join(f"{k} {v}" for k, v in step.failure_causes.items())
        reasons.append(f"{step.success_pct:.2f} % successful (< {criteria.min_success_pct:g} %)"
                       + (f": {causes}" if causes else ""))
    p99 = step.setup_ms["p99"]
    if p99 is not None and p99 > criteria.max_setup_p99_ms:
        reasons.append(f"setup p99 {p99:.0f} ms (> {criteria.max_setup_p99_ms:g} ms)")
    if step.achieved_rate < criteria.min_rate_fraction * step.rate and step.successful > 1:
        reasons.append(f"SIPp placed only {step.achieved_rate:.0f} of {step.rate:g} calls/s")
    if killed:
        reasons.append("SIPp did not finish within the step's time limit")
    step.passed = not reasons
    lag = step.controller_lag_s
    if lag is not None:
        # not a call criterion: the calls went fine, but a consumer that falls behind cannot run for hours
        step.keeps_up = lag <= criteria.max_controller_lag_s
        if not step.keeps_up:
            reasons.append(f"the controller fell {lag:.1f} s behind Kamailio's notifications "
                           f"(> {criteria.max_controller_lag_s:g} s)")
    step.reasons = reasons
