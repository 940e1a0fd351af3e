"""Transfers per second: the client calls employee A, A presses # 1 0 1, B takes the call.

Three SIPp parties per step, all signalling through Kamailio with media through rtpengine:

- the client (UAC on 127.0.0.2, the carrier trunk) calls the DID of extension 100 at `rate` calls/s,
  sends G.711 RTP and hangs up after `talk_ms` (sipp/xfer_client.xml);
- A (UAS at extension 100's contact on 127.0.0.3) answers, presses # 1 0 1 as RFC 4733 events, which
  rtpengine detects and reports to the controller, and hangs up `after_digits_ms` later (sipp/xfer_a.xml);
- B (UAS at extension 101's contact) gets the controller's INVITE, rings `ring_ms`, answers, echoes RTP
  and waits for the client's BYE (sipp/xfer_b.xml).

Blind (the default): A hangs up while B still rings; attended: B answers while A is still there. A
transfer succeeded when the client's call succeeded and B's SIPp counted a successful call (it was
called and got the client's BYE at the end): the step's successful transfers are the smaller of the
two counts. A and B are fresh SIPp instances per step (on the ports of extension 100's and 101's
static contacts), so every step's counts and CPU are its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import roundtrips
from benchmarks.environment import Environment, bench_config, uac_endpoint
from benchmarks.probes import ControllerProbe, KamailioProbe, RedisProbe, RtpengineProbe, udp_drops
from benchmarks.procstat import CpuMeter
from benchmarks.profiling import PySpy
from benchmarks.promhist import Histogram, counter, samples
from benchmarks.results import StepResult, TransferFigures
from benchmarks.settings import DID, PHONES_IP, TARGET, Settings
from benchmarks.sipp_load import SCENARIOS, Endpoint, SippUac, SippUas
from benchmarks.steps import (
    NoCallPlaced,
    StepStart,
    controller_latency,
    judge,
    ping_summary,
    setup_percentiles,
    with_one_retry,
)
from benchmarks.watch import watch_until_done
from controller.devstack.stack import LocalStack, StackOptions, free_media_port, free_port

CLIENT_SCENARIO = SCENARIOS / "xfer_client.xml"
A_SCENARIO = SCENARIOS / "xfer_a.xml"
B_SCENARIO = SCENARIOS / "xfer_b.xml"
KINDS = ("blind", "attended")


def timeline(kind: str, call_seconds: float) -> dict[str, int]:
    """When each party acts, in ms. A greets the client first: its digits start `first_digit_ms` after its
    ACK, `digit_gap_ms` apart (each RFC 4733 event lasts 140 ms), so the number is complete about 2.5 s into
    the call. (The controller takes a digit only once it has read the call's "answered" notification from
    Kamailio: a `#` within a few hundred ms of the answer is lost when that notification runs late.)"""
    if kind not in KINDS:
        raise ValueError(f"transfer kind {kind!r}: choose from {', '.join(KINDS)}")
    talk_ms = round(call_seconds * 1000)
    blind = kind == "blind"
    values = {
        "talk_ms": talk_ms, "first_digit_ms": 1500, "digit_gap_ms": 300,
        # blind: A leaves about 0.5 s after its last digit ended, B rings 1.5 s after its INVITE;
        # attended: B answers after 0.3 s and talks with A, who leaves about 1.9 s after the last digit
        "after_digits_ms": 700 if blind else 2000, "ring_ms": 1500 if blind else 300,
    }
    last_digit = values["first_digit_ms"] + 3 * values["digit_gap_ms"]
    a_leaves = last_digit + values["after_digits_ms"]
    b_answers = last_digit + 140 + values["ring_ms"]
    if talk_ms < max(a_leaves, b_answers) + 1000:
        raise ValueError(f"a {call_seconds:g} s client call is too short for {kind} transfers: A leaves "
                         f"{a_leaves} ms and B answers about {b_answers} ms after A answered, and the client should "
                         "talk to B for a second at least")
    values["bye_timeout_ms"] = talk_ms + 10_000  # B gives up waiting for the client's BYE
    return values


def _endpoint(taken: set[int]) -> Endpoint:
    for _ in range(20):
        endpoint = Endpoint(PHONES_IP, free_port(address=PHONES_IP), free_media_port(PHONES_IP))
        ports = {endpoint.port, endpoint.media_port, endpoint.media_port + 2}
        if not ports & taken:
            taken |= ports
            return endpoint
    raise RuntimeError(f"no free SIP/media ports on {PHONES_IP}")


class TransferEnvironment(Environment):
    """The full stack with extension 100 (A) and 101 (B) at SIPp parties that each step starts afresh."""

    def __init__(self, settings: Settings, directory: Path):
        # not Environment.__init__: it would create the one answering UAS of the call modes
        self.full = True
        self.dir = directory
        self.timeline = timeline(settings.transfer_kind, settings.transfer_call_seconds)
        taken: set[int] = set()
        self.a_endpoint, self.b_endpoint = _endpoint(taken), _endpoint(taken)
        data = bench_config(self.a_endpoint, settings)  # extension 100 -> A
        b = self.b_endpoint
        data["tenants"]["acme"]["extensions"][TARGET]["contact"] = f"sip:{TARGET}@{b.ip}:{b.port}"
        self.stack = LocalStack(data, directory / "stack", StackOptions(
            with_controller=True, kamailio_log_level=1, rtpengine_log_level=4,
            kamailio_children=settings.kamailio_children, kamailio_shm_mb=settings.kamailio_shm_mb,
            baseline_hostport=f"{self.a_endpoint.ip}:{self.a_endpoint.port}",
        ))
        self.uas_totals: dict[str, int] = {}
        self.parties: list[SippUas] = []
        self._closing: list = []

    def start(self) -> TransferEnvironment:
        try:
            self.stack.start()
            self.kamailio = self._closes(KamailioProbe(self.stack))
            self.rtpengine = RtpengineProbe(self.stack)
            self.redis = self._closes(RedisProbe(self.stack))
            self.controller = self._closes(ControllerProbe(self.stack))
            self.stack_pids = {name: [p.pid] for name, p in self.stack.processes.items() if p.pid}
            self.meter = CpuMeter(self.stack_pids)
        except BaseException:
            self.stop()
            raise
        return self

    def start_parties(self, workdir: Path) -> tuple[SippUas, SippUas]:
        """A and B for one step; their statistics and logs go to the step's directory."""
        self.stop_parties()
        a = SippUas(self.a_endpoint, workdir, scenario=A_SCENARIO, values=self.timeline, name="a", rtp_echo=False)
        b = SippUas(self.b_endpoint, workdir, scenario=B_SCENARIO, values=self.timeline, name="b")
        self.parties = [a, b]
        a.start()
        b.start()
        return a, b

    def stop_parties(self) -> None:
        for party in self.parties:
            party.stop()
        self.parties = []

    def stop(self) -> None:
        for probe in self._closing:
            probe.close()
        try:
            self.stop_parties()
        finally:
            self.stack.stop()

    def udp_sockets(self, uac: Endpoint) -> dict[str, tuple[str, int]]:
        node = self.stack.node
        return {"kamailio": (node.sip.address, node.sip.port), "sipp_uac": (uac.ip, uac.port),
                "sipp_a": (self.a_endpoint.ip, self.a_endpoint.port),
                "sipp_b": (self.b_endpoint.ip, self.b_endpoint.port),
                "rtpengine_ng": (node.rtpengine.ng_address, node.rtpengine.ng_port)}


def run_transfer_step(env: TransferEnvironment, settings: Settings, rate: float, workdir: Path, *,
                      calls: int | None = None, profiler: PySpy | None = None) -> StepResult:
    calls = calls or max(1, round(rate * settings.step_seconds))
    return with_one_retry(lambda where, prof: _attempt(env, settings, rate, calls, where, prof), workdir, profiler)


def _attempt(env: TransferEnvironment, settings: Settings, rate: float, calls: int, workdir: Path,
             profiler: PySpy | None) -> StepResult:
    a, b = env.start_parties(workdir)
    try:
        uac = SippUac(uac_endpoint(), env.stack.sip_hostport, DID, workdir, rate=rate, calls=calls,
                      call_ms=env.timeline["talk_ms"], scenario=CLIENT_SCENARIO,
                      max_open_calls=math.ceil(2 * rate * (env.timeline["talk_ms"] / 1000 + 5)) + 10)
        sockets = env.udp_sockets(uac.endpoint)
        meter = CpuMeter(env.stack_pids | {"sipp_a": [a.pid], "sipp_b": [b.pid]})
        before = StepStart(metrics=env.controller.metrics(), media=env.rtpengine.totals(), redis=env.redis.sample(),
                        drops=udp_drops(sockets), cpu=meter.snapshot(), trips=roundtrips.take(env))
        uac.start()
        try:
            if profiler:
                profiler.start()
            return _measure(env, settings, uac, before, sockets, meter, a, b)
        finally:
            if uac.poll() is None:
                uac.kill()
    finally:
        env.stop_parties()


def _settled_counts(party: SippUas, timeout: float) -> dict[str, int]:
    """The party's counters once every call it received has ended (or `timeout` passed): SIPp writes its
    statistics once a second, and counts a call only after its final timewait."""
    deadline = time.monotonic() + timeout
    while True:
        totals = party.totals()
        if totals["IncomingCall"] and totals["SuccessfulCall"] + totals["FailedCall"] >= totals["IncomingCall"]:
            return totals
        if time.monotonic() > deadline:
            return totals
        time.sleep(0.25)


def _measure(env: TransferEnvironment, settings: Settings, uac: SippUac, before: StepStart,
             sockets: dict[str, tuple[str, int]], meter: CpuMeter, a: SippUas, b: SippUas) -> StepResult:
    rate, calls = uac.rate, uac.calls
    watch = watch_until_done(env, uac, sockets, before.drops, backlog=True)
    sipp = uac.result()
    if sipp.created == 0:
        raise NoCallPlaced()
    drained = env.settle()
    drops_after = watch.drops | udp_drops(sockets)
    a_counts = _settled_counts(a, 3.0)
    b_counts = _settled_counts(b, 3.0)
    cpu = CpuMeter.usage(before.cpu, meter.snapshot())  # before A and B exit: /proc loses their CPU then
    media_after = env.rtpengine.totals()
    after = env.controller.metrics()
    trips = roundtrips.per_unit(before.trips, roundtrips.take(env), min(sipp.successful, b_counts["SuccessfulCall"]))

    hist = Histogram.parse(after, "xfer_dtmf_to_target_invite_seconds") - Histogram.parse(
        before.metrics, "xfer_dtmf_to_target_invite_seconds")
    p50, _ = hist.quantile(0.50)
    p99, p99_open = hist.quantile(0.99)
    outcomes = {}
    for labels, _value in samples(after, "xfer_transfers_total"):
        outcome = labels.get("outcome", "?")
        delta = counter(after, "xfer_transfers_total", outcome=outcome) - counter(
            before.metrics, "xfer_transfers_total", outcome=outcome)
        if delta:
            outcomes[outcome] = round(delta)
    figures = TransferFigures(
        kind=settings.transfer_kind, client_ok=sipp.successful, client_failed=sipp.failed,
        a_calls=a_counts["IncomingCall"], a_ok=a_counts["SuccessfulCall"], a_failed=a_counts["FailedCall"],
        b_calls=b_counts["IncomingCall"], b_ok=b_counts["SuccessfulCall"], b_failed=b_counts["FailedCall"],
        started=round(_delta(before.metrics, after, "xfer_transfers_started_total")), outcomes=outcomes,
        digits=round(_delta(before.metrics, after, "xfer_dtmf_digits_total")),
        dtmf_count=round(hist.count), dtmf_p50_ms=None if p50 is None else p50 * 1000,
        dtmf_p99_ms=None if p99 is None else p99 * 1000, dtmf_p99_is_lower_bound=p99_open,
        dtmf_mean_ms=None if hist.mean is None else hist.mean * 1000, timeline_ms=dict(env.timeline),
    )
    successful = min(sipp.successful, figures.b_ok)
    causes = {f"client {k}": v for k, v in sipp.failure_causes.items()}
    not_called = max(0, sipp.created - figures.b_calls)
    for name, value in (("B never called", not_called), ("B failed", figures.b_failed),
                        ("A failed", figures.a_failed)):
        if value:
            causes[name] = value

    step = StepResult(
        mode="transfers", rate=rate, calls=calls, call_s=settings.transfer_call_seconds, created=sipp.created,
        successful=successful, failed=max(calls, sipp.created) - successful, failure_causes=causes,
        retransmissions=sipp.retransmissions, achieved_rate=sipp.achieved_rate, sipp_exit=sipp.exit_code,
        setup_ms=setup_percentiles(sipp),
        setup_tick_ms=0, wall_s=cpu.wall_s, cpu_s=cpu.groups | {"sipp_uac": sipp.cpu_s},
        others_cpu_s=cpu.others_s, top_others=cpu.top_others, machine_busy_s=cpu.machine_busy_s,
        machine_capacity_s=cpu.machine_capacity_s, peak_dialogs=watch.peak_dialogs,
        kamailio_shm_max=watch.shm_max,
        media={k: v - before.media.get(k, 0) for k, v in media_after.items() if k != "sessions"},
        sip_drops={name: n - before.drops.get(name, 0) for name, n in drops_after.items()},
        drained=drained, ng_ping_ms=ping_summary(watch), max_backlog=watch.max_backlog,
        end_backlog=watch.end_backlog,
        files=sipp.files | {"a_stat": str(a.stat_path), "b_stat": str(b.stat_path)}, transfer=figures,
        round_trips=trips,
    )
    step.controller = controller_latency(before.metrics, after, env.redis.sample().inbound_backlog)
    notified = _delta(before.metrics, after, "xfer_notifications_total")
    step.notifications_per_call = notified / sipp.created if sipp.created else 0.0
    # the controller keeping up is what decides whether a longer load would still transfer: a stricter limit
    criteria = replace(settings.criteria, max_controller_lag_s=settings.criteria.max_transfer_lag_s)
    judge(step, criteria, killed=sipp.killed)
    return step


def _delta(before: str, after: str, name: str) -> float:
    return counter(after, name) - counter(before, name)
