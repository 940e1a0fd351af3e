"""Round trips per call or per transfer: what each component was asked, counted by the component itself.

* Redis: `INFO commandstats` (calls and microseconds of CPU per command), whoever sent them (Kamailio's
  Python, the controller, rtpengine's call persistence);
* rtpengine: its ng control statistics (count and time spent per command, Kamailio's and the
  controller's together: both talk from the same address);
* Kamailio's JSON-RPC: the controller's own count per method (`xfer_kamailio_rpc_total`).

The benchmark's own probes (INFO, DBSIZE, MEMORY USAGE, XLEN, XINFO; ng statistics and ping) and the
controller's once-a-second checks are left out: they do not grow with the calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.promhist import samples

#: Redis commands only the benchmark's probes and the controller's periodic checks send
PROBE_REDIS = frozenset({"info", "dbsize", "memory|usage", "xlen", "xinfo|groups", "ping", "hello", "client|setinfo",
                         "client|setname", "select", "auth"})
#: ng commands of the probes and of the controller's rtpengine watch
PROBE_NG = frozenset({"ping", "stats", "list"})

Counts = dict[str, tuple[float, float]]  # name -> (count, cost: µs for Redis, ms for ng)


@dataclass
class RoundTripSnapshot:
    redis: Counts = field(default_factory=dict)
    ng: Counts = field(default_factory=dict)
    rpc: dict[str, float] = field(default_factory=dict)


def redis_counts(commandstats: dict[str, Any]) -> Counts:
    """INFO commandstats as redis-py parses it: {"cmdstat_hset": {"calls": 3, "usec": 12, ...}}."""
    out: Counts = {}
    for key, stats in commandstats.items():
        name = key.removeprefix("cmdstat_")
        if isinstance(stats, dict):
            out[name] = (float(stats.get("calls", 0)), float(stats.get("usec", 0)))
    return out


def ng_counts(controlstatistics: dict[str, Any]) -> Counts:
    """rtpengine's control statistics summed over its proxies: {"offer": (count, ms spent)}."""
    out: dict[str, list[float]] = {}
    for proxy in controlstatistics.get("proxies") or []:
        for key, value in proxy.items():
            if key.endswith("count") and key != "errorcount":
                name = key.removesuffix("count")
                seconds = float(proxy.get(f"{name}duration", 0) or 0)
                entry = out.setdefault(name, [0.0, 0.0])
                entry[0] += float(value)
                entry[1] += seconds * 1000
    return {k: (v[0], v[1]) for k, v in out.items()}


def rpc_counts(metrics_text: str) -> dict[str, float]:
    return {labels.get("method", "?"): value for labels, value in samples(metrics_text, "xfer_kamailio_rpc_total")}


def per_unit(before: RoundTripSnapshot, after: RoundTripSnapshot, units: int) -> dict[str, Any]:
    """What `units` calls (or transfers) cost each component, per unit, in a JSON-ready dict:
    {"redis": {cmd: [count, µs]}, "ng": {cmd: [count, ms]}, "rpc": {method: count}, "totals": {...}}."""
    n = max(units, 1)

    def delta(a: Counts, b: Counts, skip: frozenset[str]) -> dict[str, list[float]]:
        out = {}
        for name, (count, cost) in b.items():
            c0, k0 = a.get(name, (0.0, 0.0))
            if name not in skip and count - c0 > 0:
                out[name] = [round((count - c0) / n, 3), round((cost - k0) / n, 3)]
        return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))

    redis = delta(before.redis, after.redis, PROBE_REDIS)
    ng = delta(before.ng, after.ng, PROBE_NG)
    rpc = {m: round((v - before.rpc.get(m, 0.0)) / n, 3) for m, v in after.rpc.items() if v - before.rpc.get(m, 0.0)}
    return {
        "redis": redis, "ng": ng, "rpc": rpc,
        "totals": {"redis": round(sum(v[0] for v in redis.values()), 2),
                   "redis_us": round(sum(v[1] for v in redis.values()), 1),
                   "ng": round(sum(v[0] for v in ng.values()), 2),
                   "ng_ms": round(sum(v[1] for v in ng.values()), 3),
                   "rpc": round(sum(rpc.values()), 2)},
    }


def take(env: Any) -> RoundTripSnapshot:
    """Read every counter of a running environment (benchmarks.environment.Environment)."""
    stats = env.rtpengine.statistics()
    return RoundTripSnapshot(
        redis=redis_counts(env.redis.client.info("commandstats")),
        ng=ng_counts(stats.get("controlstatistics") or {}),
        rpc=rpc_counts(env.controller.metrics()) if getattr(env, "controller", None) else {},
    )


def render(columns: list[tuple[str, dict[str, Any] | None]], top: int = 8) -> list[str]:
    """Markdown: one table of totals per unit, then each column's busiest commands."""
    shown = [(label, trips) for label, trips in columns if trips]
    if not shown:
        return ["Not measured in this run."]
    lines = ["| per unit | " + " | ".join(label for label, _ in shown) + " |",
             "|---|" + "---|" * len(shown)]
    rows = (("Redis commands (all clients: Kamailio, controller, rtpengine's persistence)", "redis", "{:.1f}"),
            ("Redis CPU in those commands (µs, its own accounting)", "redis_us", "{:.0f}"),
            ("rtpengine ng commands (Kamailio's and the controller's)", "ng", "{:.1f}"),
            ("rtpengine time in those commands (ms, its own accounting)", "ng_ms", "{:.2f}"),
            ("Kamailio JSON-RPC requests from the controller", "rpc", "{:.1f}"))
    for title, key, fmt in rows:
        lines.append(f"| {title} | " + " | ".join(fmt.format(t["totals"][key]) for _, t in shown) + " |")
    lines.append("")
    for label, trips in shown:
        redis = ", ".join(f"{name} {v[0]:g}" for name, v in list(trips["redis"].items())[:top]) or "-"
        ng = ", ".join(f"{name} {v[0]:g} ({v[1]:.2f} ms)" for name, v in list(trips["ng"].items())[:top]) or "-"
        rpc = ", ".join(f"{name} {v:g}" for name, v in trips["rpc"].items()) or "-"
        lines.append(f"- {label}: Redis {redis}; ng {ng}; RPC {rpc}.")
    return lines
