"""Percentiles and latency summaries; plain Python so the smoke test runs it in microseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks.

    The same definition as numpy's default ("linear"), so a figure here can be checked
    against any other tool. An empty sample has no percentile: that is a failed run, not 0.
    """
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency sample summarised, in milliseconds."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarise(seconds: Sequence[float]) -> Latency:
    """Summarise latencies measured in seconds (time.perf_counter deltas)."""
    ms = [value * 1000 for value in seconds]
    return Latency(
        count=len(ms),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        mean_ms=sum(ms) / len(ms),
        max_ms=max(ms),
    )


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, or None when the baseline is zero (nothing to compare with)."""
    return None if baseline == 0 else value / baseline
