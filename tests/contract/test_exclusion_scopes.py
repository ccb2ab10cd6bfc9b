"""An operator's block and a marketplace's own exclusions of the same (number, service) stand
side by side, on every store: lifting the block lifts only the block.

A marketplace-scoped exclusion (a sale that marketplace's rules forbid reselling there, a
spent status-4 budget) is a fact the operations may no longer prove once history is pruned
(services/history.py), so a block must not replace it. GET_SERVICES still subtracts such a
(number, service) once, and the kept counts still equal a recount.
"""

from __future__ import annotations

import pytest

from simgate.domain.model import FinishPolicy, FinishStatus, NumberSpec, OperationKind, Order
from simgate.domain.read_model import BLOCKED, SOLD, Exclusion
from simgate.domain.types import (
    ANY_OPERATOR,
    EVERYWHERE,
    CountryName,
    NumberId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from simgate.services.admin import Conflict, block_service, unblock_service
from simgate.services.inventory import import_numbers
from simgate.services.lanes import register_marketplaces
from simgate.services.operations import finish_operation, issue_number
from simgate.storage.ports import Store, UnitOfWork

OS, HUB = "onlinesim", "smshub"
AGENT = FinishPolicy(refuse_statuses=frozenset({1}), retry_budget_status=4, retry_budget=2)
WHATSAPP = ServiceName("whatsapp")
COUNTRY, OPERATOR = CountryName("russia"), OperatorName("mts")
NOW = 1_700_000_000.0


def hub_number(store: Store) -> NumberId:
    """One SIM only SMSHUB may sell: it sits in SMSHUB's lane, so SMSHUB counts it."""
    spec = NumberSpec(PhoneNumber("79990001122"), COUNTRY, OPERATOR, marketplaces=frozenset({HUB}))
    store.run(lambda uow: register_marketplaces(uow, (OS, HUB), NOW))
    store.run(lambda uow: import_numbers(uow, [spec], NOW))
    number = store.run(lambda uow: uow.numbers.get_by_phone(spec.phone))
    assert number is not None
    assert number.lane == HUB
    return number.id


def facts(store: Store, number_id: NumberId) -> list[tuple[str, str, str]]:
    return [
        (f.service, f.marketplace, f.reason)
        for f in store.run_read(lambda uow: uow.numbers.exclusions(number_id))
    ]


def shown(store: Store, number_id: NumberId) -> tuple[Exclusion, ...]:
    """What the console (dashboard, `numbers list`) shows of them."""
    report = store.run_report(lambda r: r.number(number_id))
    assert report is not None
    return report.exclusions


def offered_on(store: Store, number_id: NumberId) -> dict[str, bool]:
    """Whether each marketplace may still be offered the SIM for WhatsApp."""
    return {
        m: WHATSAPP not in store.run_read(lambda uow: uow.numbers.excluded_services(number_id, m))
        for m in (OS, HUB)
    }


def assert_counted_once(store: Store) -> None:
    """SMSHUB's GET_SERVICES takes the SIM off WhatsApp exactly once, read either way, and the
    kept counts equal a recount."""

    def read(uow: UnitOfWork) -> None:
        kept = {(x.country, x.operator, x.service): x.excluded for x in uow.numbers.excluded_counts(HUB, NOW)}
        assert kept == {(COUNTRY, OPERATOR, WHATSAPP): 1}
        (group,) = [g for g in uow.numbers.group_availability(HUB, NOW) if g.country == COUNTRY]
        assert (group.free, dict(group.excluded)) == (1, {WHATSAPP: 1})
        assert uow.numbers.count_drift() == []

    store.run(read)


def test_unblock_keeps_a_sale_scoped_to_one_marketplace(store: Store) -> None:
    number_id = hub_number(store)
    store.run(lambda uow: uow.numbers.exclude(number_id, WHATSAPP, SOLD, NOW, marketplace=HUB))
    store.run(lambda uow: block_service(uow, number_id, "whatsapp", NOW + 1))
    assert facts(store, number_id) == [(WHATSAPP, EVERYWHERE, BLOCKED), (WHATSAPP, HUB, SOLD)]
    assert shown(store, number_id) == (Exclusion(WHATSAPP, BLOCKED), Exclusion(WHATSAPP, SOLD, HUB))
    assert offered_on(store, number_id) == {OS: False, HUB: False}
    assert_counted_once(store)
    store.run(lambda uow: uow.numbers.rebuild_counts())  # `simgate check --recount`
    assert_counted_once(store)

    store.run(lambda uow: unblock_service(uow, number_id, "whatsapp", NOW + 2))
    assert facts(store, number_id) == [(WHATSAPP, HUB, SOLD)]
    assert shown(store, number_id) == (Exclusion(WHATSAPP, SOLD, HUB),)
    assert offered_on(store, number_id) == {OS: True, HUB: False}
    assert_counted_once(store)


def test_a_budget_spent_while_blocked_outlasts_the_block(store: Store) -> None:
    """The third status 4 on SMSHUB comes in while the operator's block stands (the activation
    was open when the block came): its exclusion is written under the block and stays."""
    number_id = hub_number(store)
    order = Order(OperationKind.ACTIVATION, COUNTRY, ANY_OPERATOR, WHATSAPP)
    for i in range(3):
        operation = store.run(lambda uow: issue_number(uow, HUB, order, NOW + i))
        assert operation is not None
        if i == 2:
            store.run(lambda uow: block_service(uow, number_id, "whatsapp", NOW + i))
        store.run(lambda uow: finish_operation(uow, HUB, operation.id, 4, None, NOW + i, AGENT))
    assert facts(store, number_id) == [(WHATSAPP, EVERYWHERE, BLOCKED), (WHATSAPP, HUB, "retries")]
    assert_counted_once(store)

    store.run(lambda uow: unblock_service(uow, number_id, "whatsapp", NOW + 5))
    assert facts(store, number_id) == [(WHATSAPP, HUB, "retries")]
    assert offered_on(store, number_id) == {OS: True, HUB: False}
    assert_counted_once(store)


def test_a_sale_while_blocked_is_not_lifted_with_the_block(store: Store) -> None:
    """Sold (status 3) on an activation that was open when the operator blocked the service:
    the sale binds everywhere for good, so the block has nothing left to lift."""
    number_id = hub_number(store)
    order = Order(OperationKind.ACTIVATION, COUNTRY, ANY_OPERATOR, WHATSAPP)
    operation = store.run(lambda uow: issue_number(uow, HUB, order, NOW))
    assert operation is not None
    store.run(lambda uow: block_service(uow, number_id, "whatsapp", NOW + 1))
    store.run(lambda uow: finish_operation(uow, HUB, operation.id, FinishStatus.SOLD, None, NOW + 2, AGENT))
    assert facts(store, number_id) == [(WHATSAPP, EVERYWHERE, SOLD)]
    assert_counted_once(store)

    with pytest.raises(Conflict):
        store.run(lambda uow: unblock_service(uow, number_id, "whatsapp", NOW + 3))
    assert offered_on(store, number_id) == {OS: False, HUB: False}
    assert_counted_once(store)


def test_a_block_over_a_global_sale_changes_nothing(store: Store) -> None:
    number_id = hub_number(store)
    store.run(lambda uow: uow.numbers.exclude(number_id, WHATSAPP, SOLD, NOW))
    store.run(lambda uow: block_service(uow, number_id, "whatsapp", NOW + 1))
    assert facts(store, number_id) == [(WHATSAPP, EVERYWHERE, SOLD)]
    with pytest.raises(Conflict):
        store.run(lambda uow: unblock_service(uow, number_id, "whatsapp", NOW + 2))
    assert_counted_once(store)


@pytest.mark.parametrize("block_first", [True, False], ids=["block-then-sale", "sale-then-block"])
def test_a_block_and_a_sale_in_either_order_leave_one_row_the_sale(store: Store, block_first: bool) -> None:
    """The operator blocks while an activation is open and the marketplace reports it sold, in
    either order: one global row, the sale's (it binds for good; the block could be lifted),
    and no error. tests/integration/test_postgres_exclusion_races.py runs them at once."""
    number_id = hub_number(store)
    order = Order(OperationKind.ACTIVATION, COUNTRY, ANY_OPERATOR, WHATSAPP)
    operation = store.run(lambda uow: issue_number(uow, HUB, order, NOW))
    assert operation is not None

    def block(uow: UnitOfWork) -> None:
        block_service(uow, number_id, "whatsapp", NOW + 1)

    def sell(uow: UnitOfWork) -> None:
        finish_operation(uow, HUB, operation.id, FinishStatus.SOLD, None, NOW + 2, AGENT)

    for step in (block, sell) if block_first else (sell, block):
        store.run(step)
    (fact,) = store.run_read(lambda uow: uow.numbers.exclusions(number_id))
    assert (fact.service, fact.marketplace, fact.reason, fact.operation_id) == (
        WHATSAPP,
        EVERYWHERE,
        SOLD,
        operation.id,
    )
    assert offered_on(store, number_id) == {OS: False, HUB: False}
    assert_counted_once(store)


@pytest.mark.parametrize(
    ("scope", "reasons"),
    [
        (EVERYWHERE, (BLOCKED, BLOCKED)),
        (EVERYWHERE, (SOLD, SOLD)),
        (EVERYWHERE, (SOLD, "group")),
        (EVERYWHERE, (SOLD, BLOCKED)),
        (HUB, ("retries", "retries")),
    ],
)
def test_an_exclusion_written_twice_is_one_row_the_first_writer_s(
    store: Store, scope: str, reasons: tuple[str, str]
) -> None:
    """A resent FINISH, a second click on Block: the row stays the first one's, its time and
    cause too (only a marketplace's fact takes over a block, above)."""
    number_id = hub_number(store)
    for i, reason in enumerate(reasons):

        def exclude(uow: UnitOfWork, reason: str = reason, at: float = NOW + i) -> None:
            uow.numbers.exclude(number_id, WHATSAPP, reason, at, marketplace=scope)

        store.run(exclude)
    (fact,) = store.run_read(lambda uow: uow.numbers.exclusions(number_id))
    assert (fact.service, fact.marketplace, fact.reason) == (WHATSAPP, scope, reasons[0])
    assert fact.created_at == NOW
    assert_counted_once(store)
