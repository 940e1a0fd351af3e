"""Calls per second of the full stack (Kamailio + rtpengine + Redis + controller) against a plain
Kamailio + rtpengine baseline, and transfers per second of the full stack, in one bounded run on this
machine.

  python -m benchmarks.run            rate ladder per mode, writes docs/BENCHMARKS.md (10-15 minutes)
  python -m benchmarks.run --smoke    one short step per mode; report in the run directory only
  python -m benchmarks.run --modes transfers    the transfer ladder alone (about 4-5 minutes)

Per mode: start a LocalStack (baseline: with_controller=False), one SIPp UAS that echoes RTP, then
step the call rate up with a fresh SIPp UAC per step (SIPp UAC 127.0.0.2 -> Kamailio -> UAS
127.0.0.3, calls of a few seconds with G.711 RTP through rtpengine) until a step misses a criterion;
then refine between the last good and the first bad rate. Every process is started here and stopped
by PID; every step has a hard time limit.

Transfers (benchmarks/transfers.py): the full stack with three SIPp parties per step (the client, employee
A who presses # 1 0 1 and hangs up, the target B), stepping transfers/s the same way, on a budget of its
own (--transfer-budget-seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import machine
from benchmarks.environment import Environment
from benchmarks.profiling import PySpy, pyspy_path
from benchmarks.report import render
from benchmarks.results import BenchResult, ModeResult, ProfileSummary, StepResult, mode_from_json
from benchmarks.settings import (
    DEFAULT_RATES,
    DEFAULT_TRANSFER_RATES,
    TRANSFER_WARMUP_RATE,
    WARMUP_RATE,
    Settings,
)
from benchmarks.steps import run_step
from benchmarks.transfers import KINDS, TransferEnvironment, run_transfer_step, timeline
from controller.devstack import stack as stack_module
from controller.devstack.stack import REPO_ROOT

DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
CALL_MODES = ("baseline", "full")
TRANSFERS = "transfers"  # rated in transfers/s, reported apart (BenchResult.transfers), not in the ratio
MODES = (*CALL_MODES, TRANSFERS)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class ModeRunner:
    """The rate ladder of one mode: step up until a step misses, then bisect; restart after a collapse."""

    unit = "calls/s"
    rates_flag, budget_flag = "--max-rate", "--budget-seconds"

    def __init__(self, mode: str, settings: Settings, repeat: int = 0):
        self.mode = mode
        self.settings = settings
        # a repeat of the mode in the same run gets a directory of its own
        self.dir = settings.run_dir / (mode if repeat == 0 else f"{mode}-{repeat + 1}")
        self.result = ModeResult(mode, run_dir=str(self.dir))
        self.env: Environment | None = None
        self.starts = 0
        self.rates = settings.rates

    @property
    def step_cost_s(self) -> float:
        return self.settings.step_cost_s

    @property
    def port_limit(self) -> float:
        return self.settings.max_rate_for_ports()

    def make_environment(self, directory: Path) -> Environment:
        return Environment(self.mode == "full", self.settings, directory).start()

    def warm_up(self, directory: Path) -> None:
        # unmeasured: HTTP keep-alive connections, Python imports and caches are warm after it
        run_step(self.env, self.settings, self.mode, WARMUP_RATE, directory / "warmup", calls=round(2 * WARMUP_RATE))

    def run_one(self, env: Environment, rate: float, workdir: Path, profiler: PySpy | None) -> StepResult:
        return run_step(env, self.settings, self.mode, rate, workdir, profiler=profiler)

    def start_environment(self) -> Environment:
        self.stop_environment()
        self.starts += 1
        directory = self.dir if self.starts == 1 else self.dir / f"restart-{self.starts - 1}"
        say(f"{self.mode}: starting the stack in {directory}")
        self.env = self.make_environment(directory)
        if self.settings.warmup:
            self.warm_up(directory)
        return self.env

    def stop_environment(self) -> None:
        if self.env is not None:
            env, self.env = self.env, None
            env.stop()
            for key, value in env.uas_totals.items():
                self.result.uas_totals[key] = self.result.uas_totals.get(key, 0) + value

    def step(self, rate: float, label: str | None = None, profiler: PySpy | None = None) -> StepResult:
        env = self.env or self.start_environment()
        step = self.run_one(env, rate, env.dir / (label or f"{rate:g}cps"), profiler)
        if not step.drained:
            # an overloaded step leaves dialogs (and retransmissions) behind: the next step gets a fresh stack
            step.reasons.append("stack still busy 10 s after the step: restarted before the next one")
            self.stop_environment()
        return step

    def run_ladder(self, deadline: float) -> None:
        last_good, first_bad = 0.0, None
        for rate in self.rates:
            if why := self._does_not_fit(rate, deadline):
                self.result.stop_reason = why
                break
            step = self._record(self.step(rate))
            if step.passed:
                last_good = rate
                continue
            first_bad = rate
            self.result.stop_reason = f"{rate:g} {self.unit} missed: {'; '.join(step.reasons)}"
            break
        else:
            self.result.stop_reason = (f"every rate up to {self.rates[-1]:g} {self.unit} passed "
                                       f"(raise {self.rates_flag})")
        # bisect between the last good and the first bad rate: a coarse ladder would blur the ratio
        if first_bad is not None:
            self._bisect(last_good, first_bad, lambda step: step.passed, deadline)
        # the full stack: also where the controller stops keeping up with Kamailio's notifications
        ordered = sorted(self.result.steps, key=lambda step: step.rate)
        lagging = next((step for step in ordered if step.passed and step.keeps_up is False), None)
        if lagging is not None:
            good = self.result.sustained
            self._bisect(good.rate if good else 0.0, lagging.rate,
                         lambda step: step.passed and step.keeps_up is not False, deadline)

    def _bisect(self, good: float, bad: float, ok: Callable[[StepResult], bool], deadline: float) -> None:
        """Up to `refine` steps between a good and a bad rate, as long as time allows."""
        for _ in range(self.settings.refine):
            rate = round((good + bad) / 2 / 5) * 5
            if rate <= good or rate >= bad or bad - good < max(10, 0.1 * good):
                return
            if why := self._does_not_fit(rate, deadline):
                self.result.notes.append(f"refinement stopped: {why}")
                return
            if ok(self._record(self.step(rate))):
                good = rate
            else:
                bad = rate

    def _does_not_fit(self, rate: float, deadline: float) -> str | None:
        s = self.settings
        if rate > self.port_limit:
            return (f"{rate:g} {self.unit} would need more than the rtpengine port range "
                    f"{s.rtp_ports[0]}-{s.rtp_ports[1]} (--rtp-ports)")
        restart = 0 if self.env else 25  # a fresh stack and its warm-up
        if time.monotonic() + self.step_cost_s + restart > deadline:
            return f"time budget spent before {rate:g} {self.unit} ({self.budget_flag})"
        return None

    def _record(self, step: StepResult) -> StepResult:
        self.result.steps.append(step)
        setup = step.setup_ms
        say(f"{self.mode:8} {step.rate:6g} cps: {step.successful}/{step.calls} ok ({step.success_pct:.2f} %), "
            f"placed {step.achieved_rate:.0f}/s, setup p50/p99 {_ms(setup['p50'])}/{_ms(setup['p99'])} ms, "
            f"CPU {sum(step.cpu_s.values()) / step.wall_s:.2f} cores (others {step.others_cores:.2f}) "
            f"-> {('ok ' if step.passed else 'MISSED: ') + '; '.join(step.reasons)}")
        return step

    def run_profile(self, deadline: float) -> None:
        """One extra, unrated step at the rated load with py-spy sampling the controller."""
        rated = self.result.rated
        rate = rated.rate if rated else self.rates[0]
        if pyspy_path() is None:
            self.result.profile = ProfileSummary(rate, 0, 0.0, [], [], [], "", error=(
                "py-spy is not installed: `.venv/bin/python -m pip install py-spy` (a profiling tool only)"))
            return
        if time.monotonic() + self.step_cost_s > deadline:
            self.result.profile = ProfileSummary(rate, 0, 0.0, [], [], [], "", error="no time left in the budget")
            return
        env = self.env or self.start_environment()
        pid = env.stack.processes["controller"].pid
        assert pid is not None
        spy = PySpy(pid, self.settings.step_seconds, env.dir / "profile" / "controller.pyspy.txt")
        step = self.step(rate, label="profile", profiler=spy)
        outcome = f"{step.successful}/{step.calls} calls successful"
        try:
            prof = spy.finish()
        except (RuntimeError, OSError) as exc:
            self.result.profile = ProfileSummary(rate, 0, 0.0, [], [], [], "", error=str(exc), outcome=outcome)
            return
        share = step.cpu_s.get("controller", 0.0) / step.wall_s if step.wall_s else 0.0
        self.result.profile = ProfileSummary(rate, prof.samples, share, prof.top_self, prof.top_own_code,
                                             prof.by_package, prof.raw_path, outcome=outcome)
        say(f"profiled the controller at {rate:g} {self.unit} ({outcome}): {prof.samples} samples, "
            f"{share:.2f} of a core")


class TransferRunner(ModeRunner):
    """The transfer ladder: same stepping and bisection, other parties, rates and step function."""

    unit = "transfers/s"
    rates_flag, budget_flag = "--transfer-rates", "--transfer-budget-seconds"

    def __init__(self, settings: Settings, repeat: int = 0):
        super().__init__(TRANSFERS, settings, repeat)
        self.rates = settings.transfer_rates

    @property
    def step_cost_s(self) -> float:
        return self.settings.transfer_step_cost_s

    @property
    def port_limit(self) -> float:
        return self.settings.transfer_port_limit()

    def make_environment(self, directory: Path) -> Environment:
        return TransferEnvironment(self.settings, directory).start()

    def warm_up(self, directory: Path) -> None:
        run_transfer_step(self.env, self.settings, TRANSFER_WARMUP_RATE, directory / "warmup",
                          calls=round(TRANSFER_WARMUP_RATE))

    def run_one(self, env: Environment, rate: float, workdir: Path, profiler: PySpy | None) -> StepResult:
        assert isinstance(env, TransferEnvironment)
        return run_transfer_step(env, self.settings, rate, workdir, profiler=profiler)

    def _record(self, step: StepResult) -> StepResult:
        self.result.steps.append(step)
        t = step.transfer
        assert t is not None
        cores = sum(step.cpu_s.values()) / step.wall_s if step.wall_s else 0.0
        say(f"{self.mode:9} {step.rate:5g}/s: {step.successful}/{step.calls} transfers ok ({step.success_pct:.2f} %; "
            f"client {t.client_ok}, B {t.b_ok}/{t.b_calls}, completed {t.completed}), placed "
            f"{step.achieved_rate:.0f}/s, DTMF->INVITE p50/p99 {_ms(t.dtmf_p50_ms)}/{_ms(t.dtmf_p99_ms)} ms, "
            f"CPU {cores:.2f} cores (others {step.others_cores:.2f}) "
            f"-> {('ok ' if step.passed else 'MISSED: ') + '; '.join(step.reasons)}")
        return step


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def median_run(found: list[ModeResult]) -> ModeResult:
    """The repeat whose highest passing rate is the median (the lower middle one of an even count): its
    steps are the ones the report shows; the spread of all repeats is shown beside it."""
    ordered = sorted(found, key=lambda mode: mode.max_rate)
    return ordered[(len(ordered) - 1) // 2]


def run_mode(mode: str, settings: Settings, deadline: float, repeat: int = 0) -> ModeResult:
    runner = TransferRunner(settings, repeat) if mode == TRANSFERS else ModeRunner(mode, settings, repeat)
    try:
        runner.start_environment()
        runner.run_ladder(deadline)
        if mode in ("full", TRANSFERS) and settings.profile:
            runner.run_profile(deadline + 30)
    except Exception as exc:  # a broken stack or probe must still leave a report behind
        error_file = runner.dir / "error.txt"
        error_file.parent.mkdir(parents=True, exist_ok=True)
        error_file.write_text(traceback.format_exc())
        first_line = (str(exc).strip().splitlines() or [""])[0]
        runner.result.stop_reason = f"error: {type(exc).__name__}: {first_line} (see {error_file})"
        say(f"{mode}: {runner.result.stop_reason}")
    finally:
        runner.stop_environment()
    return runner.result


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="one short low-rate step per mode (a few seconds)")
    p.add_argument("--max-rate", type=float, default=1000, help="highest rate of the ladder, calls/s")
    p.add_argument("--rates", help="explicit comma-separated ladder of calls/s (overrides the default)")
    p.add_argument("--step-seconds", type=float, default=10, help="seconds of new calls per step")
    p.add_argument("--call-seconds", type=float, default=3, help="length of each call, with RTP")
    p.add_argument("--refine", type=int, default=3, help="bisection steps after the first missed rate")
    p.add_argument("--repeats", type=int, default=3,
                   help="ladders per mode (the report shows the median run and the spread of all; 1 for a quick look)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--rtp-ports", default="10000-19999", help="rtpengine media port range for the benchmark")
    p.add_argument("--kamailio-children", type=int, default=4)
    p.add_argument("--kamailio-shm-mb", type=int, default=256)
    p.add_argument("--budget-seconds", type=float, default=560,
                   help="start no call-mode step after this long (baseline and full stay under about 12 minutes; "
                        "transfers have a budget of their own)")
    p.add_argument("--no-profile", action="store_true", help="do not profile the controller with py-spy")
    p.add_argument("--transfer-rates", help="explicit comma-separated ladder of transfers/s (default "
                                            f"{','.join(f'{r:g}' for r in DEFAULT_TRANSFER_RATES)})")
    p.add_argument("--transfer-call-seconds", type=float, default=6,
                   help="length of each transferred client call (A, hold music while B rings, then B)")
    p.add_argument("--transfer-kind", choices=KINDS, default="blind",
                   help="blind: A hangs up while B rings; attended: B answers while A is still there")
    p.add_argument("--transfer-budget-seconds", type=float, default=240,
                   help="start no transfer step after this long into the transfer ladder (its own budget)")
    p.add_argument("--other-digits", choices=("pass", "absorb"), default="pass",
                   help="the tenant's talk_options.other_digits for the full stack and transfers (pass: rtpengine "
                        "injects DTMF from a conversation's first such digit on; absorb: never)")
    p.add_argument("--run-dir", type=Path, help="where logs and results go (default run/bench/<time>)")
    p.add_argument("--carry-over", type=Path, metavar="RESULTS_JSON",
                   help="an earlier run's results.json: the report shows its results for the modes this run "
                        "leaves out (e.g. `--modes transfers --carry-over run/bench/<time>/results.json`)")
    p.add_argument("--output", type=Path, help=f"the markdown report (default {DOC.relative_to(REPO_ROOT)}; "
                                               "with --smoke only the run directory)")
    args = p.parse_args(argv)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.run_dir or REPO_ROOT / "run" / "bench" / f"{'smoke-' if args.smoke else ''}{stamp}").resolve()
    low, high = (int(x) for x in args.rtp_ports.split("-"))
    if args.smoke:
        rates, step_s, call_s, refine, warmup, profile, budget = [10.0], 2.0, 1.0, 0, False, False, 90.0
        # 4 transfers of the shortest client call the timeline allows
        transfer_rates, transfer_call_s, transfer_budget = [2.0], 6.0, 45.0
    else:
        rates = [float(x) for x in args.rates.split(",")] if args.rates else list(DEFAULT_RATES)
        rates = [r for r in rates if r <= args.max_rate] or [args.max_rate]
        step_s, call_s, refine, warmup = args.step_seconds, args.call_seconds, args.refine, True
        profile, budget = not args.no_profile, args.budget_seconds
        transfer_rates = ([float(x) for x in args.transfer_rates.split(",")] if args.transfer_rates
                          else [float(r) for r in DEFAULT_TRANSFER_RATES])
        transfer_call_s, transfer_budget = args.transfer_call_seconds, args.transfer_budget_seconds
    try:
        transfer_timeline = timeline(args.transfer_kind, transfer_call_s)
    except ValueError as exc:
        p.error(str(exc))
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        p.error(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    doc = args.output if args.output else (None if args.smoke else DOC)
    if args.carry_over and not args.carry_over.is_file():
        p.error(f"--carry-over {args.carry_over}: no such file")
    return Settings(rates=rates, step_seconds=step_s, call_seconds=call_s, refine=refine, rtp_ports=(low, high),
                    kamailio_children=args.kamailio_children, kamailio_shm_mb=args.kamailio_shm_mb,
                    budget_s=budget, warmup=warmup, profile=profile, modes=modes, run_dir=run_dir, doc=doc,
                    smoke=args.smoke, transfer_rates=transfer_rates, transfer_call_seconds=transfer_call_s,
                    transfer_budget_s=transfer_budget, transfer_kind=args.transfer_kind,
                    transfer_timeline_ms=transfer_timeline, carry_over=args.carry_over,
                    other_digits=args.other_digits, repeats=1 if args.smoke else args.repeats)


def carry_over(settings: Settings, modes: dict[str, ModeResult]) -> list[str]:
    """The call modes this run left out, from an earlier run's results.json (a note says so in the report)."""
    assert settings.carry_over is not None
    earlier = json.loads(settings.carry_over.read_text())
    taken = []
    for name in CALL_MODES:
        if name not in modes and name in earlier.get("modes", {}):
            modes[name] = mode_from_json(earlier["modes"][name])
            taken.append(name)
    modes_in_order = {name: modes[name] for name in CALL_MODES if name in modes}
    modes.clear()
    modes.update(modes_in_order)
    if not taken:
        return []
    commit = earlier.get("machine", {}).get("commit", "?")
    return [f"{' and '.join(taken).capitalize()} carried over from `{settings.carry_over}` (started "
            f"{earlier.get('started', '?')}, code commit {commit}, command `{earlier.get('command', '?')}`), not "
            "measured by this command: comparisons between them and the transfers mix two runs."]


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join([os.path.relpath(sys.executable, REPO_ROOT), "-m", "benchmarks.run",
                          *(sys.argv[1:] if argv is None else argv)])
    started, t0 = datetime.now(UTC), time.monotonic()
    calls = (f", rates {', '.join(f'{r:g}' for r in settings.rates)} calls/s, {settings.step_seconds:g} s steps of "
             f"{settings.call_seconds:g} s calls" if set(settings.modes) - {TRANSFERS} else "")
    say(f"benchmark run in {settings.run_dir}: modes {', '.join(settings.modes)}{calls}")
    info = machine.describe()
    # read at run time: the config LocalStack really starts Kamailio with
    info |= machine.provenance(REPO_ROOT, Path(stack_module.KAMAILIO_CFG))
    call_modes = [mode for mode in settings.modes if mode != TRANSFERS]
    runs: dict[str, list[ModeResult]] = {mode: [] for mode in settings.modes}
    # the modes take turns, repeat after repeat, so that a slow minute of the machine hits one repeat of
    # each rather than every repeat of one; each ladder gets an equal share of what is left of the budget
    ladders = [(r, mode) for r in range(settings.repeats) for mode in call_modes]
    budget = settings.budget_s * settings.repeats
    for i, (repeat, mode) in enumerate(ladders):
        share = (budget - (time.monotonic() - t0)) / (len(ladders) - i)
        if settings.repeats > 1:
            say(f"{mode}: repeat {repeat + 1} of {settings.repeats}")
        runs[mode].append(run_mode(mode, settings, time.monotonic() + share, repeat))
    if TRANSFERS in settings.modes:
        say(f"transfers: rates {', '.join(f'{r:g}' for r in settings.transfer_rates)} transfers/s, "
            f"{settings.transfer_kind}, {settings.transfer_call_seconds:g} s client calls, budget "
            f"{settings.transfer_budget_s:g} s per repeat")
        for repeat in range(settings.repeats):
            runs[TRANSFERS].append(run_mode(TRANSFERS, settings, time.monotonic() + settings.transfer_budget_s,
                                            repeat))
    modes = {mode: median_run(runs[mode]) for mode in call_modes}
    transfers = median_run(runs[TRANSFERS]) if runs.get(TRANSFERS) else None

    notes = carry_over(settings, modes) if settings.carry_over else []
    if settings.carry_over and transfers is None:
        earlier = json.loads(settings.carry_over.read_text()).get("transfers")
        if earlier:
            transfers = mode_from_json(earlier)
            notes.append(f"Transfers carried over from `{settings.carry_over}` (not measured by this command).")
    result = BenchResult(
        command=command, started=started.strftime("%Y-%m-%d %H:%M UTC"), duration_s=time.monotonic() - t0,
        smoke=settings.smoke, machine=info, criteria=settings.criteria, modes=modes,
        settings=settings.as_dict(), transfers=transfers, notes=notes,
        runs={mode: found for mode, found in runs.items() if len(found) > 1},
    )
    (settings.run_dir / "results.json").write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    markdown = render(result)
    (settings.run_dir / "BENCHMARKS.md").write_text(markdown)
    if settings.doc:
        settings.doc.parent.mkdir(parents=True, exist_ok=True)
        settings.doc.write_text(markdown)
    for name, mode in modes.items():
        say(f"{name}: highest rate with >= {settings.criteria.min_success_pct:g} % successful calls: "
            f"{mode.max_rate:g} calls/s ({mode.stop_reason})")
    if transfers is not None:
        rated = transfers.rated
        say(f"transfers: highest rate with >= {settings.criteria.min_success_pct:g} % successful transfers: "
            f"{transfers.max_rate:g} transfers/s"
            + (f" (DTMF->INVITE p50/p99 {_ms(rated.transfer.dtmf_p50_ms)}/{_ms(rated.transfer.dtmf_p99_ms)} ms)"
               if rated and rated.transfer else "") + f" ({transfers.stop_reason})")
    ratio = result.ratio
    say(f"ratio full/baseline: {'-' if ratio is None else f'{ratio:.2f}'}; report: "
        f"{settings.doc or settings.run_dir / 'BENCHMARKS.md'}")
    everything = {**modes, **({TRANSFERS: transfers} if transfers is not None else {})}
    failed = [name for name, mode in everything.items() if mode.stop_reason.startswith("error") or not mode.steps]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
