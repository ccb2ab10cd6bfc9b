"""The console's read model over the in-memory store (same contract as sql_reports.py).

Written as plain loops over the records with the domain's report rules, so the contract
tests check the SQL against the rules, not against a second copy of the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from simgate.domain.alerts import OpenAlert
from simgate.domain.messages import Attempt, DeliveryState, Message
from simgate.domain.model import Number, Operation, OperationKind
from simgate.domain.read_model import (
    NUMBER_STATES,
    DayStats,
    DeliveryQuery,
    DeliveryReport,
    Earnings,
    Exclusion,
    MarketplaceStats,
    MessageQuery,
    MessageReport,
    NumberQuery,
    NumberReport,
    OperationQuery,
    OperationReport,
    OutboxSummary,
    Page,
    Paged,
    RunStarts,
    Stats,
    StatusCount,
    day_index,
    earned_rub,
    group_stats,
    losing_from_kept,
    marketplace_stats,
    status_name,
    streaks,
)
from simgate.domain.types import Kopecks, NumberId, OperationId, Timestamp
from simgate.storage.memory_alerts import MemoryAlerts
from simgate.storage.memory_filters import (
    delivery_matches,
    message_matches,
    number_matches,
    operation_matches,
)
from simgate.storage.memory_state import MemoryState

R = TypeVar("R")
Y = TypeVar("Y")


def _page(found: Sequence[R], query: Paged, render: Callable[[R], Y]) -> Page[Y]:
    """One page of a listing, rendered, and the count of all its rows: how every listing
    pages (SqlReports._page's twin)."""
    return Page([render(row) for row in found[query.offset : query.offset + query.limit]], len(found))


class MemoryReports:
    def __init__(self, state: MemoryState) -> None:
        self.s = state

    # -- numbers ---------------------------------------------------------------------------

    def _report(self, number: Number, streak_since: Timestamp | None) -> NumberReport:
        operations = sorted(
            (o for o in self.s.operations.values() if o.number_id == number.id), key=lambda o: o.id
        )
        messages = [m for m in self.s.outbox.messages.values() if m.number_id == number.id]
        with_sms = {m.operation_id for m in self.s.outbox.messages.values() if m.operation_id is not None}
        finished = [o for o in operations if o.finished_at is not None]
        recent = [o for o in finished if streak_since is None or o.opened_at >= streak_since]
        found = streaks((o.number_id, o.kind, o.id in with_sms) for o in recent)
        rent, activation = found.get(number.id, (0, 0))
        return NumberReport(
            number=number,
            exclusions=tuple(
                Exclusion(service, reason, marketplace)
                for (service, marketplace), reason in sorted(self.s.exclusions.get(number.id, {}).items())
            ),
            operations=len(operations),
            finished=len(finished),
            sold=sum(1 for o in finished if status_name(o.finished_at, o.finish_status) == "sold"),
            earnings=Kopecks(sum(earned_rub(o) for o in operations)),
            sms=len(messages),
            last_sms_at=max((m.stored_at for m in messages), default=None),
            rent_no_sms_streak=rent,
            activation_no_sms_streak=activation,
            open_marketplace=next((o.marketplace for o in operations if o.finished_at is None), None),
        )

    def numbers(self, query: NumberQuery) -> Page[NumberReport]:
        found = sorted(
            (n for n in self.s.numbers.values() if number_matches(n, query)),
            key=lambda n: (n.country, n.operator, n.phone),
        )
        if query.losing:
            # The kept streaks and run starts settle most SIMs, as in SQL (sql_reports.numbers):
            # the window is counted only for those whose run reaching a threshold began before it.
            kept, starts = self.s.no_sms_streaks, self.s.no_sms_since
            found = [
                n
                for n in found
                if self._losing(n, kept.get(n.id, (0, 0)), starts.get(n.id, (None, None)), query)
            ]
        return _page(found, query, lambda n: self._report(n, query.streak_since))

    def _losing(self, n: Number, kept: tuple[int, int], starts: RunStarts, query: NumberQuery) -> bool:
        settled = losing_from_kept(kept, starts, query.streak_since)
        return bool(self._report(n, query.streak_since).loss_reasons) if settled is None else settled

    def number(self, number_id: NumberId, streak_since: Timestamp | None = None) -> NumberReport | None:
        number = self.s.numbers.get(number_id)
        return None if number is None else self._report(number, streak_since)

    # -- operations ------------------------------------------------------------------------

    def _operation_report(self, operation: Operation) -> OperationReport:
        messages = [m for m in self.s.outbox.messages.values() if m.operation_id == operation.id]
        return OperationReport(
            operation,
            len(messages),
            max((m.stored_at for m in messages), default=None),
            self.s.finish_requests.get(operation.id, 0),
        )

    def operations(self, query: OperationQuery) -> Page[OperationReport]:
        found = sorted(
            (o for o in self.s.operations.values() if operation_matches(o, query)), key=lambda o: -o.id
        )
        return _page(found, query, self._operation_report)

    def operation(self, operation_id: OperationId) -> OperationReport | None:
        operation = self.s.operations.get(operation_id)
        return None if operation is None else self._operation_report(operation)

    # -- SMS and deliveries ----------------------------------------------------------------

    def messages(self, query: MessageQuery) -> Page[MessageReport]:
        by_message = {d.message_id: d for d in self.s.outbox.deliveries.values()}

        found = sorted(
            (m for m in self.s.outbox.messages.values() if message_matches(m, by_message.get(m.id), query)),
            key=lambda m: -m.id,
        )

        def report(m: Message) -> MessageReport:
            delivery = by_message.get(m.id)
            return MessageReport(m, delivery, () if delivery is None else self._attempts(delivery.id))

        return _page(found, query, report)

    def _attempts(self, delivery_id: int) -> tuple[Attempt, ...]:
        return tuple(self.s.outbox.attempts.get(delivery_id, []))

    def _delivery_report(self, delivery_id: int) -> DeliveryReport:
        d = self.s.outbox.deliveries[delivery_id]
        operation = self.s.operations[d.operation_id]
        claim = self.s.outbox.claims.get(d.id)
        return DeliveryReport(
            delivery=d,
            message=self.s.outbox.messages[d.message_id],
            kind=operation.kind,
            service=operation.service,
            claimed_by=None if claim is None or d.state is not DeliveryState.PENDING else claim.worker,
            attempts=self._attempts(d.id),
        )

    def deliveries(self, query: DeliveryQuery) -> Page[DeliveryReport]:
        found = sorted(
            (d for d in self.s.outbox.deliveries.values() if delivery_matches(d, query)),
            key=lambda d: -d.id,
        )
        return _page(found, query, lambda d: self._delivery_report(d.id))

    def delivery(self, delivery_id: int) -> DeliveryReport | None:
        if delivery_id not in self.s.outbox.deliveries:
            return None
        return self._delivery_report(delivery_id)

    # -- overview, stats, metrics ----------------------------------------------------------

    def number_states(self) -> dict[str, int]:
        counts = dict.fromkeys(NUMBER_STATES, 0)
        for n in self.s.numbers.values():
            counts[n.state] += 1
        return counts

    def operation_statuses(self, since: Timestamp | None = None) -> list[StatusCount]:
        tally: dict[tuple[OperationKind, str], int] = {}
        for o in self.s.operations.values():
            if since is None or o.opened_at >= since:
                key = (o.kind, status_name(o.finished_at, o.finish_status))
                tally[key] = tally.get(key, 0) + 1
        return sorted(
            (StatusCount(k, s, c) for (k, s), c in tally.items()), key=lambda c: (c.kind.value, c.status)
        )

    def outbox(self) -> OutboxSummary:
        counts = {state: 0 for state in DeliveryState}
        for d in self.s.outbox.deliveries.values():
            counts[d.state] += 1
        pending = [
            d.created_at for d in self.s.outbox.deliveries.values() if d.state is DeliveryState.PENDING
        ]
        return OutboxSummary(
            pending=counts[DeliveryState.PENDING], oldest_pending_at=min(pending, default=None),
            rejected=counts[DeliveryState.REJECTED], given_up=counts[DeliveryState.GIVEN_UP],
            delivered=counts[DeliveryState.DELIVERED],
        )  # fmt: skip

    def earnings(self, since: Timestamp | None = None) -> Earnings:
        finished = [
            o
            for o in self.s.operations.values()
            if o.finished_at is not None and (since is None or o.finished_at >= since)
        ]
        sold = [o for o in finished if status_name(o.finished_at, o.finish_status) == "sold"]
        return Earnings(len(sold), len(finished), Kopecks(sum(earned_rub(o) for o in finished)))

    def stats(self, day_starts: Sequence[Timestamp], top: int = 20, *, groups: bool = True) -> Stats:
        if not day_starts:
            return Stats(days=[])
        days = [DayStats(start) for start in day_starts]
        operations = sorted(self.s.operations.values(), key=lambda o: o.id)
        for o in operations:
            opened = day_index(o.opened_at, day_starts)
            if opened is not None:
                days[opened] = replace(days[opened], opened=days[opened].opened + 1)
            closed = None if o.finished_at is None else day_index(o.finished_at, day_starts)
            if closed is not None:
                day = days[closed]
                sold = status_name(o.finished_at, o.finish_status) == "sold"
                days[closed] = replace(
                    day, finished=day.finished + 1, sold=day.sold + sold,
                    earnings=Kopecks(day.earnings + earned_rub(o)),
                )  # fmt: skip
        since = day_starts[0]
        if not groups:
            return Stats(days=days)
        return Stats(
            days=days,
            by_service=group_stats(operations, since, "service"),
            by_country=group_stats(operations, since, "country"),
            by_number=group_stats(operations, since, "number", top),
        )

    def marketplace_stats(self, day_start: Timestamp, since: Timestamp) -> list[MarketplaceStats]:
        return marketplace_stats(self.s.operations.values(), day_start, since)

    def free_by_lane(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for n in self.s.numbers.values():
            if n.state == "free":
                found[n.lane or "none"] = found.get(n.lane or "none", 0) + 1
        return found

    def open_by_marketplace(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for o in self.s.operations.values():
            if o.finished_at is None:
                found[o.marketplace] = found.get(o.marketplace, 0) + 1
        return found

    def open_alerts(self) -> dict[str, str]:
        return MemoryAlerts(self.s.alerts).open_alerts()

    def firing(self, limit: int) -> Page[OpenAlert]:
        return MemoryAlerts(self.s.alerts).firing(limit)

    def last_calls(self) -> dict[str, Timestamp]:
        return MemoryAlerts(self.s.alerts).last_calls()

    def pruned_sales(self) -> list[MarketplaceStats]:
        return [
            MarketplaceStats(m, c, sold=sold, earnings=earnings)
            for (m, c), (sold, earnings) in sorted(self.s.pruned_sales.items())
        ]
