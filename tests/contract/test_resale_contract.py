"""Resale windows and exclusion groups on every store (CONTRACT.md, "Marketplace rules beyond
one operation"; domain/ledger.py): counted nowhere and issued nowhere they forbid, and a window
stops binding when it ends, with no restart.
"""

from __future__ import annotations

import contextlib
import itertools

from simgate.domain.lanes import Move
from simgate.domain.ledger import DAY, ExclusionGroup, LedgerRules, ResaleRule, ResaleScope
from simgate.domain.model import FinishPolicy, Number, NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber, ServiceName, Timestamp
from simgate.services.inventory import import_numbers
from simgate.services.lanes import register_marketplaces
from simgate.services.operations import finish_operation, issue_number, list_available
from simgate.storage.ports import Store, UnitOfWork
from tests.factories import make_order

NOW = 1_700_000_000.0
OS, HUB, GRIZZLY, HERO = "onlinesim", "smshub", "grizzly", "herosms"
FOUR = (OS, HUB, GRIZZLY, HERO)
TELEGRAM, VK = ServiceName("telegram"), ServiceName("vkcom")
WHATSAPP, ASTROPAY = ServiceName("whatsapp"), ServiceName("astropay")
AGENT = FinishPolicy(refuse_statuses=frozenset({1}), retry_budget_status=4, retry_budget=3)
HERO_TERMS = ResaleRule(HERO, 60 * DAY)
GROUPS = (ExclusionGroup("whatsapp+astropay", frozenset({WHATSAPP, ASTROPAY})),)
_phones = itertools.count(1)


def farm(store: Store, ledger: LedgerRules, *lanes: str) -> list[Number]:
    """The four marketplaces registered, one SIM in each named lane (pinned by its CSV row,
    then allowed everywhere, so only the ledger keeps it from any lane)."""
    store.ledger = ledger
    store.run(lambda uow: register_marketplaces(uow, FOUR, NOW))
    phones = [PhoneNumber(f"7955{next(_phones):07d}") for _ in lanes]
    pinned = [
        NumberSpec(p, CountryName("russia"), OperatorName("beeline"), marketplaces=frozenset({lane}))
        for p, lane in zip(phones, lanes, strict=True)
    ]
    store.run(lambda uow: import_numbers(uow, pinned, NOW))
    return [store.run(lambda uow, p=p: uow.numbers.get_by_phone(p)) for p in phones]  # type: ignore[misc]


def sell(store: Store, market: str, service: ServiceName, at: Timestamp, status: int = 3) -> Number:
    operation = store.run(lambda uow: issue_number(uow, market, make_order(service=service), at))
    assert operation is not None
    store.run(lambda uow: finish_operation(uow, market, operation.id, status, None, at, AGENT))
    found = store.run(lambda uow: uow.numbers.get(operation.number_id))
    assert found is not None
    return found


def move(store: Store, number: Number, target: str, at: Timestamp) -> None:
    """Into `target`'s lane by the two-step move (leave, stamp, join once stale), even where a
    window forbids it (the balancer never does that: told a time past every window): the
    state of a farm upgraded with SIMs already there, which the count and the claim hold."""

    def work(uow: UnitOfWork) -> None:
        current = uow.numbers.get(number.id)
        assert current is not None
        assert current.lane is not None
        step = Move(current.country, current.marketplaces, current.lane, target, 1)
        marked = uow.lanes.mark_leaving(step, at + 1000 * DAY)
        assert marked == [number.id]
        uow.lanes.stamp(marked, at)
        assert uow.lanes.join_stale(at + 1) == 1

    store.run(work)


def counted(store: Store, market: str, service: ServiceName, at: Timestamp) -> int:
    answer = store.run(lambda uow: list_available(uow, market, [service], now=at))
    return sum(c.operator_map.get("any", {}).get(service, 0) for c in answer)


def issuable(store: Store, market: str, service: ServiceName, at: Timestamp) -> bool:
    class Undo(Exception):
        pass

    found: list[bool] = []

    def work(uow: UnitOfWork) -> None:
        found.append(issue_number(uow, market, make_order(service=service), at) is not None)
        raise Undo

    with contextlib.suppress(Undo):
        store.run(work)
    return found[0]


def offered(store: Store, market: str, service: ServiceName, at: Timestamp) -> bool:
    count, issued = counted(store, market, service, at), issuable(store, market, service, at)
    assert count == int(issued), (market, service, count, issued)  # one SIM: counted iff issued
    return issued


def repin(store: Store, number: Number) -> None:
    """The SIM allowed everywhere from now on (a CSV row with no marketplaces)."""
    spec = NumberSpec(number.phone, number.country, number.operator)
    store.run(lambda uow: import_numbers(uow, [spec], NOW))


def test_a_sale_on_herosms_hides_the_number_everywhere_else_for_the_window(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(resale=(HERO_TERMS,)), HERO)
    sold = sell(store, HERO, VK, NOW)
    assert offered(store, HERO, TELEGRAM, NOW + 10)  # HeroSMS itself may sell it again
    repin(store, sim)
    move(store, sold, HUB, NOW + 20)
    assert not offered(store, HUB, TELEGRAM, NOW + DAY)
    assert not offered(store, HUB, TELEGRAM, NOW + 60 * DAY - 1)
    # The window ends on its own: no restart, nothing cleaned up.
    assert offered(store, HUB, TELEGRAM, NOW + 60 * DAY + 1)


def test_a_sale_elsewhere_hides_the_number_from_herosms_for_the_window(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(resale=(HERO_TERMS,)), HUB)
    sell(store, HUB, VK, NOW)
    repin(store, sim)
    move(store, sim, GRIZZLY, NOW + 5)
    assert offered(store, GRIZZLY, TELEGRAM, NOW + 10)  # other marketplaces are not bound
    move(store, sim, HERO, NOW + 20)
    assert not offered(store, HERO, TELEGRAM, NOW + 30 * DAY)
    assert offered(store, HERO, TELEGRAM, NOW + 61 * DAY)


def test_scope_service_binds_only_the_service_sold(store: Store) -> None:
    rule = ResaleRule(HERO, 60 * DAY, ResaleScope.SERVICE)
    (sim,) = farm(store, LedgerRules(resale=(rule,)), HERO)
    sell(store, HERO, VK, NOW)
    repin(store, sim)
    move(store, sim, HUB, NOW + 20)
    assert offered(store, HUB, TELEGRAM, NOW + DAY)
    assert not offered(store, HUB, VK, NOW + DAY)  # and never again: a sale (L1)


def test_without_terms_a_herosms_sale_binds_only_its_service(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(), HERO)
    sell(store, HERO, VK, NOW)
    repin(store, sim)
    move(store, sim, HUB, NOW + 20)
    assert offered(store, HUB, TELEGRAM, NOW + 30)


def test_unsold_outcomes_open_no_window(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(resale=(HERO_TERMS,)), HERO)
    sell(store, HERO, VK, NOW, status=5)
    repin(store, sim)
    move(store, sim, HUB, NOW + 20)
    assert offered(store, HUB, TELEGRAM, NOW + 30)


def test_a_group_sale_hides_the_other_services_everywhere_forever(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(groups=GROUPS), HUB)
    assert offered(store, HUB, ASTROPAY, NOW)
    sell(store, HUB, WHATSAPP, NOW)
    assert not offered(store, HUB, ASTROPAY, NOW + 10)
    assert offered(store, HUB, TELEGRAM, NOW + 10)
    repin(store, sim)
    for market in (OS, HERO):
        move(store, sim, market, NOW + 20)
        assert not offered(store, market, ASTROPAY, NOW + 3650 * DAY)
    facts = store.run(lambda uow: uow.numbers.exclusions(sim.id))
    by_service = {f.service: f for f in facts}
    assert by_service[ASTROPAY].reason == "group"
    assert by_service[ASTROPAY].marketplace == "*"
    assert by_service[ASTROPAY].operation_id == by_service[WHATSAPP].operation_id is not None
    assert by_service[ASTROPAY].created_at == NOW


def test_a_group_limited_to_countries_binds_only_their_numbers(store: Store) -> None:
    kz = (ExclusionGroup("uber+yandexgo", frozenset({ServiceName("uber"), ServiceName("yandexgo")}),
                         frozenset({CountryName("kazakhstan")})),)  # fmt: skip
    farm(store, LedgerRules(groups=kz), HUB)
    sell(store, HUB, ServiceName("uber"), NOW)  # a Russian number
    assert offered(store, HUB, ServiceName("yandexgo"), NOW + 10)


def test_the_ledger_lists_a_numbers_operations_oldest_first(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(), HUB)
    sell(store, HUB, VK, NOW)
    sell(store, HUB, TELEGRAM, NOW + 5, status=4)
    history = store.run(lambda uow: uow.operations.of_number(sim.id))
    assert [(o.service, o.finish_status) for o in history] == [(VK, 3), (TELEGRAM, 4)]


def test_the_balancer_never_moves_a_sim_into_a_lane_a_window_forbids(store: Store) -> None:
    held, other = farm(store, LedgerRules(resale=(HERO_TERMS,)), HERO, HERO)
    sell(store, HERO, VK, NOW)  # the first SIM (least recently issued, lowest id)
    for sim in (held, other):
        repin(store, sim)
    allowed = frozenset[str]()
    leaving = store.run(
        lambda uow: uow.lanes.mark_leaving(Move(held.country, allowed, HERO, HUB, 2), NOW + DAY)
    )
    assert leaving == [other.id]  # the sold one stays: passed over, the move does less
    after = store.run(
        lambda uow: uow.lanes.mark_leaving(Move(held.country, allowed, HERO, HUB, 1), NOW + 61 * DAY)
    )
    assert after == [held.id]  # the window is over


def test_an_unplaced_sim_is_not_placed_where_a_window_forbids(store: Store) -> None:
    (sim,) = farm(store, LedgerRules(resale=(HERO_TERMS,)), HUB)
    sell(store, HUB, VK, NOW)
    repin(store, sim)
    store.run(lambda uow: uow.lanes.release_disabled([OS, GRIZZLY, HERO]))  # SMSHUB's key unset
    assert store.run(lambda uow: uow.numbers.get(sim.id)).lane is None  # type: ignore[union-attr]
    allowed = frozenset[str]()
    assert store.run(lambda uow: uow.lanes.place(Move(sim.country, allowed, None, HERO, 1), NOW + DAY)) == 0
    assert (
        store.run(lambda uow: uow.lanes.place(Move(sim.country, allowed, None, GRIZZLY, 1), NOW + DAY)) == 1
    )
