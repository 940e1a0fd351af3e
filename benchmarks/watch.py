"""What the probes see while a step's SIPp load runs: one loop for every kind of step."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from benchmarks.probes import KamailioProbe, RedisProbe, RtpengineProbe, udp_drops
from benchmarks.sipp_load import SippUac

PROBE_INTERVAL_S = 0.5


class Probed(Protocol):
    kamailio: KamailioProbe
    rtpengine: RtpengineProbe
    redis: RedisProbe


@dataclass
class Watch:
    """Peaks and samples over one step (probed every half second while SIPp runs)."""

    peak_dialogs: int = 0
    shm_max: int = 0
    max_backlog: int = 0
    end_backlog: int = 0  # the notification backlog when SIPp placed its last call
    pings: list[float] = field(default_factory=list)  # rtpengine ng round trips, ms
    drops: dict[str, int] = field(default_factory=dict)  # last kernel drop count seen per socket


def watch_until_done(env: Probed, uac: SippUac, sockets: dict[str, tuple[str, int]], drops: dict[str, int], *,
                     backlog: bool, on_probe: Callable[[float, int], None] | None = None) -> Watch:
    """Probe the stack until SIPp exits. `backlog`: read the controller's notification backlog (only a
    stack with a controller has one); `on_probe(elapsed_s, active_dialogs)` runs after each probe."""
    watch = Watch(drops=dict(drops))
    next_probe = 0.0
    while uac.poll() is None:
        elapsed = time.monotonic() - uac.started
        if elapsed >= next_probe:
            dialogs = env.kamailio.active_dialogs()
            watch.peak_dialogs = max(watch.peak_dialogs, dialogs)
            watch.shm_max = max(watch.shm_max, env.kamailio.shm_used())
            watch.pings.append(env.rtpengine.ping_ms())
            if backlog:
                current = env.redis.backlog()
                watch.max_backlog = max(watch.max_backlog, current)
                if elapsed <= uac.generation_s:
                    watch.end_backlog = current
            watch.drops |= udp_drops(sockets)  # the UAC's socket goes when it exits
            next_probe = elapsed + PROBE_INTERVAL_S
            if on_probe is not None:
                on_probe(elapsed, dialogs)
        time.sleep(0.05)
    return watch
