"""Prometheus histograms from a /metrics page: the difference over a step, and quantiles from buckets.

Quantiles are estimated the way Prometheus' histogram_quantile() does: find the bucket that holds
the rank, interpolate linearly inside it. The estimate is only as fine as the buckets; a quantile in
the +Inf bucket is reported as the highest finite bound, flagged as a lower bound.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called exactly `name`."""
    out = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            labels = dict(_LABEL.findall(match["labels"] or ""))
            out.append((labels, float(match["value"])))
    return out


def counter(text: str, name: str, **match: str) -> float:
    """Sum of a counter's samples whose labels include `match`."""
    return sum(value for labels, value in samples(text, name) if all(labels.get(k) == v for k, v in match.items()))


@dataclass(frozen=True)
class Histogram:
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last
    total: float  # _sum
    count: float  # _count

    @classmethod
    def parse(cls, text: str, name: str, **match: str) -> Histogram:
        def wanted(labels: dict[str, str]) -> bool:
            return all(labels.get(k) == v for k, v in match.items())

        buckets: dict[float, float] = {}
        for labels, value in samples(text, f"{name}_bucket"):
            if wanted(labels):
                buckets[float(labels["le"])] = buckets.get(float(labels["le"]), 0.0) + value
        total = sum(v for labels, v in samples(text, f"{name}_sum") if wanted(labels))
        count = sum(v for labels, v in samples(text, f"{name}_count") if wanted(labels))
        return cls(tuple(sorted(buckets.items())), total, count)

    def __sub__(self, earlier: Histogram) -> Histogram:
        before = dict(earlier.buckets)
        return Histogram(tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets),
                         self.total - earlier.total, self.count - earlier.count)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> tuple[float | None, bool]:
        """(estimate of quantile q in 0..1, True if it is only a lower bound: the rank fell in +Inf)."""
        if not self.buckets or self.count <= 0:
            return None, False
        rank = q * self.buckets[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank and cumulative > lower_count:
                if math.isinf(bound):
                    return lower_bound, True
                share = (rank - lower_count) / (cumulative - lower_count)
                return lower_bound + (bound - lower_bound) * share, False
            lower_bound, lower_count = bound, cumulative
        return lower_bound, True
