"""One contract for every store: the in-memory fake and SQLite pass the same cases.

The `store` fixture runs each test once per backend. The property test at the end checks the
rule that keeps the farm from being blocked: every count GET_SERVICES advertises can be issued
by GET_NUMBER at that instant, no more and no less.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgate.domain import rules
from simgate.domain.errors import ClaimConflict
from simgate.domain.model import Number, NumberSpec, Operation, OperationKind, Order
from simgate.domain.read_model import NumberQuery
from simgate.domain.types import (
    ANY_OPERATOR,
    RENT_SERVICE,
    CountryName,
    Kopecks,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from simgate.services.operations import FinishOutcome, finish_operation, issue_number, list_available
from simgate.storage import schema
from simgate.storage.ports import Store, UnitOfWork
from tests.factories import make_order, make_spec, recent_operations

NOW = 1_700_000_000.0
MARKET = "onlinesim"
TELEGRAM = ServiceName("telegram")
VK = ServiceName("vkcom")
WHATSAPP = ServiceName("whatsapp")
SERVICES = (TELEGRAM, VK, WHATSAPP)


def add(store: Store, *specs: NumberSpec) -> list[Number]:
    def work(uow: UnitOfWork) -> list[Number]:
        found: list[Number] = []
        for spec in specs:
            uow.numbers.upsert(spec, NOW)
            number = uow.numbers.get_by_phone(spec.phone)
            assert number is not None
            found.append(number)
        return found

    return store.run(work)


def issue(store: Store, order: Order | None = None, now: float = NOW) -> Operation | None:
    wanted = order or make_order()
    return store.run(lambda uow: issue_number(uow, MARKET, wanted, now))


def must_issue(store: Store, order: Order | None = None, now: float = NOW) -> Operation:
    operation = issue(store, order, now)
    assert operation is not None
    return operation


def finish(store: Store, operation_id: int, status: int, final: int | None = None) -> FinishOutcome:
    return store.run(
        lambda uow: finish_operation(
            uow,
            MARKET,
            OperationId(operation_id),
            status,
            None if final is None else Kopecks(final),
            NOW + 60,
        )
    )


def number(store: Store, number_id: NumberId) -> Number:
    found = store.run(lambda uow: uow.numbers.get(number_id))
    assert found is not None
    return found


def counts(store: Store, *, rent: bool = True) -> dict[str, dict[str, dict[str, int]]]:
    found = store.run(lambda uow: list_available(uow, MARKET, SERVICES, with_rent=rent))
    return {
        str(c.country): {str(op): {str(s): n for s, n in per.items()} for op, per in c.operator_map.items()}
        for c in found
    }


def find(store: Store, order: Order) -> Number | None:
    return store.run(lambda uow: uow.numbers.find_free(order, MARKET))


class Boom(Exception):
    pass


# --- numbers: upsert, get, search -------------------------------------------------------------


def test_upsert_reports_added_updated_unchanged(store: Store) -> None:
    spec = make_spec(port="goip1/1")
    assert store.run(lambda uow: uow.numbers.upsert(spec, NOW)) == "added"
    assert store.run(lambda uow: uow.numbers.upsert(spec, NOW + 1)) == "unchanged"
    moved = make_spec(phone=spec.phone, port="goip2/2", operator=OperatorName("mts"), rentable=False)
    assert store.run(lambda uow: uow.numbers.upsert(moved, NOW + 2)) == "updated"
    assert store.run(lambda uow: uow.numbers.upsert(moved, NOW + 3)) == "unchanged"
    found = store.run(lambda uow: uow.numbers.get_by_phone(spec.phone))
    assert found is not None
    assert (found.port, found.operator, found.rentable, found.enabled, found.online) == (
        "goip2/2",
        "mts",
        False,
        True,
        True,
    )
    assert found.open_operation_id is None
    assert found.state == "free"


def test_each_field_of_a_spec_is_an_update(store: Store) -> None:
    spec = make_spec()
    add(store, spec)
    for change in (
        {"country": CountryName("germany")},
        {"operator": OperatorName("")},
        {"port": "x"},
        {"rentable": False},
        {"enabled": False},
    ):
        changed = make_spec(**{"phone": spec.phone, **change})

        def upsert_changed(uow: UnitOfWork, c: NumberSpec = changed) -> str:
            return uow.numbers.upsert(c, NOW)

        assert store.run(upsert_changed) == "updated", change
        assert store.run(lambda uow: uow.numbers.upsert(spec, NOW)) == "updated", change


def test_upsert_keeps_a_busy_number_busy_and_an_offline_one_offline(store: Store) -> None:
    busy, offline = add(store, make_spec(), make_spec())
    operation = must_issue(store, make_order())
    assert operation.number_id == busy.id
    store.run(lambda uow: uow.numbers.set_online(offline.phone, False, NOW))
    store.run(lambda uow: uow.numbers.upsert(make_spec(phone=busy.phone, port="new"), NOW))
    store.run(lambda uow: uow.numbers.upsert(make_spec(phone=offline.phone, port="new"), NOW))
    assert number(store, busy.id).open_operation_id == operation.id
    assert number(store, offline.id).online is False


def test_an_operator_s_disable_and_block_survive_a_reimport(store: Store) -> None:
    """The README says to re-import after every change: that must not re-enable a SIM the
    operator switched off, nor lift a block."""
    spec = make_spec()
    (added,) = add(store, spec)
    store.run(lambda uow: uow.numbers.set_enabled(added.id, False, NOW))
    store.run(lambda uow: uow.numbers.exclude(added.id, TELEGRAM, "blocked", NOW))
    assert store.run(lambda uow: uow.numbers.upsert(spec, NOW + 1)) == "unchanged"
    moved = make_spec(phone=spec.phone, port="elsewhere")
    assert store.run(lambda uow: uow.numbers.upsert(moved, NOW + 2)) == "updated"
    found = number(store, added.id)
    assert (found.enabled, found.file_enabled, found.operator_enabled, found.state) == (
        False, True, False, "disabled",
    )  # fmt: skip
    assert store.run(lambda uow: uow.numbers.excluded_services(added.id)) == {TELEGRAM}
    assert store.run(lambda uow: uow.numbers.find_free(make_order(kind=OperationKind.RENT), MARKET)) is None


def test_a_number_is_sold_only_with_both_switches_on(store: Store) -> None:
    spec = make_spec()
    (added,) = add(store, make_spec(phone=spec.phone, enabled=False))
    store.run(lambda uow: uow.numbers.set_enabled(added.id, True, NOW))
    assert (number(store, added.id).enabled, number(store, added.id).operator_enabled) == (False, True)
    assert store.run(lambda uow: uow.numbers.upsert(spec, NOW)) == "updated"  # the file's switch on
    assert number(store, added.id).state == "free"
    store.run(lambda uow: uow.numbers.set_enabled(added.id, False, NOW))
    store.run(lambda uow: uow.numbers.upsert(make_spec(phone=spec.phone, enabled=False), NOW))
    store.run(lambda uow: uow.numbers.set_enabled(added.id, True, NOW))
    assert number(store, added.id).enabled is False  # the file still says off
    store.run(lambda uow: uow.numbers.upsert(spec, NOW))
    found = number(store, added.id)
    assert (found.enabled, found.file_enabled, found.operator_enabled) == (True, True, True)
    assert must_issue(store, make_order()).number_id == added.id


def test_get_unknown_number_is_none(store: Store) -> None:
    assert store.run(lambda uow: uow.numbers.get(NumberId(424242))) is None
    assert store.run(lambda uow: uow.numbers.get_by_phone(PhoneNumber("1"))) is None


def test_search_filters_by_state_country_and_substring(store: Store) -> None:
    free, busy, offline, disabled = add(
        store,
        make_spec(port="bank-a/1"),
        make_spec(port="bank-a/2"),
        make_spec(port="bank-b/1"),
        make_spec(port="bank-b/2", enabled=False),
    )
    german = add(store, make_spec(phone=PhoneNumber("4915112345678"), country=CountryName("germany")))[0]
    store.run(lambda uow: uow.numbers.set_online(offline.phone, False, NOW))
    operation = store.run(
        lambda uow: uow.operations.open(MARKET, make_order(), uow.numbers.get(busy.id), NOW)  # type: ignore[arg-type]
    )
    store.run(lambda uow: uow.numbers.mark_busy(busy.id, operation.id, NOW))

    def phones(where: NumberQuery) -> set[str]:
        return {n.phone for n in store.run(lambda uow: uow.numbers.search(where))}

    assert phones(NumberQuery(state="free")) == {free.phone, german.phone}
    assert phones(NumberQuery(state="busy")) == {busy.phone}
    assert phones(NumberQuery(state="offline")) == {offline.phone}
    assert phones(NumberQuery(state="disabled")) == {disabled.phone}
    assert phones(NumberQuery(country="germany")) == {german.phone}
    assert phones(NumberQuery(search="bank-b")) == {offline.phone, disabled.phone}
    assert phones(NumberQuery(search=free.phone[2:])) == {free.phone}
    assert len(phones(NumberQuery(limit=2))) == 2
    everything = [n.phone for n in store.run(lambda uow: uow.numbers.search())]
    paged = [n.phone for n in store.run(lambda uow: uow.numbers.search(NumberQuery(limit=2, offset=3)))]
    assert paged == everything[3:5]

    # One vocabulary: the CLI's search and the console's listing take the same query and agree.
    for where in (
        NumberQuery(state="free"),
        NumberQuery(port="bank-b"),
        NumberQuery(operator=german.operator, country="germany"),
        NumberQuery(search="bank-a", limit=1, offset=1),
    ):
        listed = store.run_report(lambda r, w=where: r.numbers(w)).items  # type: ignore[misc]
        assert phones(where) == {r.number.phone for r in listed}
    with pytest.raises(ValueError, match=r"reports\.numbers"):
        store.run(lambda uow: uow.numbers.search(NumberQuery(losing=True)))


# --- find_free --------------------------------------------------------------------------------


def test_find_free_honours_country_and_operator(store: Store) -> None:
    beeline, mts, unknown = add(
        store,
        make_spec(operator=OperatorName("beeline")),
        make_spec(operator=OperatorName("mts")),
        make_spec(operator=OperatorName("")),
    )
    add(store, make_spec(phone=PhoneNumber("4915112345678"), country=CountryName("germany")))
    mts_order = make_order(operator=OperatorName("mts"))
    assert find(store, mts_order) == mts
    assert find(store, make_order(operator=OperatorName("tele2"))) is None
    assert find(store, make_order(country=CountryName("sweden"))) is None
    german = find(store, make_order(country=CountryName("germany")))
    assert german is not None
    assert german.country == "germany"
    issued = {must_issue(store, make_order(operator=ANY_OPERATOR)).number_id for _ in range(3)}
    assert issued == {beeline.id, mts.id, unknown.id}
    assert issue(store, make_order(operator=ANY_OPERATOR)) is None


def test_find_free_skips_disabled_offline_and_busy_numbers(store: Store) -> None:
    disabled, offline, busy, free = add(
        store, make_spec(enabled=False), make_spec(), make_spec(), make_spec()
    )
    store.run(lambda uow: uow.numbers.set_online(offline.phone, False, NOW))
    operation = must_issue(store, make_order(exception_prefixes=(free.phone,)))
    assert operation.number_id == busy.id
    assert find(store, make_order()) == free
    store.run(lambda uow: uow.numbers.set_online(offline.phone, True, NOW))
    assert store.run(lambda uow: uow.numbers.set_enabled(free.id, False, NOW)) is True
    assert find(store, make_order()) == number(store, offline.id)
    assert store.run(lambda uow: uow.numbers.set_enabled(NumberId(9999), False, NOW)) is False
    assert store.run(lambda uow: uow.numbers.set_online(PhoneNumber("1"), False, NOW)) is False
    assert disabled.enabled is False


def test_find_free_honours_exception_prefixes(store: Store) -> None:
    a, b, c = add(
        store,
        make_spec(phone=PhoneNumber("79181234567")),
        make_spec(phone=PhoneNumber("79281234567")),
        make_spec(phone=PhoneNumber("79283100000")),
    )
    order = make_order(exception_prefixes=rules.normalise_prefixes(["7918", "79281"]))
    assert find(store, order) == c
    assert find(store, make_order(exception_prefixes=rules.normalise_prefixes([7918, 792831]))) == b
    assert find(store, make_order(exception_prefixes=("79",))) is None
    rent = make_order(kind=OperationKind.RENT, exception_prefixes=("7918", "7928"))
    assert find(store, rent) is None
    assert a.phone.startswith("7918")


def test_find_free_honours_the_largest_allowed_exception_list(store: Store) -> None:
    # MAX_PREFIXES is the documented bound: one AND per prefix breaks SQLite past ~1000.
    target = add(store, make_spec(phone=PhoneNumber("79281234567")))[0]
    prefixes = tuple(f"1{i:05d}" for i in range(rules.MAX_PREFIXES - 1))
    assert find(store, make_order(exception_prefixes=prefixes)) == target
    assert find(store, make_order(exception_prefixes=(*prefixes, "7928"))) is None
    rent = make_order(kind=OperationKind.RENT, exception_prefixes=(*prefixes, "79281"))
    assert find(store, rent) is None


def test_rent_takes_only_rentable_numbers_and_ignores_sales(store: Store) -> None:
    fixed, rentable = add(store, make_spec(rentable=False), make_spec(rentable=True))
    store.run(lambda uow: uow.numbers.exclude(rentable.id, TELEGRAM, "sold", NOW))
    rent = make_order(kind=OperationKind.RENT)
    assert find(store, rent) == rentable
    assert find(store, make_order(service=TELEGRAM)) == fixed
    operation = must_issue(store, rent)
    assert (operation.kind, operation.service, operation.number_id) == (OperationKind.RENT, None, rentable.id)
    assert issue(store, rent) is None


def test_find_free_skips_numbers_sold_for_the_service(store: Store) -> None:
    sold, other = add(store, make_spec(), make_spec())
    store.run(lambda uow: uow.numbers.exclude(sold.id, TELEGRAM, "sold", NOW))
    store.run(lambda uow: uow.numbers.exclude(sold.id, TELEGRAM, "sold", NOW + 1))
    assert store.run(lambda uow: uow.numbers.excluded_services(sold.id)) == {TELEGRAM}
    assert store.run(lambda uow: uow.numbers.excluded_services(other.id)) == set()
    assert find(store, make_order(service=TELEGRAM)) == other
    assert find(store, make_order(service=VK)) == sold


def test_find_free_picks_the_least_recently_issued(store: Store) -> None:
    a, b, c = add(store, make_spec(), make_spec(), make_spec())
    order: list[NumberId] = []
    for step in range(5):
        operation = must_issue(store, make_order(), now=NOW + step)
        order.append(operation.number_id)
        assert finish(store, operation.id, 4) is FinishOutcome.FINISHED
    assert order == [a.id, b.id, c.id, a.id, b.id]
    assert number(store, a.id).last_issued_at == NOW + 3


# --- claims, release, rollback ----------------------------------------------------------------


def test_mark_busy_on_a_busy_number_conflicts_and_rolls_back_the_unit(store: Store) -> None:
    target = add(store, make_spec())[0]
    holder = must_issue(store)
    bystander = make_spec()

    def work(uow: UnitOfWork) -> None:
        uow.numbers.upsert(bystander, NOW)
        uow.numbers.exclude(target.id, VK, "sold", NOW)
        uow.numbers.mark_busy(target.id, OperationId(holder.id + 100), NOW)

    with pytest.raises(ClaimConflict):
        store.run(work)
    assert store.run(lambda uow: uow.numbers.get_by_phone(bystander.phone)) is None
    assert store.run(lambda uow: uow.numbers.excluded_services(target.id)) == set()
    assert number(store, target.id).open_operation_id == holder.id


def test_an_exception_inside_a_unit_of_work_leaves_no_trace(store: Store) -> None:
    kept = add(store, make_spec())[0]
    ghost = make_spec()

    def work(uow: UnitOfWork) -> None:
        uow.numbers.upsert(ghost, NOW)
        issued = issue_number(uow, MARKET, make_order(), NOW)
        assert issued is not None
        finish_operation(uow, MARKET, issued.id, 3, None, NOW)
        issue_number(uow, MARKET, make_order(), NOW)
        raise Boom

    with pytest.raises(Boom):
        store.run(work)
    assert store.run(lambda uow: uow.numbers.get_by_phone(ghost.phone)) is None
    assert operation_ids(store) == []
    assert store.run(lambda uow: uow.numbers.excluded_services(kept.id)) == set()
    assert number(store, kept.id) == kept
    assert store.run(lambda uow: issue_number(uow, MARKET, make_order(), NOW)) is not None


def operation_ids(store: Store) -> list[int]:
    return [o.id for o in store.run_report(recent_operations)]


def test_release_only_by_the_holding_operation(store: Store) -> None:
    target = add(store, make_spec())[0]
    holder = must_issue(store)
    store.run(lambda uow: uow.numbers.release(target.id, OperationId(holder.id + 1), holder.kind))
    assert number(store, target.id).open_operation_id == holder.id
    assert issue(store) is None
    store.run(lambda uow: uow.numbers.release(target.id, holder.id, holder.kind))
    assert number(store, target.id).open_operation_id is None
    assert number(store, target.id).state == "free"


def test_opening_a_second_operation_on_a_number_raises_claim_conflict(store: Store) -> None:
    target = add(store, make_spec())[0]
    first = must_issue(store)
    with pytest.raises(ClaimConflict):
        store.run(lambda uow: uow.operations.open(MARKET, make_order(), target, NOW))
    assert operation_ids(store) == [first.id]


# --- operations -------------------------------------------------------------------------------


def test_operations_open_get_finish(store: Store) -> None:
    target = add(store, make_spec())[0]
    order = make_order(service=VK, offered=Kopecks(4050))
    opened = must_issue(store, order)
    assert opened.id >= 1
    assert (opened.kind, opened.service, opened.offered) == (OperationKind.ACTIVATION, VK, 4050)
    assert (opened.number_id, opened.phone, opened.country, opened.operator) == (
        target.id,
        target.phone,
        target.country,
        target.operator,
    )
    assert opened.marketplace == MARKET
    assert opened.opened_at == NOW
    assert opened.is_open
    assert store.run(lambda uow: uow.operations.get(opened.id)) == opened
    assert store.run(lambda uow: uow.operations.open_for_number(target.id)) == opened
    assert store.run(lambda uow: uow.operations.open_for_phone(target.phone)) == (target.id, opened)
    assert number(store, target.id).open_operation_id == opened.id

    store.run(lambda uow: uow.operations.finish(opened.id, 4, Kopecks(0), NOW + 5))
    closed = store.run(lambda uow: uow.operations.get(opened.id))
    assert closed is not None
    assert (closed.finished_at, closed.finish_status, closed.final) == (NOW + 5, 4, 0)
    assert not closed.is_open
    assert store.run(lambda uow: uow.operations.open_for_number(target.id)) is None
    assert store.run(lambda uow: uow.operations.open_for_phone(target.phone)) == (target.id, None)

    store.run(lambda uow: uow.operations.finish(opened.id, 3, Kopecks(999), NOW + 9))
    assert store.run(lambda uow: uow.operations.get(opened.id)) == closed


def test_unknown_operation_is_none(store: Store) -> None:
    assert store.run(lambda uow: uow.operations.get(OperationId(31337))) is None
    assert store.run(lambda uow: uow.operations.open_for_number(NumberId(31337))) is None
    assert store.run(lambda uow: uow.operations.open_for_phone(PhoneNumber("79990000000"))) is None


def test_activation_ids_increase_and_are_never_reused(store: Store) -> None:
    add(store, make_spec(), make_spec())
    seen: list[int] = []
    for step, status in enumerate([4, 3, 5, 1, 2, 4]):
        operation = must_issue(store, now=NOW + step)
        seen.append(operation.id)
        assert finish(store, operation.id, status) is FinishOutcome.FINISHED
    assert seen[0] >= 1
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))
    recent = store.run_report(recent_operations)
    assert [o.id for o in recent] == seen[::-1]
    assert [o.id for o in store.run_report(lambda r: recent_operations(r, 2))] == seen[:-3:-1]


def test_ids_of_a_rolled_back_issue_are_never_seen(store: Store) -> None:
    add(store, make_spec(), make_spec())
    first = must_issue(store)

    def work(uow: UnitOfWork) -> None:
        issue_number(uow, MARKET, make_order(), NOW)
        raise Boom

    with pytest.raises(Boom):
        store.run(work)
    second = must_issue(store)
    assert second.id > first.id
    assert [o.id for o in store.run_report(recent_operations)] == [second.id, first.id]


# --- counts -----------------------------------------------------------------------------------


def test_group_counts_and_excluded_counts(store: Store) -> None:
    mts = [make_spec(operator=OperatorName("mts"), rentable=bool(i % 2)) for i in range(4)]
    unknown = [make_spec(operator=OperatorName(""))]
    german = [make_spec(phone=PhoneNumber("4915112345678"), country=CountryName("germany"))]
    numbers = add(store, *mts, *unknown, *german)
    store.run(lambda uow: uow.numbers.set_enabled(numbers[0].id, False, NOW))
    store.run(lambda uow: uow.numbers.exclude(numbers[1].id, TELEGRAM, "sold", NOW))
    store.run(lambda uow: uow.numbers.exclude(numbers[2].id, TELEGRAM, "sold", NOW))
    store.run(lambda uow: uow.numbers.exclude(numbers[3].id, VK, "sold", NOW))
    store.run(lambda uow: uow.numbers.exclude(numbers[0].id, VK, "sold", NOW))
    busy = must_issue(store, make_order(operator=OperatorName("mts"), service=WHATSAPP))
    assert busy.number_id == numbers[1].id

    groups = {
        (g.country, g.operator): (g.free, g.rentable)
        for g in store.run(lambda uow: uow.numbers.group_counts())
    }
    assert groups == {("russia", "mts"): (2, 1), ("russia", ""): (1, 1), ("germany", "beeline"): (1, 1)}
    excluded = {
        (x.country, x.operator, x.service): x.excluded
        for x in store.run(lambda uow: uow.numbers.excluded_counts())
    }
    # Only free numbers count: the disabled one (VK) and the busy one (TELEGRAM) are not free.
    assert excluded == {("russia", "mts", "telegram"): 1, ("russia", "mts", "vkcom"): 1}


def test_group_counts_list_groups_with_nothing_free(store: Store) -> None:
    add(store, make_spec(operator=OperatorName("mts"), enabled=False))
    groups = store.run(lambda uow: uow.numbers.group_counts())
    assert [(g.country, g.operator, g.free, g.rentable) for g in groups] == [("russia", "mts", 0, 0)]


# --- use cases end to end ---------------------------------------------------------------------


def test_issue_then_finish_moves_the_counts(store: Store) -> None:
    add(store, *(make_spec(operator=OperatorName("mts")) for _ in range(3)))
    assert counts(store)["russia"]["mts"] == {"telegram": 3, "vkcom": 3, "whatsapp": 3, "rent": 3}
    operation = must_issue(store, make_order(service=TELEGRAM))
    assert counts(store)["russia"]["any"] == {"telegram": 2, "vkcom": 2, "whatsapp": 2, "rent": 2}
    assert finish(store, operation.id, 3, final=450) is FinishOutcome.FINISHED
    assert counts(store)["russia"]["mts"] == {"telegram": 2, "vkcom": 3, "whatsapp": 3, "rent": 3}
    closed = store.run(lambda uow: uow.operations.get(operation.id))
    assert closed is not None
    assert (closed.finish_status, closed.final, closed.offered) == (3, 450, 1250)


@pytest.mark.parametrize("status", [1, 2, 4, 5, 0, 17])
def test_any_status_but_3_releases_without_a_sale(store: Store, status: int) -> None:
    target = add(store, make_spec())[0]
    operation = must_issue(store, make_order(service=TELEGRAM))
    assert finish(store, operation.id, status) is FinishOutcome.FINISHED
    assert number(store, target.id).open_operation_id is None
    assert store.run(lambda uow: uow.numbers.excluded_services(target.id)) == set()
    again = must_issue(store, make_order(service=TELEGRAM))
    assert again.number_id == target.id
    stored = store.run(lambda uow: uow.operations.get(operation.id))
    assert stored is not None
    assert stored.finish_status == status


def test_status_3_sells_the_number_for_that_service_for_good(store: Store) -> None:
    target = add(store, make_spec())[0]
    sold = must_issue(store, make_order(service=TELEGRAM))
    assert finish(store, sold.id, 3) is FinishOutcome.FINISHED
    assert store.run(lambda uow: uow.numbers.excluded_services(target.id)) == {TELEGRAM}
    assert issue(store, make_order(service=TELEGRAM)) is None
    vk = must_issue(store, make_order(service=VK))
    assert finish(store, vk.id, 4) is FinishOutcome.FINISHED
    rent = must_issue(store, make_order(kind=OperationKind.RENT))
    assert rent.number_id == target.id


def test_a_rent_finished_with_3_excludes_nothing(store: Store) -> None:
    target = add(store, make_spec())[0]
    rent = must_issue(store, make_order(kind=OperationKind.RENT))
    assert finish(store, rent.id, 3, final=87000) is FinishOutcome.FINISHED
    assert store.run(lambda uow: uow.numbers.excluded_services(target.id)) == set()
    assert must_issue(store, make_order(service=TELEGRAM)).number_id == target.id


def test_a_repeated_finish_changes_nothing_whatever_its_status(store: Store) -> None:
    cancelled_number, sold_number = add(store, make_spec(), make_spec())
    cancelled = must_issue(store)
    sold = must_issue(store)
    assert finish(store, cancelled.id, 4, final=0) is FinishOutcome.FINISHED
    assert finish(store, sold.id, 3, final=500) is FinishOutcome.FINISHED
    before = (store.run_report(recent_operations), counts(store))
    assert finish(store, cancelled.id, 3, final=999) is FinishOutcome.REPEATED
    assert finish(store, sold.id, 4, final=0) is FinishOutcome.REPEATED
    assert finish(store, sold.id, 3, final=500) is FinishOutcome.REPEATED
    assert (store.run_report(recent_operations), counts(store)) == before
    assert store.run(lambda uow: uow.numbers.excluded_services(cancelled_number.id)) == set()
    assert store.run(lambda uow: uow.numbers.excluded_services(sold_number.id)) == {TELEGRAM}


def test_a_repeat_after_reissue_does_not_free_the_new_operation(store: Store) -> None:
    target = add(store, make_spec())[0]
    first = must_issue(store)
    finish(store, first.id, 4)
    second = must_issue(store)
    assert second.number_id == target.id
    assert finish(store, first.id, 4) is FinishOutcome.REPEATED
    assert number(store, target.id).open_operation_id == second.id
    assert issue(store) is None


def test_finishing_an_unknown_operation(store: Store) -> None:
    add(store, make_spec())
    before = store.run(lambda uow: uow.numbers.search())
    assert finish(store, 987654, 3) is FinishOutcome.UNKNOWN
    assert store.run(lambda uow: uow.numbers.search()) == before


def test_no_numbers_at_all(store: Store) -> None:
    assert counts(store) == {}
    assert issue(store) is None
    assert issue(store, make_order(kind=OperationKind.RENT)) is None


def test_async_entry_points_see_the_same_state(store: Store) -> None:
    add(store, make_spec(), make_spec())

    async def scenario() -> tuple[Operation | None, list[Any], str | None]:
        issued = await store.transact(lambda uow: issue_number(uow, MARKET, make_order(), NOW))
        seen = await store.read(lambda uow: list_available(uow, MARKET, SERVICES))
        return issued, seen, await store.schema_revision()

    issued, seen, revision = asyncio.run(scenario())
    assert issued is not None
    assert number(store, issued.number_id).open_operation_id == issued.id
    assert seen[0].operator_map["any"]["telegram"] == 1
    assert revision == schema.head_revision()


def test_a_failing_transact_rolls_back(store: Store) -> None:
    add(store, make_spec())

    def work(uow: UnitOfWork) -> None:
        issue_number(uow, MARKET, make_order(), NOW)
        raise Boom

    async def scenario() -> None:
        await store.transact(work)

    with pytest.raises(Boom):
        asyncio.run(scenario())
    assert operation_ids(store) == []


# --- the property: every advertised count is issuable, exactly ------------------------------
#
# Hypothesis runs many examples on one store (the `store` fixture is per test, not per example),
# so each example gets countries and phones of its own and looks only at those.

BASES = ("russia", "germany")
OPERATORS = ("beeline", "mts", "")
CALLING = {"russia": "7", "germany": "49"}
_examples = itertools.count(1)


@dataclass(frozen=True)
class SimNumber:
    base: str
    operator: str
    rentable: bool
    enabled: bool
    online: bool
    sold_for: frozenset[str]
    busy: str | None
    """None (free), 'rent', or the service of an open activation."""


sim_numbers = st.builds(
    SimNumber,
    base=st.sampled_from(BASES),
    operator=st.sampled_from(OPERATORS),
    rentable=st.booleans(),
    enabled=st.booleans() | st.just(True),
    online=st.booleans() | st.just(True),
    sold_for=st.frozensets(st.sampled_from(SERVICES)),
    busy=st.none() | st.none() | st.sampled_from([*SERVICES, "rent"]),
)


@dataclass(frozen=True)
class Farm:
    """One example's inventory, under country names no other example uses."""

    example: int
    inventory: list[SimNumber]

    def country(self, base: str) -> CountryName:
        return CountryName(f"{base}-{self.example}")

    @property
    def countries(self) -> set[str]:
        return {self.country(base) for base in BASES}

    def mine(self, answer: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict[str, dict[str, int]]]:
        return {c: ops for c, ops in answer.items() if c in self.countries}

    def expected(self, country: str, operator: str, service: str) -> int:
        return sum(
            1
            for sim in self.inventory
            if self.country(sim.base) == country
            and (operator == "any" or sim.operator == operator)
            and sim.enabled
            and sim.online
            and sim.busy is None
            and (sim.rentable if service == RENT_SERVICE else service not in sim.sold_for)
        )


def load(store: Store, inventory: list[SimNumber]) -> Farm:
    farm = Farm(next(_examples), inventory)

    def work(uow: UnitOfWork) -> None:
        for index, sim in enumerate(inventory):
            phone = PhoneNumber(f"{CALLING[sim.base]}9{farm.example:05d}{index:03d}")
            spec = NumberSpec(
                phone, farm.country(sim.base), OperatorName(sim.operator), "", sim.rentable, sim.enabled
            )
            uow.numbers.upsert(spec, NOW)
            found = uow.numbers.get_by_phone(phone)
            assert found is not None
            for service in sim.sold_for:
                uow.numbers.exclude(found.id, ServiceName(service), "sold", NOW)
            if sim.busy is not None:
                kind = OperationKind.RENT if sim.busy == "rent" else OperationKind.ACTIVATION
                order = make_order(
                    kind=kind,
                    country=found.country,
                    service=None if sim.busy == "rent" else ServiceName(sim.busy),
                )
                operation = uow.operations.open(MARKET, order, found, NOW)
                uow.numbers.mark_busy(found.id, operation.id, NOW)
            if not sim.online:
                uow.numbers.set_online(phone, False, NOW)

    store.run(work)
    return farm


class Drained(Exception):
    def __init__(self, phones: list[str]) -> None:
        self.phones = phones


def drain(store: Store, order: Order) -> list[str]:
    """Issue until NO_NUMBERS inside one unit of work, then roll it all back."""

    def work(uow: UnitOfWork) -> None:
        phones: list[str] = []
        while (operation := issue_number(uow, MARKET, order, NOW)) is not None:
            phones.append(operation.phone)
            assert len(phones) <= 100, "issuing never stops"
        raise Drained(phones)

    with pytest.raises(Drained) as drained:
        store.run(work)
    return drained.value.phones


def order_for(country: str, operator: str, service: str) -> Order:
    rent = service == RENT_SERVICE
    return make_order(
        kind=OperationKind.RENT if rent else OperationKind.ACTIVATION,
        country=CountryName(country),
        operator=OperatorName(operator),
        service=None if rent else ServiceName(service),
    )


@given(inventory=st.lists(sim_numbers, max_size=14))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_get_services_counts_equal_what_get_number_issues(store: Store, inventory: list[SimNumber]) -> None:
    farm = load(store, inventory)
    advertised = farm.mine(counts(store))
    assert set(advertised) == {farm.country(sim.base) for sim in inventory}
    for country, operator_map in advertised.items():
        named = {sim.operator for sim in inventory if farm.country(sim.base) == country and sim.operator}
        assert set(operator_map) == {"any", *named}
        for operator, per_service in operator_map.items():
            assert set(per_service) == {*SERVICES, RENT_SERVICE}
            for service, count in per_service.items():
                phones = drain(store, order_for(country, operator, service))
                assert len(phones) == len(set(phones)), "one number issued twice"
                where = (country, operator, service)
                assert count == len(phones), f"advertised {count}, issued {len(phones)} for {where}"
                assert count == farm.expected(*where), where
    # Every drain was rolled back: the store still advertises what it did at the start.
    assert farm.mine(counts(store)) == advertised


@given(inventory=st.lists(sim_numbers, min_size=1, max_size=10), script=st.data())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_counts_stay_issuable_through_a_random_history(
    store: Store, inventory: list[SimNumber], script: st.DataObject
) -> None:
    """Issue and finish at random; after every step each advertised `any` count holds."""
    farm = load(store, inventory)
    open_ids: list[OperationId] = []
    for _ in range(script.draw(st.integers(1, 10), label="steps")):
        wants_finish = script.draw(st.booleans(), label="finish?")
        if open_ids and wants_finish:
            operation_id = open_ids.pop(script.draw(st.integers(0, len(open_ids) - 1), label="which"))
            status = script.draw(st.sampled_from([1, 3, 4, 5]), label="status")
            assert finish(store, operation_id, status) is FinishOutcome.FINISHED
        else:
            wanted = script.draw(st.sampled_from([*SERVICES, RENT_SERVICE]), label="service")
            where = farm.country(script.draw(st.sampled_from(BASES), label="country"))
            before = counts(store).get(where, {}).get("any", {}).get(wanted, 0)
            operation = issue(store, order_for(where, ANY_OPERATOR, wanted))
            assert (operation is not None) == (before > 0), (where, wanted, before)
            if operation is not None:
                open_ids.append(operation.id)
        for country, operator_map in farm.mine(counts(store)).items():
            for service, count in operator_map["any"].items():
                assert len(drain(store, order_for(country, ANY_OPERATOR, service))) == count, (
                    country,
                    service,
                )
    held = {n.open_operation_id for n in store.run(lambda uow: uow.numbers.search()) if n.busy}
    assert set(open_ids) <= held
