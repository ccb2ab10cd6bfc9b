"""An in-memory store for fast unit tests, held to the same contract tests as SQL.

It implements each query by calling the domain rules directly, which is what makes the
contract tests meaningful: the SQL must agree with the rules, not with a second copy of them.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable
from dataclasses import replace
from typing import TypeVar

from simgate.domain import lanes, ledger, rules
from simgate.domain.errors import ClaimConflict
from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.domain.model import (
    ExcludedCount,
    ExclusionFact,
    GroupAvailability,
    GroupCount,
    Number,
    NumberSpec,
    Operation,
    OperationKind,
    Order,
)
from simgate.domain.read_model import BLOCKED, NumberQuery, RunStarts, run_starts_after, streak_after
from simgate.domain.types import (
    EVERYWHERE,
    CountryName,
    Kopecks,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
    Timestamp,
)
from simgate.storage.memory_alerts import MemoryAlerts
from simgate.storage.memory_filters import number_matches
from simgate.storage.memory_history import MemoryHistory
from simgate.storage.memory_lanes import LaneState, MemoryLanes
from simgate.storage.memory_outbox import MemoryMessages, MemoryOutbox
from simgate.storage.memory_reports import MemoryReports
from simgate.storage.memory_state import MemoryState
from simgate.storage.ports import OneTripUnits, Reports, UnitOfWork, UpsertOutcome
from simgate.storage.sessions import MemorySessions

T = TypeVar("T")


class MemoryNumbers:
    def __init__(self, state: MemoryState, ledger: LedgerRules = NO_RULES) -> None:
        self.s = state
        self.ledger = ledger

    def upsert(self, spec: NumberSpec, now: Timestamp) -> UpsertOutcome:
        current = self.get_by_phone(spec.phone)
        if current is None:
            self.s.last_number_id += 1
            number_id = NumberId(self.s.last_number_id)
            self.s.numbers[number_id] = Number(
                number_id, spec.phone, spec.country, spec.operator, spec.port,
                spec.rentable, spec.enabled, online=True, open_operation_id=None,
                file_enabled=spec.enabled, marketplaces=spec.marketplaces,
                lane=self._only_lane(spec.marketplaces),
            )  # fmt: skip
            return "added"
        updated = replace(
            current, country=spec.country, operator=spec.operator, port=spec.port,
            rentable=spec.rentable, file_enabled=spec.enabled,
            enabled=spec.enabled and current.operator_enabled, marketplaces=spec.marketplaces,
        )  # fmt: skip
        if updated == current:
            return "unchanged"
        if updated.marketplaces != current.marketplaces:
            updated = replace(updated, lane_target=None, lane_leaving_at=None)
        if updated.lane is None:
            updated = replace(updated, lane=self._only_lane(spec.marketplaces))
        self.s.numbers[current.id] = updated
        return "updated"

    def _only_lane(self, allowed: frozenset[str]) -> str | None:
        found = lanes.lanes_for(allowed, [m.name for m in self.s.marketplaces.values() if m.enabled])
        return found[0] if len(found) == 1 else None

    def get(self, number_id: NumberId) -> Number | None:
        return self.s.numbers.get(number_id)

    def get_by_phone(self, phone: PhoneNumber) -> Number | None:
        return next((n for n in self.s.numbers.values() if n.phone == phone), None)

    def search(self, where: NumberQuery | None = None) -> list[Number]:
        where = where or NumberQuery(limit=1000)
        if where.losing:
            raise ValueError("losing is the console's read model's filter (reports.numbers)")
        found = [n for n in self.s.numbers.values() if number_matches(n, where)]
        found.sort(key=lambda n: (n.country, n.operator, n.phone))
        return found[where.offset : where.offset + where.limit]

    def _held(
        self, number: Number, marketplace: str, service: ServiceName | None, now: Timestamp | None
    ) -> bool:
        """A resale window hides it on `marketplace` (domain/ledger.py, the rule itself)."""
        if not self.ledger.resale:
            return False
        sales = ledger.sales_of(o for o in self.s.operations.values() if o.number_id == number.id)
        at = time.time() if now is None else now
        return ledger.resale_hold(self.ledger, sales, marketplace, service, at) is not None

    def find_free(self, order: Order, marketplace: str, now: Timestamp | None = None) -> Number | None:
        candidates = [
            n
            for n in self.s.numbers.values()
            if n.lane == marketplace
            and rules.matches_order(n, order, self.excluded_services(n.id, marketplace))
            and not self._held(n, marketplace, order.service, now)
        ]
        return min(candidates, key=lambda n: (n.last_issued_at or 0, n.id), default=None)

    def mark_busy(self, number_id: NumberId, operation_id: OperationId, now: Timestamp) -> None:
        number = self.s.numbers[number_id]
        if number.busy:
            raise ClaimConflict(f"number {number_id} was claimed by another operation")
        self.s.numbers[number_id] = replace(
            number, open_operation_id=operation_id, last_issued_at=now, lane_target=None, lane_leaving_at=None
        )

    def release(self, number_id: NumberId, operation_id: OperationId, kind: OperationKind) -> None:
        number = self.s.numbers[number_id]
        if number.open_operation_id == operation_id:
            self.s.numbers[number_id] = replace(number, open_operation_id=None)
            got_sms = any(m.operation_id == operation_id for m in self.s.outbox.messages.values())
            held = self.s.no_sms_streaks.get(number_id, (0, 0))
            starts = self.s.no_sms_since.get(number_id, (None, None))
            opened_at = self.s.operations[operation_id].opened_at
            self.s.no_sms_since[number_id] = run_starts_after(starts, held, kind, got_sms, opened_at)
            self.s.no_sms_streaks[number_id] = streak_after(held, kind, got_sms)

    def no_sms_streaks(self, number_ids: Collection[NumberId]) -> dict[NumberId, tuple[int, int]]:
        return {n: self.s.no_sms_streaks.get(n, (0, 0)) for n in number_ids if n in self.s.numbers}

    def no_sms_since(self, number_ids: Collection[NumberId]) -> dict[NumberId, RunStarts]:
        return {n: self.s.no_sms_since.get(n, (None, None)) for n in number_ids if n in self.s.numbers}

    def exclude(
        self,
        number_id: NumberId,
        service: ServiceName,
        reason: str,
        now: Timestamp,
        *,
        marketplace: str = EVERYWHERE,
        operation_id: OperationId | None = None,
    ) -> None:
        # Scoped rows stay beside a global one (its facts may be lifted: an operator's block);
        # excluded_counts subtracts (number, service) once anyway, as a set (migration 0021).
        rows = self.s.exclusions.setdefault(number_id, {})
        held = rows.get((service, marketplace))
        # A marketplace's fact takes a block's row over: it binds for good, a block can be lifted.
        takes_over = marketplace == EVERYWHERE and held == BLOCKED and reason != BLOCKED
        if held is not None and not takes_over:
            return
        rows[(service, marketplace)] = reason
        self.s.exclusion_origins[(number_id, service, marketplace)] = (now, operation_id)

    def exclusions(self, number_id: NumberId) -> list[ExclusionFact]:
        return [
            ExclusionFact(
                service,
                scope,
                reason,
                *self.s.exclusion_origins.get((number_id, service, scope), (0.0, None)),
            )
            for (service, scope), reason in sorted(self.s.exclusions.get(number_id, {}).items())
        ]

    def excluded_services(self, number_id: NumberId, marketplace: str | None = None) -> set[ServiceName]:
        binding = {EVERYWHERE, marketplace or EVERYWHERE}
        return {s for (s, scope) in self.s.exclusions.get(number_id, {}) if scope in binding}

    def unexclude(self, number_id: NumberId, service: ServiceName, reason: str) -> bool:
        rows = self.s.exclusions.get(number_id, {})
        found = [key for key, why in rows.items() if key[0] == service and why == reason]
        for key in found:
            del rows[key]
            self.s.exclusion_origins.pop((number_id, *key), None)
        return bool(found)

    def _counted(self, number: Number, marketplace: str | None, now: Timestamp | None) -> bool:
        if not rules.is_free(number):
            return False
        if marketplace is None:
            return True
        return lanes.counted_by(number, marketplace) and not self._held(number, marketplace, None, now)

    def group_counts(self, marketplace: str | None = None, now: Timestamp | None = None) -> list[GroupCount]:
        tallies: dict[tuple[CountryName, OperatorName], tuple[int, int]] = {}
        for n in self.s.numbers.values():
            free, rentable = tallies.get((n.country, n.operator), (0, 0))
            if self._counted(n, marketplace, now):
                free, rentable = free + 1, rentable + n.rentable
            tallies[(n.country, n.operator)] = (free, rentable)
        return [GroupCount(c, o, free, rent) for (c, o), (free, rent) in tallies.items()]

    def excluded_counts(
        self, marketplace: str | None = None, now: Timestamp | None = None
    ) -> list[ExcludedCount]:
        tally: dict[tuple[CountryName, OperatorName, ServiceName], int] = defaultdict(int)
        for number_id in self.s.exclusions:
            number = self.s.numbers[number_id]
            if self._counted(number, marketplace, now):
                for service in self.excluded_services(number_id, marketplace):
                    tally[(number.country, number.operator, service)] += 1
        return [ExcludedCount(c, o, s, k) for (c, o, s), k in tally.items()]

    def group_availability(self, marketplace: str, now: Timestamp | None = None) -> list[GroupAvailability]:
        return rules.join_excluded(
            self.group_counts(marketplace, now), self.excluded_counts(marketplace, now)
        )

    def availability_stamp(self, marketplace: str, now: Timestamp | None = None) -> Hashable | None:
        return None  # recounted on every call, which costs no more than a stamp would

    def fold_counts(self) -> None:
        return None  # counts are recounted by the rules on every call: nothing kept aside

    def count_drift(self) -> list[str]:
        return []

    def rebuild_counts(self) -> None:
        return None

    def set_enabled(self, number_id: NumberId, enabled: bool, now: Timestamp) -> bool:
        number = self.s.numbers.get(number_id)
        if number is None:
            return False
        self.s.numbers[number_id] = replace(
            number, operator_enabled=enabled, enabled=enabled and number.file_enabled
        )
        return True

    def set_online(self, phone: PhoneNumber, online: bool, now: Timestamp) -> bool:
        number = self.get_by_phone(phone)
        if number is None:
            return False
        self.s.numbers[number.id] = replace(number, online=online)
        return True


class MemoryOperations:
    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def open(self, marketplace: str, order: Order, number: Number, now: Timestamp) -> Operation:
        if self.open_for_number(number.id) is not None:
            raise ClaimConflict(f"number {number.id} already has an open operation")
        self.s.last_operation_id += 1
        operation = Operation(
            id=OperationId(self.s.last_operation_id), marketplace=marketplace, kind=order.kind,
            number_id=number.id, phone=number.phone, country=number.country,
            operator=number.operator, service=order.service, offered=order.offered, opened_at=now,
            currency=order.currency,
        )  # fmt: skip
        self.s.operations[operation.id] = operation
        return operation

    def get(self, operation_id: OperationId) -> Operation | None:
        return self.s.operations.get(operation_id)

    def open_for_number(self, number_id: NumberId) -> Operation | None:
        return next(
            (o for o in self.s.operations.values() if o.number_id == number_id and o.is_open),
            None,
        )

    def open_for_phone(self, phone: PhoneNumber) -> tuple[NumberId, Operation | None] | None:
        number = next((n for n in self.s.numbers.values() if n.phone == phone), None)
        return None if number is None else (number.id, self.open_for_number(number.id))

    def finish(self, operation_id: OperationId, status: int, final: Kopecks | None, now: Timestamp) -> None:
        operation = self.s.operations[operation_id]
        if operation.is_open:
            self.s.operations[operation_id] = replace(
                operation, finished_at=now, finish_status=status, final=final
            )
            self.note_finish_request(operation_id)

    def note_finish_request(self, operation_id: OperationId) -> None:
        self.s.finish_requests[operation_id] = self.s.finish_requests.get(operation_id, 0) + 1

    def of_number(self, number_id: NumberId) -> list[Operation]:
        return sorted((o for o in self.s.operations.values() if o.number_id == number_id), key=lambda o: o.id)

    def count_finished(self, number_id: NumberId, service: ServiceName, marketplace: str, status: int) -> int:
        return sum(
            1
            for o in self.s.operations.values()
            if (o.number_id, o.service, o.marketplace, o.finish_status)
            == (number_id, service, marketplace, status)
        )


class MemoryUnitOfWork:
    def __init__(self, state: MemoryState, ledger: LedgerRules = NO_RULES) -> None:
        self.one_trip: OneTripUnits | None = None
        self.ledger = ledger
        self.numbers = MemoryNumbers(state, ledger)
        self.operations = MemoryOperations(state)
        self.messages = MemoryMessages(state.outbox)
        self.outbox = MemoryOutbox(state.outbox, state.operations)
        self.alerts = MemoryAlerts(state.alerts)
        self.sessions = MemorySessions(state.sessions)
        self.history = MemoryHistory(state)
        self.lanes = MemoryLanes(LaneState(state.numbers, state.marketplaces, state.operations), ledger)


class MemoryStore:
    def __init__(self, revision: str | None = None, *, ledger: LedgerRules = NO_RULES) -> None:
        self.revision = revision
        """What schema_revision() reports: the fake has no schema, so it claims what it is told."""
        self._state = MemoryState()
        self._lock = threading.RLock()
        self.ledger = ledger
        """The resale windows and exclusion groups (bootstrap's, from the settings)."""
        self.write_error: str | None = None
        """Never set by the fake itself; a test sets it to play a failing database."""

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        with self._lock:
            snapshot = self._state.copy()
            try:
                return work(MemoryUnitOfWork(self._state, self.ledger))
            except BaseException:
                self._state = snapshot
                raise

    async def transact(self, work: Callable[[UnitOfWork], T], *, single: bool = False) -> T:
        return self.run(work)

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        return self.run_read(work)

    def run_read(self, work: Callable[[UnitOfWork], T]) -> T:
        # A copy: whatever `work` might change is thrown away, as a read-only snapshot's would be.
        with self._lock:
            return work(MemoryUnitOfWork(self._state.copy(), self.ledger))

    async def report(self, work: Callable[[Reports], T]) -> T:
        return self.run_report(work)

    def run_report(self, work: Callable[[Reports], T]) -> T:
        # The lock keeps writers out while it reads: the same records a snapshot would show.
        with self._lock:
            return work(MemoryReports(self._state))

    async def schema_revision(self) -> str | None:
        return self.revision

    def close(self) -> None:
        return None
