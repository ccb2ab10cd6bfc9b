"""Prometheus metrics for the HTTP face. One registry per app, so tests can build many."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "simgate_marketplace_requests",
            "Marketplace calls answered, by call, answer status and HTTP status code",
            ["marketplace", "call", "status", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "simgate_marketplace_request_seconds",
            "Time to answer a marketplace call (the deadline is 10 s)",
            ["marketplace", "call"],
            buckets=BUCKETS,
            registry=registry,
        )

        self._counted: dict[tuple[str, str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}
        """The labelled series by their labels: `labels()` checks, joins and locks on every
        call (~4 us of every marketplace call's few hundred)."""

    def observe(self, marketplace: str, call: str, code: int, payload: Any, seconds: float) -> None:
        # `code` beside the answer's status word: an ERROR is a 401 (a wrong key) or a 503
        # (the database), and the operator acts on which.
        status = payload.get("status", "?") if isinstance(payload, dict) else "?"
        key = (marketplace, call, str(status), code)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(marketplace, call, str(status), str(code))
        counter.inc()
        timer = self._timed.get(key[:2])
        if timer is None:
            timer = self._timed[key[:2]] = self.latency.labels(marketplace, call)
        timer.observe(seconds)
