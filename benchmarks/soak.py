"""The soak: the full stack under a steady call rate for a long time, and whether anything grows.

  python -m benchmarks.soak                      100 calls/s for an hour (`make soak`; not in CI)
  python -m benchmarks.soak --duration 120 --warmup 30 --rate 20    a short check of the soak itself

The stack of `make bench`'s full mode (benchmarks/environment.py: Kamailio + rtpengine + Redis + the
controller, a SIPp UAS that answers and echoes RTP), one SIPp UAC placing `--rate` calls/s of
`--call-seconds` with RTP for `--duration` seconds (restarted, and counted, should it exit early), and every
`--sample` seconds: each daemon's RSS and open fds (all its processes), Kamailio's shared memory, dialogs,
transactions and htable, rtpengine's calls, Redis' memory, streams and keys per database, SIPp's counters.
Once the load stops: the calls must end (dialogs and rtpengine calls back to 0), and every per-call key of
Redis must be gone once its TTL after the end has run out; keys without a TTL are counted by key group.
benchmarks/soak_report.py fits each metric's trend after `--warmup`, judges it and writes the report.
Every process is started here and stopped by PID.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from benchmarks import machine
from benchmarks.environment import Environment, uac_endpoint
from benchmarks.procstat import CpuMeter, CpuSnapshot, ProcStat, all_processes, process_tree
from benchmarks.run import say
from benchmarks.settings import DID, Settings
from benchmarks.sipp_load import SippUac, SippUas, UacResult, last_stat_row
from benchmarks.soak_report import (
    COUNTERS,
    METRICS,
    EndCheck,
    KeyAudit,
    Sample,
    SoakResult,
    audit_keys,
    keys_gone,
    render,
)
from controller.config import parse_config
from controller.credentials import redis_kwargs
from controller.devstack import resources
from controller.devstack import stack as stack_module
from controller.devstack.stack import REPO_ROOT, rtpengine_db

DAEMONS = ("controller", "kamailio", "rtpengine", "redis")
SHORT = {"controller": "ctl", "kamailio": "kam", "rtpengine": "rtpe", "redis": "redis"}
MAX_UAC_RESTARTS = 20  # SIPp exiting again and again is a broken load, not a soak


@dataclass(frozen=True)
class SoakSettings:
    rate: float
    duration_s: float
    sample_s: float
    warmup_s: float
    call_s: float
    drain_s: float
    event_log_max: int | None  # None: the configuration's default
    run_dir: Path
    output: Path
    bench: Settings  # what benchmarks/environment.py builds the stack from

    def as_dict(self) -> dict[str, Any]:
        b = self.bench
        return {"rate": self.rate, "duration_s": self.duration_s, "sample_s": self.sample_s,
                "warmup_s": self.warmup_s, "call_s": self.call_s, "drain_s": self.drain_s,
                "run_dir": str(self.run_dir), "output": str(self.output),
                "rtp_ports": list(b.rtp_ports), "kamailio_children": b.kamailio_children,
                "kamailio_shm_mb": b.kamailio_shm_mb}


# -- /proc: memory and descriptors of a daemon and all its processes --------------------------------
def proc_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of one process; (0, 0) once it has gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return rss, pss


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def tree_figures(root: int, table: dict[int, ProcStat]) -> dict[str, int]:
    """RSS, PSS and open fds summed over a daemon's process tree (Kamailio: its main process and workers)."""
    rss = pss = fds = 0
    pids = process_tree(root, table)
    for pid in pids:
        r, p = proc_memory(pid)
        rss, pss, fds = rss + r, pss + p, fds + open_fds(pid)
    return {"rss": rss, "pss": pss, "fds": fds, "procs": len(pids)}


# -- the probes of one sample --------------------------------------------------------------------------
class Sampler:
    """Everything one sample reads. A probe that fails leaves its metrics out of that sample (counted)."""

    def __init__(self, env: Environment, counts: Callable[[], dict[str, int]]):
        self.env = env
        self.counts = counts
        node = env.stack.node
        self.rtpengine_db = rtpengine_db(node.redis.db)
        self.node_db = node.redis.db
        self.rtpengine_client = redis.Redis(**(redis_kwargs(node) | {"db": self.rtpengine_db}), socket_timeout=5.0)
        self.rtpengine_client.ping()  # connected now: a connection opened mid-run would count as Redis' own fd
        self.errors: dict[str, int] = {}
        self.last_error: dict[str, str] = {}

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.env.stack.processes.items() if p.pid and p.alive()}

    def sample(self, t: float, phase: str) -> Sample:
        values: dict[str, float] = {}
        self._probe("processes", values, self._processes)
        self._probe("kamailio", values, self._kamailio)
        self._probe("rtpengine", values, lambda: {"rtpe_calls": self.env.rtpengine.totals()["sessions"]})
        self._probe("redis", values, self._redis)
        self._probe("sipp", values, self.counts)
        return Sample(round(t, 1), phase, values)

    def _probe(self, name: str, values: dict[str, float], read: Callable[[], dict[str, Any]]) -> None:
        try:
            values.update({k: float(v) for k, v in read().items()})
        except Exception as exc:  # a slow or failed probe must not end an hour's soak
            self.errors[name] = self.errors.get(name, 0) + 1
            self.last_error[name] = f"{type(exc).__name__}: {exc}"

    def _processes(self) -> dict[str, int]:
        table = all_processes()
        out = {}
        for name, pid in self.pids().items():
            figures = tree_figures(pid, table)
            short = SHORT.get(name, name)
            out |= {f"{short}_rss": figures["rss"], f"{short}_fds": figures["fds"]}
            if name == "kamailio":
                out |= {"kam_pss": figures["pss"], "kam_procs": figures["procs"]}
        return out

    def _kamailio(self) -> dict[str, int]:
        k = self.env.kamailio
        tables = {t["name"]: int(t["all"]) for t in k.rpc("htable.stats")}
        return {"kam_shm": k.shm_used(), "kam_dialogs": k.active_dialogs(),
                "kam_transactions": int(k.rpc("stats.fetch", "tmx:")["tmx.inuse_transactions"]),
                "kam_htable": tables.get("xfer", 0)}

    def _redis(self) -> dict[str, int]:
        r = self.env.redis.sample()
        pipe = self.env.redis.client.pipeline(transaction=False)
        pipe.info("keyspace")
        pipe.info("persistence")
        keyspace, persistence = pipe.execute()
        streams = r.events_bytes + r.inbound_bytes
        return {"redis_used": r.used_memory, "redis_streams": streams, "redis_rest": r.used_memory - streams,
                "events_len": r.events_len, "backlog": r.inbound_backlog,
                "aof_bytes": int(persistence.get("aof_current_size", 0)),
                "db0_keys": int(keyspace.get(f"db{self.node_db}", {}).get("keys", 0)),
                "db1_keys": int(keyspace.get(f"db{self.rtpengine_db}", {}).get("keys", 0))}

    def audits(self, when: str) -> list[KeyAudit]:
        return [audit_keys(when, f"node (db {self.node_db})", scan_ttls(self.env.redis.client)),
                audit_keys(when, f"rtpengine (db {self.rtpengine_db})", scan_ttls(self.rtpengine_client),
                           rtpengine=True)]

    def close(self) -> None:
        self.rtpengine_client.close()


def scan_ttls(client: redis.Redis, batch: int = 1000) -> list[tuple[str, int]]:
    """Every key of the client's database with its TTL (-1: none; -2: gone between SCAN and TTL)."""
    keys = list(client.scan_iter(count=batch))
    out: list[tuple[str, int]] = []
    for i in range(0, len(keys), batch):
        chunk = keys[i:i + batch]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.ttl(key)
        out += [(key.decode(errors="replace") if isinstance(key, bytes) else str(key), int(ttl))
                for key, ttl in zip(chunk, pipe.execute(), strict=True)]
    return out


# -- the load ------------------------------------------------------------------------------------------
class Load:
    """One SIPp UAC at the rate for the whole duration; a new one (counted) if it exits before the end."""

    def __init__(self, env: Environment, settings: SoakSettings):
        self.env = env
        self.s = settings
        self.dir = settings.run_dir / "sipp"
        self.finished: list[UacResult] = []
        self.exits: list[str] = []
        self.uac: SippUac | None = None
        self.uac_restarts = 0
        self.uas_restarts = 0
        self.t0 = 0.0
        self.stopped = False

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._start_uac(self.s.duration_s)

    def _start_uac(self, remaining_s: float) -> None:
        s = self.s
        # SIPp's own open-call limit counts only <pause>s (this scenario talks in a <recv>): room for twice
        # the calls that can be up at once, so a slow moment does not throttle the rate
        open_calls = max(100, round(2 * s.rate * (s.call_s + 5)))
        self.uac = SippUac(uac_endpoint(), self.env.stack.sip_hostport, DID, self.dir / f"uac-{len(self.finished) + 1}",
                           rate=s.rate, calls=max(1, round(s.rate * remaining_s)), call_ms=round(s.call_s * 1000),
                           max_open_calls=open_calls)
        self.uac.start()

    def _retire(self) -> None:
        assert self.uac is not None
        result = self.uac.result()
        self.finished.append(result)
        self.exits.append(f"{self.uac.workdir.name}: exit {result.exit_code} at t={self.elapsed():.0f} s"
                          f"{' (killed at its time limit)' if result.killed else ''}, {result.created} calls")
        self.uac = None

    def keep_going(self) -> None:
        """Between samples: a SIPp that has exited before the end of the load is replaced; so is the UAS."""
        uas = self.env.uas
        if uas.process is not None and not uas.process.alive():
            self._restart_uas()
        if self.uac is None or self.stopped or self.uac.poll() is None:
            return
        self._retire()
        remaining = self.s.duration_s - self.elapsed()
        if remaining < max(1.0, 2 / self.s.rate):
            return  # it had placed its calls: the load is over anyway
        if self.uac_restarts >= MAX_UAC_RESTARTS:
            raise RuntimeError(f"SIPp exited {self.uac_restarts + 1} times before the end of the load: "
                               + "; ".join(self.exits[-3:]))
        self.uac_restarts += 1
        say(f"SIPp UAC exited early ({self.exits[-1]}): restart {self.uac_restarts}")
        self._start_uac(remaining)

    def _restart_uas(self) -> None:
        old = self.env.uas
        self.uas_restarts += 1
        say(f"SIPp UAS exited (rc {old.process.popen.returncode if old.process and old.process.popen else '?'}): "
            f"restart {self.uas_restarts}")
        old.stop()
        self.env.uas = SippUas(old.endpoint, self.env.dir / f"uas-{self.uas_restarts + 1}")
        self.env.uas.start()

    def stop(self) -> None:
        """No new calls (SIGUSR1: SIPp's soft quit); the calls up end as they would."""
        self.stopped = True
        if self.uac is not None and self.uac.poll() is None:
            assert self.uac.popen is not None
            self.uac.popen.send_signal(signal.SIGUSR1)

    def finish(self) -> bool:
        """True once SIPp has exited (its results kept), False while it still runs."""
        if self.uac is None:
            return True
        if self.uac.poll() is None:
            return False
        self._retire()
        return True

    def kill(self) -> None:
        if self.uac is not None:
            if self.uac.poll() is None:
                self.uac.kill()
            self._retire()

    def counts(self) -> dict[str, int]:
        """SIPp's cumulative counters over every UAC of the run (the running one from its stat file)."""
        totals = {k: 0 for k in COUNTERS}
        for r in self.finished:
            totals["created"] += r.created
            totals["successful"] += r.successful
            totals["failed"] += r.failed
        if self.uac is not None:
            row = last_stat_row(self.uac.workdir / "uac_stat.csv")
            for key, column in (("created", "TotalCallCreated"), ("successful", "SuccessfulCall(C)"),
                                ("failed", "FailedCall(C)")):
                totals[key] += int(float(row.get(column) or 0))
        return totals

    def summary(self) -> dict[str, Any]:
        causes: dict[str, int] = {}
        for r in self.finished:
            for k, v in r.failure_causes.items():
                causes[k] = causes.get(k, 0) + v
        return self.counts() | {"failure_causes": causes, "uac_restarts": self.uac_restarts,
                                "uas_restarts": self.uas_restarts, "exits": self.exits,
                                "sipp_uac_cpu_s": sum(r.cpu_s for r in self.finished)}


# -- the run -------------------------------------------------------------------------------------------
class Soak:
    def __init__(self, settings: SoakSettings, command: str):
        self.s = settings
        self.command = command
        self.samples: list[Sample] = []
        self.audits: list[KeyAudit] = []
        self.checks: list[EndCheck] = []
        self.notes: list[str] = []
        self.cpu_cores: dict[str, float] = {}
        self.env: Environment | None = None
        self.load: Load | None = None
        self.sampler: Sampler | None = None
        self.csv_path = settings.run_dir / "samples.csv"

    def run(self) -> SoakResult:
        started, t0 = datetime.now(UTC), time.monotonic()
        info = machine.describe() | machine.provenance(REPO_ROOT, Path(stack_module.KAMAILIO_CFG))
        error = None
        try:
            self._run()
        except BaseException as exc:  # Ctrl-C or a broken stack: stop everything, still write what was measured
            (self.s.run_dir / "error.txt").write_text(traceback.format_exc())
            error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]} (see error.txt)"
            say(f"soak: {error}")
            if not isinstance(exc, Exception | KeyboardInterrupt):
                raise
        finally:
            self._stop()
        settings = self.s.as_dict() | self._node_settings()
        if self.sampler is not None and self.sampler.errors:
            self.notes.append("Probe failures (those samples lack the probe's metrics): " + "; ".join(
                f"{name} {n} (last: {self.sampler.last_error[name]})" for name, n in self.sampler.errors.items()))
        return SoakResult(
            command=self.command, started=started.strftime("%Y-%m-%d %H:%M UTC"), wall_s=time.monotonic() - t0,
            settings=settings, machine=info, samples=self.samples,
            sipp=self.load.summary() if self.load else {}, cpu_cores=self.cpu_cores, audits=self.audits,
            checks=self.checks, notes=self.notes, error=error,
        ).analyse()

    def _node_settings(self) -> dict[str, Any]:
        if self.env is None:
            return {"event_log_max": self.s.event_log_max or 0}
        node = self.env.stack.node
        return {"event_log_max": node.event_log_max, "call_keys_ttl_after_end_s": node.call_keys_ttl_after_end_s,
                "max_call_duration_s": node.max_call_duration_s,
                "rtpengine_persist_calls": node.rtpengine.persist_calls}

    def _run(self) -> None:
        s = self.s
        say(f"soak in {s.run_dir}: starting the full stack")
        self.env = Environment(True, s.bench, s.run_dir)  # the stack in run_dir/stack, the UAS in run_dir/uas
        if s.event_log_max is not None:
            set_node(self.env, event_log_max=s.event_log_max)
        self.env.start()
        self.load = Load(self.env, s)
        self.sampler = Sampler(self.env, self.load.counts)
        pids = {name: [p.pid] for name, p in self.env.stack.processes.items() if p.pid}
        meter = CpuMeter(pids)
        self._take(0.0, "before")  # idle, before the first call
        before = meter.snapshot()
        say(f"soak: {s.rate:g} calls/s of {s.call_s:g} s for {s.duration_s:g} s, a sample every {s.sample_s:g} s "
            f"(warm-up {s.warmup_s:g} s)")
        self.load.start()
        audited = False
        next_sample = s.sample_s
        while (elapsed := self.load.elapsed()) < s.duration_s:
            self.load.keep_going()
            if elapsed >= next_sample:
                sample = self._take(elapsed, "load")
                next_sample += s.sample_s
                if len(self.samples) % max(1, round(60 / s.sample_s)) == 0:
                    self._progress(sample)
                if not audited and elapsed >= s.duration_s / 2:
                    self.audits += self.sampler.audits("load")
                    audited = True
            time.sleep(min(0.5, max(0.05, next_sample - elapsed)))
        self._cpu(meter, before)
        self.load.stop()
        say("soak: the load is over (SIPp told to place no new call); waiting for the calls to end")
        self._drain()
        ttl = self.env.stack.node.call_keys_ttl_after_end_s
        time.sleep(ttl + 2)  # the ended calls' keys expire this long after their end
        last = self._take(self.load.elapsed(), "after")
        after = self.sampler.audits("after")
        self.audits += after
        self._end_checks(last, after)

    def _drain(self) -> None:
        assert self.load is not None
        deadline = time.monotonic() + self.s.drain_s
        next_sample = time.monotonic() + self.s.sample_s
        sipp_done = False
        while time.monotonic() < deadline:
            sipp_done = sipp_done or self.load.finish()
            if sipp_done:
                v = self._take(self.load.elapsed(), "drain").values
                if v.get("kam_dialogs") == 0 and v.get("rtpe_calls") == 0 and v.get("backlog") == 0:
                    break
                time.sleep(1.0)
                continue
            if time.monotonic() >= next_sample:
                self._take(self.load.elapsed(), "drain")
                next_sample += self.s.sample_s
            time.sleep(0.25)
        if not sipp_done:
            self.load.kill()
        self.checks.append(EndCheck("SIPp placed no new call and exited once its calls ended", sipp_done,
                                    "exited by itself" if sipp_done else
                                    f"still running {self.s.drain_s:g} s after the load: stopped"))

    def _end_checks(self, last: Sample, audits: list[KeyAudit]) -> None:
        v = last.values
        when = f"at t={last.t:.0f} s, {last.t - self.s.duration_s:.0f} s after the last new call"
        self.checks.append(keys_gone(audits))

        def zero(what: str, key: str) -> None:
            value = v.get(key)
            self.checks.append(EndCheck(what, value == 0, f"{_int(value)} ({when})"))

        zero("Kamailio dialogs back to 0", "kam_dialogs")
        zero("rtpengine calls back to 0", "rtpe_calls")
        zero("notifications all consumed", "backlog")
        zero("Kamailio htable xfer empty", "kam_htable")

    def _take(self, t: float, phase: str) -> Sample:
        assert self.sampler is not None
        sample = self.sampler.sample(t, phase)
        self.samples.append(sample)
        self._append_csv(sample)
        return sample

    def _append_csv(self, sample: Sample) -> None:
        columns = ["t", "phase", *COUNTERS, *(m.key for m in METRICS), "kam_procs"]
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(columns)
            out.writerow([sample.t, sample.phase, *(_cell(sample.values.get(c)) for c in columns[2:])])

    def _progress(self, sample: Sample) -> None:
        v = sample.values
        mib = 1024 * 1024
        say(f"t={sample.t:.0f} s: calls {_int(v.get('created'))} placed, {_int(v.get('failed'))} failed; RSS ctl "
            f"{v.get('ctl_rss', 0) / mib:.1f} kam {v.get('kam_rss', 0) / mib:.1f} "
            f"rtpe {v.get('rtpe_rss', 0) / mib:.1f} "
            f"MiB; shm {v.get('kam_shm', 0) / mib:.2f} MiB; rtpe calls {_int(v.get('rtpe_calls'))}, dialogs "
            f"{_int(v.get('kam_dialogs'))}; Redis {v.get('redis_used', 0) / mib:.1f} MiB, keys "
            f"{_int(v.get('db0_keys'))}/{_int(v.get('db1_keys'))}")

    def _cpu(self, meter: CpuMeter, before: CpuSnapshot) -> None:
        usage = CpuMeter.usage(before, meter.snapshot())
        if usage.wall_s > 0:
            self.cpu_cores = {name: cpu / usage.wall_s for name, cpu in usage.groups.items()}
            self.cpu_cores["others on the machine"] = usage.others_s / usage.wall_s
            if usage.top_others:
                self.notes.append("Other processes' CPU during the load (not the stack's, not SIPp's): " + ", ".join(
                    f"{comm} {cpu / usage.wall_s:.2f} cores" for comm, cpu in usage.top_others))

    def _stop(self) -> None:
        if self.load is not None and self.load.uac is not None:
            self.load.kill()
        if self.sampler is not None:
            self.sampler.close()
        if self.env is not None:
            self.env.stop()


def set_node(env: Environment, **values: Any) -> None:
    """Change node values of the stack's configuration before it starts (the controller reads the file
    written from config_data, Kamailio's Python the parsed config)."""
    env.stack.config_data["node"].update(values)
    env.stack.config = parse_config(env.stack.config_data, base_dir=resources.CONFIG_DIR)


def _int(value: float | None) -> str:
    return "-" if value is None else str(round(value))


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}"


# -- command line -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> SoakSettings:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100.0, help="calls per second (the rated load of the full stack "
                                                            "is 140 calls/s on the 2-core machine, docs/BENCHMARKS.md)")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of load")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=120.0, help="seconds of load before the trends' window opens")
    p.add_argument("--call-seconds", type=float, default=3.0, help="length of each call, with RTP")
    p.add_argument("--drain-timeout", type=float, default=60.0,
                   help="after the load, how long the last calls may take to end")
    p.add_argument("--event-log-max", type=int, default=None,
                   help="the node's event_log_max (default: the configuration's, 1,000,000 entries); a lower cap "
                        "that the run reaches within its warm-up makes Redis' whole memory judgeable")
    p.add_argument("--rtp-ports", default="10000-19999", help="rtpengine media port range")
    p.add_argument("--kamailio-children", type=int, default=4)
    p.add_argument("--kamailio-shm-mb", type=int, default=256)
    p.add_argument("--output", type=Path, help="the markdown report (default run/soak/<time>/soak.md)")
    p.add_argument("--run-dir", type=Path, help="logs, samples.csv, results.json (default run/soak/<time>)")
    args = p.parse_args(argv)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.run_dir or REPO_ROOT / "run" / "soak" / stamp).resolve()
    output = (args.output or run_dir / "soak.md").resolve()
    low, high = (int(x) for x in args.rtp_ports.split("-"))
    bench = Settings(rates=[args.rate], step_seconds=args.duration, call_seconds=args.call_seconds, refine=0,
                     rtp_ports=(low, high), kamailio_children=args.kamailio_children,
                     kamailio_shm_mb=args.kamailio_shm_mb, budget_s=args.duration, warmup=False, profile=False,
                     modes=["full"], run_dir=run_dir, doc=None, smoke=False)
    if args.rate <= 0 or args.duration <= 0 or args.sample <= 0 or args.call_seconds <= 0:
        p.error("--rate, --duration, --sample and --call-seconds must be positive")
    if not 0 <= args.warmup < args.duration:
        p.error("--warmup must be at least 0 and shorter than --duration")
    if args.duration - args.warmup < 3 * args.sample:
        p.error("fewer than three samples after the warm-up: lengthen --duration or shorten --warmup/--sample")
    if args.rate > bench.max_rate_for_ports():
        p.error(f"{args.rate:g} calls/s of {args.call_seconds:g} s need more than the media ports {args.rtp_ports}")
    return SoakSettings(rate=args.rate, duration_s=args.duration, sample_s=args.sample, warmup_s=args.warmup,
                        call_s=args.call_seconds, drain_s=args.drain_timeout, event_log_max=args.event_log_max,
                        run_dir=run_dir, output=output, bench=bench)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join([os.path.relpath(sys.executable, REPO_ROOT), "-m", "benchmarks.soak",
                          *(sys.argv[1:] if argv is None else argv)])
    result = Soak(settings, command).run()
    (settings.run_dir / "results.json").write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_text(render(result))
    for finding in result.findings:
        say(f"finding: {finding}")
    found = f"{len(result.findings)} finding(s)" if result.findings else "no finding"
    say(f"soak report: {settings.output} ({found})")
    return 1 if result.findings else 0


if __name__ == "__main__":
    sys.exit(main())
