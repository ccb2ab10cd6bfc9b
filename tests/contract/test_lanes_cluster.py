"""Several processes on one PostgreSQL, two marketplaces ordering while lanes keep moving:
no number is ever handed out twice, and every SIM is issued in the end."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest

from simgate.domain.model import NumberSpec
from simgate.domain.read_model import NumberQuery
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.services.inventory import import_numbers
from simgate.services.lanes import LanePolicy, move_lanes, register_marketplaces, stamp_leaves, survey
from simgate.services.operations import issue_number, record_poll
from simgate.storage.ports import UnitOfWork
from simgate.storage.postgres import PostgresStore
from tests.factories import make_order, recent_operations

pytestmark = [pytest.mark.postgres]

MARKETS = ("onlinesim", "smshub")
SIMS = 150
DEADLINE = 60.0
"""Seconds the buyers may take at most; they finish in a few on an idle machine."""


def _store(url: str) -> PostgresStore:
    return PostgresStore(url, min_size=1, max_size=2)


def buyer(url: str, market: str) -> int:
    """Order telegram activations until no SIM is free anywhere; returns how many were issued."""
    store = _store(url)
    issued = 0
    give_up = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < give_up:
            now = time.time()
            operation = store.run(lambda uow: issue_number(uow, market, make_order(), now))
            if operation is not None:
                issued += 1
                continue
            free = store.run(lambda uow: uow.numbers.search(NumberQuery(state="free", limit=1)))
            if not free:
                return issued
            time.sleep(0.005)  # its SIMs are in the other lane or on their way: wait for a move
        return issued
    finally:
        store.close()


def mover(url: str, stop_after: float) -> int:
    """Rounds with weights that flip every time, and polls from both marketplaces, so SIMs
    keep leaving and joining lanes while the buyers order."""
    store = _store(url)
    rounds = 0
    policy = LanePolicy(moves=30)
    try:
        end = time.monotonic() + stop_after
        while time.monotonic() < end:
            heavy = MARKETS[rounds % 2]
            now = time.time()

            def work(uow: UnitOfWork, heavy: str = heavy, now: float = now) -> None:
                register_marketplaces(uow, MARKETS, now, weights={heavy: 5.0, MARKETS[1 - rounds % 2]: 1.0})

            store.run(work)
            seen = store.run(lambda uow: survey(uow, now, policy))
            result = store.run(lambda uow: move_lanes(uow, seen, now, policy))
            later = time.time()
            store.run(lambda uow: stamp_leaves(uow, [*seen.unstamped, *result.marked], later))
            for market in MARKETS:
                asked_at = time.time() - 0.01
                store.run(lambda uow, m=market, a=asked_at: record_poll(uow, m, a))
            rounds += 1
            time.sleep(0.01)
        return rounds
    finally:
        store.close()


def test_two_marketplaces_in_several_processes_never_share_a_number(postgres_url: str) -> None:
    store = _store(postgres_url)
    try:
        specs = [
            NumberSpec(PhoneNumber(f"7928{i:07d}"), CountryName("russia"), OperatorName("beeline"))
            for i in range(SIMS)
        ]
        store.run(lambda uow: register_marketplaces(uow, MARKETS, time.time()))
        store.run(lambda uow: import_numbers(uow, specs, time.time()))

        context = multiprocessing.get_context("spawn")
        with context.Pool(5) as pool:
            moving = pool.apply_async(mover, (postgres_url, 4.0))
            buyers = [pool.apply_async(buyer, (postgres_url, MARKETS[i % 2])) for i in range(4)]
            issued = [b.get(timeout=DEADLINE + 30) for b in buyers]
            assert moving.get(timeout=DEADLINE) > 0

        operations = store.run_report(recent_operations)
        assert sum(issued) == len(operations) == SIMS
        assert len({o.number_id for o in operations}) == SIMS, "a number handed out twice"
        by_market = Counter(o.marketplace for o in operations)
        assert set(by_market) == set(MARKETS), by_market
        # Each was issued from its lane: a busy SIM's lane is its operation's marketplace.
        numbers = {n.id: n for n in store.run(lambda uow: uow.numbers.search(NumberQuery(limit=SIMS * 2)))}
        assert all(numbers[o.number_id].lane == o.marketplace for o in operations)
        # The counts kept under all of it (claims, moves and folds at once) are still exact.
        assert store.run(lambda uow: uow.numbers.count_drift()) == []
    finally:
        store.close()
