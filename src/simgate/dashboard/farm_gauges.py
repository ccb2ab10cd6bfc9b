"""Farm gauges for /metrics, read from the database at scrape time.

Counting in the database rather than in process memory keeps the numbers true with several
`serve` and `worker` processes on one database, and across restarts. A scrape costs a few
aggregate queries, once per scrape interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from simgate.domain.read_model import NUMBER_STATES, MarketplaceStats, OutboxSummary, StatusCount
from simgate.domain.types import Timestamp
from simgate.storage.ports import Reports, Store

log = logging.getLogger("simgate.metrics")


@dataclass(frozen=True, slots=True)
class Snapshot:
    states: dict[str, int]
    statuses: list[StatusCount]
    markets: list[MarketplaceStats]
    """All time, per marketplace and currency."""
    outbox: OutboxSummary
    free_by_lane: dict[str, int]


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
            "simgate_earnings_rub", "Money earned by sales (FINISH status 3) paid in RUB, in RUB"
        ),
        "sales": CounterMetricFamily("simgate_sales", "Operations finished as sold (status 3)"),
        "market_earnings": CounterMetricFamily(
            "simgate_marketplace_earnings",
            "Money earned by sales, in units of its currency (never added across currencies)",
            labels=["marketplace", "currency"],
        ),
        "market_sales": CounterMetricFamily(
            "simgate_marketplace_sales", "Operations finished as sold, by marketplace", labels=["marketplace"]
        ),
        "open": GaugeMetricFamily(
            "simgate_open_operations", "Operations open now, by marketplace", labels=["marketplace"]
        ),
        "lanes": GaugeMetricFamily(
            "simgate_lane_free_numbers",
            "Free SIMs by lane: the marketplace that counts and issues them ('none': no enabled"
            " marketplace may sell them); a leaving SIM still counts in its old lane",
            labels=["lane"],
        ),
        "pending": GaugeMetricFamily("simgate_outbox_pending", "SMS pushes not yet acknowledged"),
        "oldest": GaugeMetricFamily(
            "simgate_outbox_oldest_pending_seconds",
            "Age of the oldest pending push (0 when none); an activation's SMS is worthless after 20 min",
        ),
        "finished": GaugeMetricFamily("simgate_outbox_deliveries", "Pushes by final state", labels=["state"]),
    }


def with_pruned(
    markets: Iterable[MarketplaceStats], pruned: Iterable[MarketplaceStats]
) -> list[MarketplaceStats]:
    """All-time figures with the sales pruned from history added back: a counter that went
    down would read to Prometheus as a restart (and a spike in any rate of it)."""
    found = {(m.marketplace, m.currency): m for m in markets}
    for p in pruned:
        kept = found.get((p.marketplace, p.currency), MarketplaceStats(p.marketplace, p.currency))
        found[(p.marketplace, p.currency)] = replace(
            kept, sold=kept.sold + p.sold, earnings=kept.earnings + p.earnings
        )
    return [found[key] for key in sorted(found)]


class FarmCollector(Collector):
    def __init__(self, store: Store, clock: Callable[[], Timestamp]) -> None:
        self.store = store
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        # Without describe(), registering would run collect() and query the database at start.
        return list(_families().values())

    def _read(self, r: Reports) -> Snapshot:
        # Epoch 0 as both starts: every operation ever, per marketplace and currency.
        markets = with_pruned(r.marketplace_stats(0.0, 0.0), r.pruned_sales())
        return Snapshot(r.number_states(), r.operation_statuses(), markets, r.outbox(), r.free_by_lane())

    def collect(self) -> Iterator[Metric]:
        f = _families()
        try:
            # Synchronous: prometheus_client renders on the caller's thread (the /metrics
            # endpoint's worker thread, not the event loop), which waits the few milliseconds
            # these aggregate queries take on the read model, never behind the writer.
            snap = self.store.run_report(self._read)
        except Exception:
            log.exception("reading farm gauges for /metrics failed")
            f["up"].add_metric([], 0)
            yield f["up"]
            return
        f["up"].add_metric([], 1)
        outbox = snap.outbox
        for state in NUMBER_STATES:
            f["numbers"].add_metric([state], snap.states.get(state, 0))
        for count in snap.statuses:
            f["operations"].add_metric([count.kind.value, count.status], count.count)
        f["earnings"].add_metric([], sum(m.earnings for m in snap.markets if m.currency == "RUB") / 100)
        f["sales"].add_metric([], sum(m.sold for m in snap.markets))
        sales: dict[str, int] = {}
        held: dict[str, int] = {}
        for m in snap.markets:
            f["market_earnings"].add_metric([m.marketplace, m.currency], m.earnings / 100)
            sales[m.marketplace] = sales.get(m.marketplace, 0) + m.sold
            held[m.marketplace] = held.get(m.marketplace, 0) + m.open
        for marketplace in sorted(sales):
            f["market_sales"].add_metric([marketplace], sales[marketplace])
            f["open"].add_metric([marketplace], held[marketplace])
        for lane, free in sorted(snap.free_by_lane.items()):
            f["lanes"].add_metric([lane], free)
        f["pending"].add_metric([], outbox.pending)
        f["oldest"].add_metric([], outbox.oldest_age(self.clock()) or 0.0)
        for state, value in (
            ("delivered", outbox.delivered),
            ("rejected", outbox.rejected),
            ("given_up", outbox.given_up),
        ):
            f["finished"].add_metric([state], value)
        yield from f.values()
