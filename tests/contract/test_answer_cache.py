"""A kept GET_SERVICES answer (services/answers.py) is never given after a change of the counts.

Every store: SQLite and PostgreSQL keep the stamp of migration 0016 (the answer is given again
while it stands: checked, or the rest would prove nothing); the in-memory store has none and
computes every answer. After each change that lowers a count (a claim, a sale, a block, the
operator's switch, a change made by another store on the same database) the next answer is
the new one; after a poll that folded nothing, and with nothing changed, the kept one.
"""

from __future__ import annotations

import asyncio

from simgate.domain.ledger import DAY, LedgerRules
from simgate.domain.model import CountryAvailability
from simgate.domain.types import ServiceName
from simgate.services.answers import AnswerCache
from simgate.services.operations import finish_operation, issue_number, list_available, record_poll
from simgate.storage.memory import MemoryStore
from simgate.storage.ports import Store, UnitOfWork
from simgate.storage.sqlite import SQLiteStore
from tests.contract.test_resale_contract import HERO, HERO_TERMS, HUB, TELEGRAM, farm, move, repin, sell
from tests.factories import make_order, make_spec

NOW = 1_700_000_000.0
MARKET = "onlinesim"
VK = ServiceName("vkcom")
SERVICES = (TELEGRAM, VK)


def answer(
    store: Store, cache: AnswerCache, market: str = MARKET, at: float = NOW
) -> list[CountryAvailability]:
    """GET_SERVICES as the server reads it: on a reader (a read-only snapshot), with a cache."""
    return asyncio.run(store.read(lambda uow: list_available(uow, market, SERVICES, now=at, cache=cache)))


def count(found: list[CountryAvailability], service: ServiceName = TELEGRAM) -> int:
    return sum(c.operator_map["any"][service] for c in found)


def kept(store: Store, cache: AnswerCache, before: list[CountryAvailability]) -> None:
    """Nothing changed: the stores with a stamp give the very same answer again."""
    again = answer(store, cache)
    assert again == before
    assert (again is before) is not isinstance(store, MemoryStore)


def another(store: Store) -> Store:
    """A second instance on the same database (another simgate process)."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path)
    from simgate.storage.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    return PostgresStore(str(store.pool.conninfo), min_size=1, max_size=2)


def test_no_answer_outlives_a_change_that_lowers_a_count(store: Store) -> None:
    numbers = [make_spec() for _ in range(4)]
    store.run(lambda uow: [uow.numbers.upsert(spec, NOW) for spec in numbers])
    cache = AnswerCache()
    first = answer(store, cache)
    assert count(first) == 4
    kept(store, cache, first)

    claimed = store.run(lambda uow: issue_number(uow, MARKET, make_order(), NOW))
    assert claimed is not None
    after_claim = answer(store, cache)
    assert count(after_claim) == 3
    kept(store, cache, after_claim)

    store.run(lambda uow: finish_operation(uow, MARKET, claimed.id, 3, None, NOW))  # sold: telegram
    after_sale = answer(store, cache)
    assert (count(after_sale), count(after_sale, VK)) == (3, 4)
    kept(store, cache, after_sale)

    def block(uow: UnitOfWork) -> None:
        found = uow.numbers.get_by_phone(numbers[1].phone)
        assert found is not None
        uow.numbers.exclude(found.id, VK, "blocked", NOW)

    store.run(block)
    assert count(answer(store, cache), VK) == 3

    def switch_off(uow: UnitOfWork) -> None:
        found = uow.numbers.get_by_phone(numbers[2].phone)
        assert found is not None
        uow.numbers.set_enabled(found.id, False, NOW)

    store.run(switch_off)
    assert count(answer(store, cache)) == 2


def test_a_claim_by_another_instance_is_seen(store: Store) -> None:
    if isinstance(store, MemoryStore):
        return  # one process only
    store.run(lambda uow: [uow.numbers.upsert(make_spec(), NOW) for _ in range(3)])
    cache = AnswerCache()
    first = answer(store, cache)
    kept(store, cache, first)
    other = another(store)
    try:
        assert other.run(lambda uow: issue_number(uow, MARKET, make_order(), NOW)) is not None
    finally:
        other.close()
    assert count(answer(store, cache)) == count(first) - 1


def test_polls_and_folds_keep_the_answer_only_while_the_counts_stand(store: Store) -> None:
    store.run(lambda uow: [uow.numbers.upsert(make_spec(), NOW) for _ in range(3)])
    cache = AnswerCache()
    assert count(answer(store, cache)) == 3
    for claims in range(1, 4):
        assert store.run(lambda uow: issue_number(uow, MARKET, make_order(), NOW)) is not None
        # A poll folds PostgreSQL's deltas into the totals: after each, no delta is left, as
        # after the one before, yet the counts differ (the version must have moved).
        store.run(lambda uow: record_poll(uow, MARKET, NOW))
        seen = answer(store, cache)
        assert count(seen) == 3 - claims
        store.run(lambda uow: record_poll(uow, MARKET, NOW))  # folds nothing: the stamp stands
        kept(store, cache, seen)


def test_a_window_that_ends_shows_the_number_again_with_no_write(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(resale=(HERO_TERMS,)), HERO)
    sold = sell(store, HERO, VK, NOW)
    repin(store, sim)
    move(store, sold, HUB, NOW + 20)
    cache = AnswerCache()
    assert count(answer(store, cache, HUB, NOW + 30)) == 0
    assert count(answer(store, cache, HUB, NOW + 31)) == 0
    assert count(answer(store, cache, HUB, NOW + 60 * DAY + 1)) == 1
