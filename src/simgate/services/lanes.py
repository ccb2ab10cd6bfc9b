"""Lanes as use cases: register the marketplaces at start, place new SIMs, rebalance toward demand.

The policy (README, "Several marketplaces"): every SIM sits in one marketplace's lane; each
enabled marketplace keeps a floor of a country's SIMs (`min_share`) and the rest is shared in
proportion to weight x (1 + GET_NUMBER orders in the demand window); SIMs that sit unsold in
a lane for `idle_seconds` are swapped with other lanes' SIMs; every round moves at most a
bounded number of free SIMs, each in two steps (domain/lanes.py), so no marketplace ever
holds a count for a SIM another one may issue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from simgate.domain import lanes
from simgate.domain.lanes import Demand, LaneGroup
from simgate.domain.model import Marketplace
from simgate.domain.types import NumberId, Timestamp
from simgate.storage.ports import Store, UnitOfWork

log = logging.getLogger("simgate.lanes")


@dataclass(frozen=True, slots=True)
class LanePolicy:
    rebalance_seconds: float = 60.0
    """How often a round runs (SIMGATE_LANE_REBALANCE_SECONDS)."""
    demand_seconds: float = 3600.0
    """The window of GET_NUMBER orders that measures demand (SIMGATE_LANE_DEMAND_SECONDS)."""
    stale_seconds: float = 600.0
    """A leaving SIM joins its new lane at the latest this long after its leave was stamped
    (SIMGATE_LANE_STALE_SECONDS): five times Onlinesim's 2-minute poll, so only a marketplace
    that stopped polling is still acting on an answer that old."""
    moves: int = 20
    """Free SIMs marked leaving per round at most (SIMGATE_LANE_MOVES)."""
    min_share: float = lanes.MIN_SHARE
    """Each marketplace's floor share of a country's SIMs (SIMGATE_LANE_MIN_SHARE): a lane
    with no orders still holds SIMs to be ordered, so its demand can show (domain/lanes.py)."""
    idle_seconds: float = 900.0
    """A free SIM neither issued nor moved for this long is idle (SIMGATE_LANE_IDLE_SECONDS;
    0: never): rounds swap idle SIMs between lanes (lanes._one_swap), so a lane whose SIMs
    are spent for its marketplace gets others while its target stays. A quarter of the demand
    window: a spent lane gets SIMs it can sell while its orders still hold its target up (at
    the whole window, its demand is gone first and it has shrunk to its floor)."""
    countries: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per marketplace, the countries it has names for (from its plug-in); absent: every one."""

    def known(self, marketplaces: Sequence[Marketplace]) -> list[Marketplace]:
        """`marketplaces` as storage keeps them, with what their plug-ins can sell."""
        return [replace(m, countries=self.countries.get(m.name)) for m in marketplaces]

    def idle_before(self, now: Timestamp) -> Timestamp | None:
        return now - self.idle_seconds if self.idle_seconds > 0 else None


def register_marketplaces(
    uow: UnitOfWork,
    enabled: Sequence[str],
    now: Timestamp,
    *,
    weights: Mapping[str, float] | None = None,
    policy: LanePolicy = LanePolicy(),
) -> int:
    """At start: exactly `enabled` sell now. SIMs of a marketplace no longer enabled leave its
    lane at once (nobody acts on its counts), and unplaced SIMs are placed. Returns how many
    SIMs were placed."""
    weights = weights or {}
    known = {m.name for m in uow.lanes.marketplaces()}
    for name in sorted(known | set(enabled)):
        uow.lanes.save_marketplace(name, name in enabled, weights.get(name), now)
    return settle(uow, now, policy)


def settle(uow: UnitOfWork, now: Timestamp, policy: LanePolicy = LanePolicy()) -> int:
    """Release the lanes of disabled marketplaces and place every unplaced SIM (after an
    import: a SIM that several marketplaces may sell waits for no round)."""
    marketplaces = policy.known(uow.lanes.marketplaces())
    uow.lanes.release_disabled([m.name for m in marketplaces if m.enabled])
    demand = uow.lanes.demand(now - policy.demand_seconds)
    return sum(
        uow.lanes.place(move, now)
        for move in lanes.plan_placement(uow.lanes.groups(), marketplaces, demand, policy.min_share)
    )


@dataclass(frozen=True, slots=True)
class Survey:
    """What a round decides from, read in one snapshot (no write lock held meanwhile)."""

    marketplaces: list[Marketplace]
    groups: list[LaneGroup]
    demand: Demand
    unstamped: list[NumberId]
    """Leaves committed before this snapshot, so any clock read after it may stamp them."""
    idle_before: Timestamp | None = None
    """The groups' `idle` counts SIMs idle since before this (None: rotation off)."""


def survey(uow: UnitOfWork, now: Timestamp, policy: LanePolicy) -> Survey:
    idle_before = policy.idle_before(now)
    return Survey(
        policy.known(uow.lanes.marketplaces()),
        uow.lanes.groups(idle_before),
        uow.lanes.demand(now - policy.demand_seconds),
        uow.lanes.unstamped(),
        idle_before,
    )


@dataclass(frozen=True, slots=True)
class RoundResult:
    placed: int
    joined: int
    marked: list[NumberId]


def move_lanes(uow: UnitOfWork, seen: Survey, now: Timestamp, policy: LanePolicy) -> RoundResult:
    """One round's write: finish stale moves, place what is unplaced, mark the planned moves.

    Planned on the survey, carried out with conditional updates: a SIM claimed or moved since
    is simply passed over.
    """
    enabled = [m.name for m in seen.marketplaces if m.enabled]
    # Also here, so the counts' deltas stay few while no marketplace polls (PostgreSQL).
    uow.numbers.fold_counts()
    uow.lanes.release_disabled(enabled)
    joined = uow.lanes.join_stale(now - policy.stale_seconds)
    placed = sum(
        uow.lanes.place(m, now)
        for m in lanes.plan_placement(seen.groups, seen.marketplaces, seen.demand, policy.min_share)
    )
    marked: list[NumberId] = []
    plan = lanes.plan_moves(
        seen.groups, seen.marketplaces, seen.demand, policy.moves, policy.min_share, seen.idle_before
    )
    for move in plan:
        marked += uow.lanes.mark_leaving(move, now)
    return RoundResult(placed, joined, marked)


def stamp_leaves(uow: UnitOfWork, number_ids: Sequence[NumberId], now: Timestamp) -> int:
    """`now` must be read after the leaves of `number_ids` committed: a GET_SERVICES timed
    after it cannot have counted them, so record_poll may let them join (domain/lanes.py)."""
    return uow.lanes.stamp(number_ids, now)


async def rebalance(store: Store, clock: Callable[[], Timestamp], policy: LanePolicy) -> RoundResult:
    """One round: survey (a read), move (a write), then stamp (a write, clock read after)."""
    now = clock()
    seen = await store.read(lambda uow: survey(uow, now, policy))
    result = await store.transact(lambda uow: move_lanes(uow, seen, now, policy))
    later = clock()
    await store.transact(lambda uow: stamp_leaves(uow, [*seen.unstamped, *result.marked], later))
    return result


class LaneBalancer:
    """The background task: a round every `policy.rebalance_seconds`, until stopped.

    Safe beside other instances on PostgreSQL: every change is conditional (storage), so
    two rounds at once can only move fewer SIMs than planned, never misplace one.
    """

    def __init__(
        self,
        store: Store,
        clock: Callable[[], Timestamp],
        policy: LanePolicy,
        *,
        enabled: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.store, self.clock, self.policy = store, clock, policy
        self._register = None if enabled is None else (list(enabled), dict(weights or {}))
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._register is not None:
                    # Again, in case the database was away when bootstrap registered them.
                    await self.store.transact(partial(self._registered, *self._register, self.clock()))
                    self._register = None
                result = await rebalance(self.store, self.clock, self.policy)
                if result.placed or result.joined or result.marked:
                    log.info(
                        "lanes: %d placed, %d joined, %d leaving",
                        result.placed,
                        result.joined,
                        len(result.marked),
                    )
            except Exception:  # a failed round (database away) is retried next round
                log.exception("lane rebalancing failed; retrying next round")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.policy.rebalance_seconds)

    def _registered(
        self, names: Sequence[str], weights: Mapping[str, float], now: Timestamp, uow: UnitOfWork
    ) -> int:
        return register_marketplaces(uow, names, now, weights=weights, policy=self.policy)

    def stop(self) -> None:
        self._stop.set()
