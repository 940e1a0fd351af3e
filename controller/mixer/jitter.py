"""A small adaptive jitter buffer per participant: packets in, in any order; one 20 ms frame out per tick.

Playout runs on the mixer's clock a little behind the packets: the delay adapts to the stream's
interarrival jitter (RFC 3550 6.4.1), between `min_frames` and `max_frames`. A packet for a frame already
played is late (dropped, counted); a frame nobody sent is lost (None: the others go on, nobody waits); a
tick with nothing buffered at all is an underrun: playout waits a frame for the late sender;
a buffer that runs too far ahead is cut back (latency stays bounded); a stream silent for
`stopped_frames` starts buffering afresh when it comes back, as does a new SSRC (a re-pairing in
rtpengine, a re-INVITE). Pure: the caller passes arrival times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .g711 import FRAME_SAMPLES, Samples

__all__ = ["JitterBuffer", "JitterStats"]

_WRAP = 1 << 32
_HALF = 1 << 31
_SAMPLES_PER_MS = 8  # 8 kHz


@dataclass
class JitterStats:
    received: int = 0
    late: int = 0
    lost: int = 0
    duplicates: int = 0
    #: frames skipped to bring a buffer that ran ahead back to its target delay
    skipped: int = 0
    #: ticks with nothing to play and nothing newer buffered (playout waited)
    underruns: int = 0
    resets: int = 0


class JitterBuffer:
    def __init__(self, *, min_frames: int = 1, max_frames: int = 8, stopped_frames: int = 25,
                 frame: int = FRAME_SAMPLES):
        self.min_frames, self.max_frames = min_frames, max_frames
        self.stopped_frames, self.frame = stopped_frames, frame
        self.stats = JitterStats()
        self.jitter_ms = 0.0
        self._reset()

    def _reset(self) -> None:
        self.packets: dict[int, Samples] = {}  # by unwrapped RTP timestamp
        self.playout: int | None = None  # the timestamp of the next frame out; None: buffering
        self._ssrc: int | None = None
        self._last_raw = self._last_ext = 0
        self._last_arrival: float | None = None
        self._misses = 0

    @property
    def target_frames(self) -> int:
        """The delay playout keeps behind the newest packet: about twice the jitter, plus one frame."""
        wanted = 1 + math.ceil(2 * self.jitter_ms / (self.frame / _SAMPLES_PER_MS))
        return max(self.min_frames, min(self.max_frames, wanted))

    def push(self, ssrc: int, timestamp: int, samples: Samples, arrival_ms: float) -> bool:
        """One packet's decoded samples; False when it is dropped (late or a duplicate)."""
        if self._ssrc is not None and ssrc != self._ssrc:
            self.stats.resets += 1
            self._reset()
        if self._ssrc is None:
            self._ssrc, self._last_raw, self._last_ext = ssrc, timestamp, timestamp
        ts = self._last_ext + ((timestamp - self._last_raw + _HALF) % _WRAP - _HALF)
        if self._last_arrival is not None and ts > self._last_ext:
            # RFC 3550 6.4.1: D = the difference of transit times, J += (|D| - J) / 16
            transit = (arrival_ms - self._last_arrival) - (ts - self._last_ext) / _SAMPLES_PER_MS
            self.jitter_ms += (abs(transit) - self.jitter_ms) / 16
        if ts >= self._last_ext:
            self._last_raw, self._last_ext, self._last_arrival = timestamp, ts, arrival_ms
        if self.playout is not None and ts + len(samples) <= self.playout:
            self.stats.late += 1
            return False
        if ts in self.packets:
            self.stats.duplicates += 1
            return False
        self.packets[ts] = samples
        self.stats.received += 1
        return True

    def pop(self) -> Samples | None:
        """The next frame, or None: still buffering, or nothing came for it (lost)."""
        if self.playout is None:
            if not self.packets:
                return None
            first = min(self.packets)
            if self._buffered_end() - first < self.target_frames * self.frame:
                return None  # filling up to the target delay first
            self.playout = first
        ahead = self._buffered_end() - self.playout if self.packets else 0
        if ahead > (self.target_frames + 2) * self.frame:
            skip = ahead - self.target_frames * self.frame
            self.stats.skipped += skip // self.frame
            self.playout += skip - skip % self.frame
        out = self._take(self.playout, self.playout + self.frame)
        if out is not None:
            self.playout += self.frame
            self._misses = 0
            return out
        if self.packets:
            # a later packet is here: this frame's is lost; play on from the next one next tick
            self.stats.lost += 1
            self.playout += self.frame
        else:
            # nothing newer either: the sender is late (jitter, or its clock runs slow). Playout waits for
            # it, one frame later (the delay grows, the cut-back above trims it), rather than skipping
            # ahead and then finding every packet after it late
            self.stats.underruns += 1
        self._misses += 1
        if self._misses >= self.stopped_frames:
            # the stream stopped: when it comes back it is buffered afresh, at its own new timing
            self.stats.resets += 1
            self._reset()
        return None

    def _buffered_end(self) -> int:
        return max(ts + len(samples) for ts, samples in self.packets.items())

    def _take(self, start: int, end: int) -> Samples | None:
        out: Samples | None = None
        for ts in sorted(ts for ts in self.packets if ts < end):
            samples = self.packets[ts]
            if ts + len(samples) > start:
                if out is None:
                    out = np.zeros(self.frame, dtype=np.int16)
                lo, hi = max(ts, start), min(ts + len(samples), end)
                out[lo - start:hi - start] = samples[lo - ts:hi - ts]
            if ts + len(samples) <= end:
                del self.packets[ts]
        return out
