"""Marketplaces and lanes in memory, by the domain's own rules (held to the SQL by the contract)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from simgate.domain import lanes, ledger, rules
from simgate.domain.lanes import Demand, LaneGroup, Move
from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.domain.model import Marketplace, Number, Operation
from simgate.domain.types import CountryName, NumberId, OperationId, Timestamp


@dataclass
class LaneState:
    """The parts of the in-memory store's state that lanes read and change."""

    numbers: dict[NumberId, Number]
    marketplaces: dict[str, Marketplace]
    operations: dict[OperationId, Operation]


class MemoryLanes:
    def __init__(self, state: LaneState, rules: LedgerRules = NO_RULES) -> None:
        self.s = state
        self.rules = rules

    def marketplaces(self) -> list[Marketplace]:
        return sorted(self.s.marketplaces.values(), key=lambda m: m.name)

    def save_marketplace(self, name: str, enabled: bool, weight: float | None, now: Timestamp) -> None:
        current = self.s.marketplaces.get(name, Marketplace(name, enabled))
        self.s.marketplaces[name] = replace(
            current, enabled=enabled, weight=current.weight if weight is None else weight
        )

    def record_poll(self, marketplace: str, asked_at: Timestamp) -> int:
        current = self.s.marketplaces.get(marketplace)
        if current is not None and (current.last_services_at or 0) < asked_at:
            self.s.marketplaces[marketplace] = replace(current, last_services_at=asked_at)
        return self._join(lambda n: lanes.joins_after_poll(n, marketplace, asked_at))

    def _join(self, due: Callable[[Number], bool]) -> int:
        joined = [n for n in self.s.numbers.values() if due(n)]
        for n in joined:
            self.s.numbers[n.id] = replace(n, lane=n.lane_target, lane_target=None, lane_leaving_at=None)
        return len(joined)

    def groups(self, idle_before: Timestamp | None = None) -> list[LaneGroup]:
        tally: dict[tuple[CountryName, str | None, str | None, frozenset[str]], list[int]] = defaultdict(
            lambda: [0, 0, 0]
        )
        for n in self.s.numbers.values():
            counts = tally[(n.country, n.lane, n.lane_target, n.marketplaces)]
            counts[0] += 1
            movable = rules.is_free(n) and n.lane_target is None
            counts[1] += movable
            counts[2] += movable and idle_before is not None and lanes.is_idle(n, idle_before)
        return [
            LaneGroup(c, lane, target, allowed, k, m, i)
            for (c, lane, target, allowed), (k, m, i) in tally.items()
        ]

    def demand(self, since: Timestamp) -> Demand:
        found: dict[tuple[str, CountryName], int] = defaultdict(int)
        for o in self.s.operations.values():
            if o.opened_at >= since:
                found[(o.marketplace, o.country)] += 1
        return dict(found)

    def _pick(self, move: Move, now: Timestamp | None, keep: Callable[[Number], bool]) -> list[Number]:
        found = [
            n
            for n in sorted(
                self.s.numbers.values(),
                key=lambda n: (*lanes.leave_order(n, move.idle_before, move.last_issued_first), n.id),
            )
            if n.country == move.country
            and n.marketplaces == move.allowed
            and keep(n)
            and not self._held(n, move.target, now)
        ]
        return found[: move.count]

    def _held(self, number: Number, target: str | None, now: Timestamp | None) -> bool:
        """A resale window forbids `target` this SIM (domain/ledger.py)."""
        if target is None or not self.rules.resale:
            return False
        sales = ledger.sales_of(o for o in self.s.operations.values() if o.number_id == number.id)
        at = time.time() if now is None else now
        return ledger.resale_hold(self.rules, sales, target, None, at) is not None

    def place(self, move: Move, now: Timestamp | None = None) -> int:
        chosen = self._pick(move, now, lambda n: n.lane is None)
        at = time.time() if now is None else now
        for n in chosen:
            self.s.numbers[n.id] = replace(n, lane=move.target, lane_moved_at=at)
        return len(chosen)

    def mark_leaving(self, move: Move, now: Timestamp | None = None) -> list[NumberId]:
        idle_before = move.idle_before if move.only_idle else None
        chosen = self._pick(
            move,
            now,
            lambda n: (
                n.lane == move.source
                and n.lane_target is None
                and rules.is_free(n)
                and (idle_before is None or lanes.is_idle(n, idle_before))
            ),
        )
        at = time.time() if now is None else now
        for n in chosen:
            if move.target is None:
                self.s.numbers[n.id] = replace(n, lane=None, lane_moved_at=at)
            else:
                self.s.numbers[n.id] = replace(
                    n, lane_target=move.target, lane_leaving_at=None, lane_moved_at=at
                )
        return [n.id for n in chosen]

    def unstamped(self) -> list[NumberId]:
        return [
            n.id for n in self.s.numbers.values() if n.lane_target is not None and n.lane_leaving_at is None
        ]

    def stamp(self, number_ids: Sequence[NumberId], now: Timestamp) -> int:
        stamped = 0
        for number_id in number_ids:
            n = self.s.numbers.get(number_id)
            if n is not None and n.lane_target is not None and n.lane_leaving_at is None:
                self.s.numbers[number_id] = replace(n, lane_leaving_at=now)
                stamped += 1
        return stamped

    def join_stale(self, before: Timestamp) -> int:
        return self._join(lambda n: lanes.joins_when_stale(n, before, 0.0))

    def release_disabled(self, enabled: Sequence[str]) -> None:
        names = set(enabled)
        for n in list(self.s.numbers.values()):
            updated = n
            if updated.lane_target is not None and updated.lane_target not in names:
                updated = replace(updated, lane_target=None, lane_leaving_at=None)
            if updated.lane_target is not None and updated.lane not in names:
                updated = replace(updated, lane=updated.lane_target, lane_target=None, lane_leaving_at=None)
            if updated.lane is not None and updated.lane not in names and updated.open_operation_id is None:
                updated = replace(updated, lane=None)
            self.s.numbers[n.id] = updated
