"""The soak's pure parts: what is sampled, the least-squares trend of each metric after warm-up and its
verdict, the classification of Redis keys by the key layout of controller/wire.py, and the markdown report.
No I/O here: benchmarks/soak.py measures, this module judges and renders (tests/unit/test_benchmarks_soak.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.report import _escape, _num
from controller import wire

MIB = 1024 * 1024
#: A metric is flat when its slope, extrapolated over an hour, is at most this share of its post-warm-up
#: mean, or at most the metric's absolute floor per hour (whichever is larger).
REL_THRESHOLD = 0.02
#: A slope beyond the threshold is a finding only when it is also this many standard errors from zero;
#: otherwise the window is too short (or the metric too noisy) to tell.
SIGNIFICANCE = 3.0
MAX_TABLE_ROWS = 40
#: A trend window shorter than this cannot tell a leak from warm-up (allocators, caches and connection
#: pools still settling): its verdicts are shown but are no finding.
MIN_JUDGED_WINDOW_S = 900.0

# verdicts
FLAT, GROWS, FALLS, UNDECIDED, BY_DESIGN, TOO_FEW = (
    "flat", "GROWS", "falls", "undecided (noise)", "grows by design (event log below its cap)", "too few samples")
LEAKS = (GROWS,)


@dataclass(frozen=True)
class Metric:
    key: str  # in Sample.values
    label: str
    unit: str  # as shown; values are divided by `scale` for it
    scale: float = 1.0
    floor_per_h: float = 0.0  # absolute floor of the flat rule, in the shown unit per hour
    judged: bool = True  # False: shown with its trend, no verdict counts against the run
    event_log: bool = False  # grows with the event log (xfer:events) until it is trimmed at its cap
    digits: int = 1


METRICS: tuple[Metric, ...] = (
    Metric("ctl_rss", "controller RSS", "MiB", MIB, 1.0),
    Metric("kam_rss", "Kamailio RSS (all processes, sum)", "MiB", MIB, 2.0),
    Metric("kam_pss", "Kamailio PSS (all processes, sum; shared pages split)", "MiB", MIB, 2.0),
    Metric("kam_shm", "Kamailio shared memory in use (core.shmmem real_used)", "MiB", MIB, 1.0, digits=2),
    Metric("rtpe_rss", "rtpengine RSS", "MiB", MIB, 2.0),
    Metric("redis_rss", "redis-server RSS", "MiB", MIB, 2.0, event_log=True),
    Metric("redis_used", "Redis used_memory", "MiB", MIB, 1.0, event_log=True, digits=2),
    Metric("redis_streams", "Redis streams (event log + Kamailio's notifications, MEMORY USAGE)", "MiB", MIB,
           1.0, event_log=True, digits=2),
    Metric("redis_rest", "Redis used_memory without the streams", "MiB", MIB, 1.0, digits=2),
    Metric("events_len", "event log entries (xfer:events)", "entries", 1, 100, event_log=True, digits=0),
    Metric("db0_keys", "Redis keys, the node's database (INFO keyspace, as DBSIZE)", "keys", 1, 20, digits=0),
    Metric("db1_keys", "Redis keys, rtpengine's database (INFO keyspace, as DBSIZE)", "keys", 1, 20, digits=0),
    # the append-only file grows with every write until Redis rewrites it (at twice its last rewritten size)
    Metric("aof_bytes", "Redis append-only file (aof_current_size)", "MiB", MIB, 0.0, judged=False),
    Metric("backlog", "notifications not yet consumed (xfer:kamailio)", "entries", 1, 20, digits=0),
    Metric("rtpe_calls", "rtpengine calls (sessionstotal)", "calls", 1, 5, digits=0),
    Metric("kam_dialogs", "Kamailio active dialogs", "dialogs", 1, 5, digits=0),
    Metric("kam_transactions", "Kamailio transactions in use (tmx)", "transactions", 1, 10, digits=0),
    Metric("kam_htable", "Kamailio htable xfer entries", "entries", 1, 5, digits=0),
    Metric("ctl_fds", "controller open fds", "fds", 1, 3, digits=0),
    Metric("kam_fds", "Kamailio open fds (all processes, sum)", "fds", 1, 3, digits=0),
    Metric("rtpe_fds", "rtpengine open fds", "fds", 1, 3, digits=0),
    Metric("redis_fds", "redis-server open fds", "fds", 1, 3, digits=0),
)
BY_KEY = {m.key: m for m in METRICS}
#: The sample table's columns (every metric is in samples.csv).
TABLE_COLUMNS = ("ctl_rss", "kam_rss", "kam_shm", "rtpe_rss", "rtpe_calls", "kam_dialogs", "redis_used",
                 "redis_rest", "db0_keys", "db1_keys", "ctl_fds", "kam_fds", "rtpe_fds", "redis_fds")
COUNTERS = ("created", "successful", "failed")  # SIPp's cumulative counters, summed over its restarts


@dataclass
class Sample:
    t: float  # seconds since the load started
    phase: str  # "before" (idle), "load", "drain" (no new calls, the last ones ending), "after" (idle again)
    values: dict[str, float] = field(default_factory=dict)


# -- trends ---------------------------------------------------------------------------------------
def least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float | None]:
    """(slope, intercept, standard error of the slope) of the ordinary least-squares line through the
    points; the standard error is None with fewer than three points."""
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError("least squares needs two or more points, as many xs as ys")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("least squares needs two distinct x values")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    if n < 3:
        return slope, intercept, None
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, intercept, math.sqrt(residual / (n - 2) / sxx)


@dataclass
class Trend:
    key: str
    label: str
    unit: str
    samples: int
    mean: float | None  # in the shown unit
    first: float | None
    last: float | None
    slope_per_h: float | None
    stderr_per_h: float | None
    threshold_per_h: float | None
    verdict: str
    judged: bool
    digits: int = 1

    @property
    def change_pct_per_h(self) -> float | None:
        """The slope per hour relative to the post-warm-up mean."""
        if self.slope_per_h is None or not self.mean:
            return None
        return 100 * self.slope_per_h / self.mean


def steady(samples: Iterable[Sample], warmup_s: float) -> list[Sample]:
    """The samples the trends are fitted on: under load, after warm-up."""
    return [s for s in samples if s.phase == "load" and s.t >= warmup_s]


def trend(metric: Metric, samples: Sequence[Sample], *, events_capped: bool = False) -> Trend:
    """The metric's least-squares trend over `samples` (already the steady ones) and its verdict."""
    points = [(s.t, s.values[metric.key] / metric.scale) for s in samples
              if s.values.get(metric.key) is not None]
    base = dict(key=metric.key, label=metric.label, unit=metric.unit, samples=len(points), judged=metric.judged,
                digits=metric.digits)
    if len(points) < 3 or len({t for t, _ in points}) < 2:
        mean = sum(v for _, v in points) / len(points) if points else None
        return Trend(**base, mean=mean, first=points[0][1] if points else None,
                     last=points[-1][1] if points else None, slope_per_h=None, stderr_per_h=None,
                     threshold_per_h=None, verdict=TOO_FEW)
    xs, ys = [t for t, _ in points], [v for _, v in points]
    slope, _, stderr = least_squares(xs, ys)
    mean = sum(ys) / len(ys)
    slope_h = slope * 3600
    stderr_h = None if stderr is None else stderr * 3600
    threshold = threshold_per_h(metric, mean)
    return Trend(**base, mean=mean, first=ys[0], last=ys[-1], slope_per_h=slope_h, stderr_per_h=stderr_h,
                 threshold_per_h=threshold,
                 verdict=verdict(slope_h, stderr_h, threshold, by_design=metric.event_log and not events_capped))


def threshold_per_h(metric: Metric, mean: float) -> float:
    return max(REL_THRESHOLD * abs(mean), metric.floor_per_h)


def verdict(slope_per_h: float, stderr_per_h: float | None, threshold: float, *, by_design: bool = False) -> str:
    """flat: |slope| <= threshold. Beyond it: GROWS or falls when the slope is also SIGNIFICANCE standard
    errors from zero, else undecided. A rise of a metric that carries the event log while the event log
    is below its cap is growth by design (it levels off once the log is trimmed)."""
    if abs(slope_per_h) <= threshold:
        return FLAT
    if stderr_per_h is not None and abs(slope_per_h) < SIGNIFICANCE * stderr_per_h:
        return UNDECIDED
    if slope_per_h > 0:
        return BY_DESIGN if by_design else GROWS
    return FALLS


def trends(samples: Sequence[Sample], warmup_s: float, *, events_capped: bool = False) -> list[Trend]:
    window = steady(samples, warmup_s)
    return [trend(metric, window, events_capped=events_capped) for metric in METRICS]


def events_capped(samples: Sequence[Sample], warmup_s: float, cap: int) -> bool:
    """Was the event log already at its cap (within the store's approximate trimming) when the trend
    window began? Then it, and Redis memory with it, must be flat too."""
    window = steady(samples, warmup_s)
    return bool(window) and window[0].values.get("events_len", 0) >= 0.9 * cap


# -- Redis keys -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyKind:
    name: str  # how the report names the group, e.g. "xfer:conv:{}"
    per_call: bool  # must carry a TTL (and be gone once the calls have ended and the TTL has run)
    pattern: re.Pattern[str]


def _kind(template: str, per_call: bool) -> KeyKind:
    parts = [re.escape(part) for part in template.split("{}")]
    return KeyKind(template, per_call, re.compile("^" + ".+".join(parts) + "$", re.DOTALL))


#: The per-call keys of controller/wire.py (docs/ARCHITECTURE.md "Redis key schema"): a call's
#: conversation and its Call-ID index, a leg the controller originates, a tenant's per-minute transfer count.
PER_CALL_NAMES = ("CONV_KEY", "CALL_KEY", "LEG_KEY", "LIMIT_MINUTE_KEY")


def node_key_kinds(module: Any = wire) -> tuple[KeyKind, ...]:
    """Every Redis key template of controller/wire.py (its *_KEY and *_STREAM names), the per-call ones
    flagged; the most literal template first (xfer:routes:current before xfer:routes:{}, ...:outside:live
    before ...:outside:{}). Read from the module, so that a key added there is known here."""
    kinds = [_kind(value, name in PER_CALL_NAMES) for name, value in vars(module).items()
             if name.isupper() and name.endswith(("_KEY", "_STREAM")) and isinstance(value, str)]
    return tuple(sorted(kinds, key=lambda kind: (-len(kind.name.replace("{}", "")), kind.name)))


NODE_KEYS = node_key_kinds()
#: rtpengine's database holds one key per call, named by its Call-ID.
RTPENGINE_CALL = "rtpengine call {call-id}"


def classify(key: str, kinds: Sequence[KeyKind] = NODE_KEYS) -> tuple[str, bool]:
    """(group, per_call) of a key of the node's database; a key outside the layout is grouped by what comes
    before its last ':' and counted as per-call (an unknown key must not outlive the calls either)."""
    for kind in kinds:
        if kind.pattern.match(key):
            return kind.name, kind.per_call
    head, sep, _ = key.rpartition(":")
    return (f"(unknown) {head}{sep}*" if sep else "(unknown) no ':'"), True


@dataclass
class KeyGroup:
    name: str
    per_call: bool
    keys: int = 0
    without_ttl: int = 0
    examples_without_ttl: list[str] = field(default_factory=list)

    @property
    def with_ttl(self) -> int:
        return self.keys - self.without_ttl

    @property
    def problem(self) -> bool:
        return self.per_call and self.without_ttl > 0


@dataclass
class KeyAudit:
    """Every key of one database when it was scanned: counts by group, and which lack a TTL."""

    when: str  # "load" (half-way) or "after" (the calls over and their TTL run out)
    database: str
    groups: list[KeyGroup]

    @property
    def per_call_left(self) -> int:
        return sum(g.keys for g in self.groups if g.per_call)

    @property
    def problems(self) -> list[KeyGroup]:
        return [g for g in self.groups if g.problem]


def audit_keys(when: str, database: str, ttls: Iterable[tuple[str, int]], *, rtpengine: bool = False,
               examples: int = 3) -> KeyAudit:
    """Group (key, TTL) pairs (TTL as Redis' TTL command answers: -1 for none, -2 for a key gone meanwhile)."""
    groups: dict[str, KeyGroup] = {}
    for key, ttl in ttls:
        if ttl == -2:
            continue
        name, per_call = (RTPENGINE_CALL, True) if rtpengine else classify(key)
        group = groups.setdefault(name, KeyGroup(name, per_call))
        group.keys += 1
        if ttl == -1:
            group.without_ttl += 1
            if len(group.examples_without_ttl) < examples:
                group.examples_without_ttl.append(key)
    return KeyAudit(when, database, sorted(groups.values(), key=lambda g: (not g.per_call, g.name)))


# -- the whole run --------------------------------------------------------------------------------
@dataclass
class EndCheck:
    what: str
    ok: bool
    detail: str


def keys_gone(audits: list[KeyAudit]) -> EndCheck:
    """Every per-call key expired once the calls had ended (those left carry a TTL, or the audit says not)."""
    left = {f"{a.database} {g.name}": g.keys for a in audits for g in a.groups if g.per_call}
    return EndCheck("per-call Redis keys gone once the calls ended", not left,
                    ", ".join(f"{name}: {n} left" for name, n in left.items()) or "none left")


@dataclass
class SoakResult:
    command: str
    started: str
    wall_s: float
    settings: dict[str, Any]
    machine: dict[str, str]
    samples: list[Sample]
    sipp: dict[str, Any]  # created, successful, failed, failure_causes, uac_restarts, uas_restarts, exits
    cpu_cores: dict[str, float]  # average cores per daemon over the load, "others" = the rest of the machine
    audits: list[KeyAudit] = field(default_factory=list)
    checks: list[EndCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    trends: list[Trend] = field(default_factory=list)

    def analyse(self) -> SoakResult:
        warmup = float(self.settings["warmup_s"])
        capped = events_capped(self.samples, warmup, int(self.settings["event_log_max"]))
        self.trends = trends(self.samples, warmup, events_capped=capped)
        return self

    @property
    def window_s(self) -> float:
        window = steady(self.samples, float(self.settings["warmup_s"]))
        return window[-1].t - window[0].t if window else 0.0

    @property
    def trends_count(self) -> bool:
        """Do the trends' verdicts count (the window is long enough)?"""
        return self.window_s >= MIN_JUDGED_WINDOW_S

    @property
    def growing(self) -> list[str]:
        return [f"{t.label}: {t.verdict} ({_signed(t.slope_per_h, t.digits)} {t.unit}/h)"
                for t in self.trends if t.judged and t.verdict in LEAKS]

    @property
    def findings(self) -> list[str]:
        """What makes the run fail: a leak, a key without TTL, a check after the load, an error."""
        out = list(self.growing) if self.trends_count else []
        out += [f"{a.database}: {g.without_ttl} {g.name} key(s) without TTL ({a.when})"
                for a in self.audits for g in a.problems]
        out += [f"{c.what}: {c.detail}" for c in self.checks if not c.ok]
        if self.error:
            out.append(f"error: {self.error}")
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for t, raw in zip(self.trends, data["trends"], strict=True):
            raw["change_pct_per_h"] = t.change_pct_per_h
        return data


def table_rows(samples: Sequence[Sample], limit: int = MAX_TABLE_ROWS) -> list[Sample]:
    """At most about `limit` samples for the report: every Nth, and always the last of each phase."""
    if len(samples) <= limit:
        return list(samples)
    step = math.ceil(len(samples) / limit)
    keep = set(range(0, len(samples), step))
    keep |= {i for i, s in enumerate(samples) if i + 1 == len(samples) or samples[i + 1].phase != s.phase}
    return [samples[i] for i in sorted(keep)]


def render(result: SoakResult) -> str:
    s = result.settings
    out: list[str] = []
    w = out.append
    w("# Soak: no growth under long load\n")
    w(f"Generated by `benchmarks/soak.py` on {result.started} ({result.wall_s / 60:.1f} min of wall time).\n")
    w("```\n" + result.command + "\n```\n")
    w(f"The full stack (Kamailio + rtpengine + Redis + controller, as `make bench`'s full mode) under "
      f"**{s['rate']:g} calls/s** for **{s['duration_s']:g} s** (SIPp UAC 127.0.0.2 -> the DID -> SIPp UAS "
      f"127.0.0.3, {s['call_s']:g} s calls with G.711 RTP through rtpengine), sampled every {s['sample_s']:g} s; "
      f"trends are fitted on the samples after a warm-up of {s['warmup_s']:g} s. Code: commit "
      f"{result.machine.get('commit', 'unknown')}.\n")
    findings = result.findings
    if findings:
        w("**Findings:**\n")
        out.extend(f"- {_escape(f)}" for f in findings)
        w("")
    elif result.trends_count:
        w("**No finding: every judged metric flat, every per-call key expiring, the stack idle after the load.**\n")
    else:
        w("**No finding among the keys and the checks after the load.**\n")
    if not result.trends_count:
        w(f"**The trend window ({result.window_s:.0f} s) is shorter than {MIN_JUDGED_WINDOW_S:.0f} s: the verdicts "
          "below are indicative only (warm-up is not over that soon) and count as no finding.**"
          + (" Rising beyond the threshold in this window: " + "; ".join(result.growing) + "."
             if result.growing else "") + "\n")
    for note in result.notes:
        w(f"- {note}")
    if result.notes:
        w("")
    _load(result, w)
    _trends(result, w)
    _checks(result, w)
    _keys(result, w)
    _samples(result, w)
    _rule(result, w)
    w("## Machine\n")
    w("| | |\n|---|---|")
    for key, value in result.machine.items():
        w(f"| {key.replace('_', ' ')} | {_escape(str(value))} |")
    w("")
    return "\n".join(out)


def _load(result: SoakResult, w) -> None:
    p = result.sipp
    created, ok, failed = p.get("created", 0), p.get("successful", 0), p.get("failed", 0)
    pct = f"{100 * ok / created:.3f} %" if created else "-"
    load_s = result.settings["duration_s"]
    w("## Load\n")
    w("| | |\n|---|---|")
    w(f"| calls placed / successful / failed | {created} / {ok} / {failed} ({pct} successful) |")
    w(f"| placed per second over the load | {created / load_s:.1f} (asked {result.settings['rate']:g}) |"
      if load_s else "| placed per second | - |")
    if created > ok + failed:
        w(f"| neither successful nor failed | {created - ok - failed} (up when a SIPp exited early, or at its end) |")
    causes = p.get("failure_causes") or {}
    w(f"| failure causes | {', '.join(f'{k} {v}' for k, v in causes.items()) or '-'} |")
    w(f"| SIPp UAC restarts (it exited before the end of the load) | {p.get('uac_restarts', 0)} |")
    w(f"| SIPp UAS restarts | {p.get('uas_restarts', 0)} |")
    if p.get("exits"):
        w(f"| SIPp UAC exits | {_escape('; '.join(p['exits']))} |")
    cores = ", ".join(f"{name} {value:.2f}" for name, value in result.cpu_cores.items())
    w(f"| CPU over the load, cores | {cores or '-'} |")
    w("")


def _trends(result: SoakResult, w) -> None:
    window = steady(result.samples, float(result.settings["warmup_s"]))
    span = f"{window[0].t:.0f}-{window[-1].t:.0f} s" if window else "none"
    w(f"## Trends after warm-up ({len(window)} samples, t = {span})\n")
    w("| metric | mean | first | last | slope per hour (± std. error) | relative, per hour | flat if within "
      "| verdict |")
    w("|---|---|---|---|---|---|---|---|")
    for t in result.trends:
        d = t.digits
        slope = "-" if t.slope_per_h is None else _signed(t.slope_per_h, d) + (
            f" ± {t.stderr_per_h:.{d}f}" if t.stderr_per_h is not None else "")
        rel = "-" if t.change_pct_per_h is None else f"{t.change_pct_per_h:+.2f} %"
        limit = "-" if t.threshold_per_h is None else f"± {t.threshold_per_h:.{d}f}"
        shown = t.verdict if t.judged else f"({t.verdict}, not judged)"
        if t.judged and t.verdict in LEAKS:
            shown = f"**{shown}**"
        w(f"| {t.label} | {_num(t.mean, d)} {t.unit} | {_num(t.first, d)} | {_num(t.last, d)} | {slope} "
          f"| {rel} | {limit} | {shown} |")
    w("")


def _checks(result: SoakResult, w) -> None:
    w("## After the load\n")
    if not result.checks:
        w("No check ran (the run ended early).\n")
        return
    w("| check | result | detail |\n|---|---|---|")
    for c in result.checks:
        w(f"| {c.what} | {'ok' if c.ok else '**FAILED**'} | {_escape(c.detail)} |")
    w("")


def _keys(result: SoakResult, w) -> None:
    w("## Redis keys\n")
    w("Every key of both databases, scanned half-way through the load and again once the calls had ended "
      "and their keys' `call_keys_ttl_after_end_s` had run out. Per-call keys must carry a TTL: during the "
      "load they live at most `max_call_duration_s`, afterwards they are gone. Node-wide keys (the streams, "
      "the registrar, routing tables, timers) live as long as the node.\n")
    if not result.audits:
        w("No scan ran.\n")
        return
    w("| scanned | database | key group | per call | keys | with TTL | without TTL | e.g. |")
    w("|---|---|---|---|---|---|---|---|")
    for a in result.audits:
        if not a.groups:
            w(f"| {a.when} | {a.database} | (empty) | | 0 | 0 | 0 | |")
        for g in a.groups:
            bad = f"**{g.without_ttl}**" if g.problem else str(g.without_ttl)
            eg = ", ".join(f"`{k}`" for k in g.examples_without_ttl) if g.problem else ""
            w(f"| {a.when} | {a.database} | `{g.name}` | {'yes' if g.per_call else 'no'} | {g.keys} | "
              f"{g.with_ttl} | {bad} | {_escape(eg)} |")
    w("")


def _samples(result: SoakResult, w) -> None:
    rows = table_rows(result.samples)
    every = "" if len(rows) == len(result.samples) else f" ({len(rows)} of {len(result.samples)}: every few, and " \
        "the last of each phase; all of them in samples.csv)"
    w(f"## Samples{every}\n")
    heads = [f"{BY_KEY[k].label} ({BY_KEY[k].unit})" for k in TABLE_COLUMNS]
    w("| t (s) | phase | calls placed / ok / failed | " + " | ".join(heads) + " |")
    w("|" + "---|" * (3 + len(heads)))
    for sample in rows:
        v = sample.values
        calls = " / ".join(_num(v.get(k), 0) for k in COUNTERS)
        cells = [_num(None if v.get(k) is None else v[k] / BY_KEY[k].scale, BY_KEY[k].digits) for k in TABLE_COLUMNS]
        w(f"| {sample.t:.0f} | {sample.phase} | {calls} | " + " | ".join(cells) + " |")
    w("")


def _rule(result: SoakResult, w) -> None:
    cap = result.settings.get("event_log_max")
    w("## How the verdicts are made\n")
    w(f"""- Each metric's least-squares line through the samples after warm-up (under load); its slope is given per
  hour, and relative to the metric's mean over the same samples.
- **flat**: |slope| x 1 h <= max({REL_THRESHOLD:.0%} of the mean, the metric's floor); the floors are 1 MiB/h
  for the controller's RSS, Kamailio's shared memory and Redis memory, 2 MiB/h for the other RSS figures,
  3 fds/h per daemon, 5/h for calls, dialogs and htable entries, 10/h for transactions, 20/h for keys and
  unconsumed notifications, 100/h for event log entries (the column "flat if within").
- Beyond that: **GROWS** (a finding) or *falls* when the slope is also {SIGNIFICANCE:g} standard errors
  from zero; otherwise *undecided (noise)*: the window is too short for that metric's noise (a short run's
  gauges, e.g. rtpengine calls, swing by several per cent from sample to sample).
- A window shorter than {MIN_JUDGED_WINDOW_S:.0f} s after warm-up yields indicative verdicts only, no finding.
- The event log (`xfer:events`) grows by design until it holds about `event_log_max` entries ({_thousands(cap)}); while
  it is below that cap, a rise of Redis memory, its RSS and the streams is *grows by design*, judged by
  "Redis used_memory without the streams" instead. `--event-log-max` lowers the cap so that the whole
  of Redis' memory can be judged within the run.
- Shown but not judged: Redis' append-only file, which grows with every write until Redis rewrites it.
- Redis keys are grouped by the templates of `controller/wire.py`; per call (a TTL required, gone after the
  calls): {", ".join(f"`{getattr(wire, n)}`" for n in PER_CALL_NAMES if hasattr(wire, n))}, every key of
  rtpengine's database, and any key outside the layout.
- Calls placed/ok/failed are SIPp's cumulative counters (summed over its restarts), read from its
  `-trace_stat` file; RSS and PSS from `/proc/PID/status` and `smaps_rollup`, fds from `/proc/PID/fd`,
  each daemon with all its processes.
""")


def _signed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"



def _thousands(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)
