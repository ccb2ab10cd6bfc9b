"""Farm gauges for /metrics, read from the database at scrape time.

Counting in the database rather than in process memory keeps the numbers true with several
`serve` and `worker` processes on one database, and across restarts. A scrape costs a few
aggregate queries, once per scrape interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from simgate.domain.reports import NUMBER_STATES, Earnings, OutboxSummary, StatusCount
from simgate.domain.types import Timestamp
from simgate.storage.ports import Store, UnitOfWork

log = logging.getLogger("simgate.metrics")

Snapshot = tuple[dict[str, int], list[StatusCount], Earnings, OutboxSummary]


def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    return {
        "up": GaugeMetricFamily(
            "simgate_farm_scrape_ok", "1 when the farm gauges below could be read from the database"
        ),
        "numbers": GaugeMetricFamily("simgate_numbers", "SIM numbers by state", labels=["state"]),
        "operations": GaugeMetricFamily(
            "simgate_operations", "Operations in the database by kind and status", labels=["kind", "status"]
        ),
        "earnings": CounterMetricFamily(
            "simgate_earnings_rub", "Money earned by sales (FINISH status 3), in RUB"
        ),
        "sales": CounterMetricFamily("simgate_sales", "Operations finished as sold (status 3)"),
        "pending": GaugeMetricFamily("simgate_outbox_pending", "SMS pushes not yet acknowledged"),
        "oldest": GaugeMetricFamily(
            "simgate_outbox_oldest_pending_seconds",
            "Age of the oldest pending push (0 when none); an activation's SMS is worthless after 20 min",
        ),
        "finished": GaugeMetricFamily("simgate_outbox_deliveries", "Pushes by final state", labels=["state"]),
    }


class FarmCollector(Collector):
    def __init__(self, store: Store, clock: Callable[[], Timestamp]) -> None:
        self.store = store
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        # Without describe(), registering would run collect() and query the database at start.
        return list(_families().values())

    def _read(self, uow: UnitOfWork) -> Snapshot:
        r = uow.reports
        return r.number_states(), r.operation_statuses(), r.earnings(), r.outbox()

    def collect(self) -> Iterator[Metric]:
        f = _families()
        try:
            # Synchronous: prometheus_client renders on the caller's thread. A scrape holds
            # the request for the few milliseconds these aggregate queries take.
            states, statuses, earnings, outbox = self.store.run(self._read)
        except Exception:
            log.exception("reading farm gauges for /metrics failed")
            f["up"].add_metric([], 0)
            yield f["up"]
            return
        f["up"].add_metric([], 1)
        for state in NUMBER_STATES:
            f["numbers"].add_metric([state], states.get(state, 0))
        for count in statuses:
            f["operations"].add_metric([count.kind.value, count.status], count.count)
        f["earnings"].add_metric([], earnings.earnings / 100)
        f["sales"].add_metric([], earnings.sold)
        f["pending"].add_metric([], outbox.pending)
        f["oldest"].add_metric([], outbox.oldest_age(self.clock()) or 0.0)
        for state, value in (
            ("delivered", outbox.delivered),
            ("rejected", outbox.rejected),
            ("given_up", outbox.given_up),
        ):
            f["finished"].add_metric([state], value)
        yield from f.values()
