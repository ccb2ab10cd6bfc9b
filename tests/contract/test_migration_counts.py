"""Migration 0011 on a populated farm (SQLite and PostgreSQL): the kept counts start equal to
a recount, GET_SERVICES answers exactly what it answered before, and a second downgrade and
upgrade leave them right again (through 0021's downgrade, with a subsumed exclusion)."""

from __future__ import annotations

from alembic import command

from simgate.domain import rules
from simgate.domain.types import CountryName, OperatorName, PhoneNumber, ServiceName
from simgate.services.inventory import import_numbers
from simgate.services.operations import finish_operation, issue_number, list_available
from simgate.storage import schema
from simgate.storage.ports import Store, UnitOfWork
from simgate.storage.sql import SqlNumbers
from tests.contract.test_migration_lanes import old_database, open_store  # noqa: F401 (fixture)
from tests.factories import make_order, make_spec

BEFORE = "0012"
"""The head before the kept counts."""
NOW = 1_700_000_000.0
SERVICES = [ServiceName(s) for s in ("telegram", "vkcom", "whatsapp")]


def farm(store: Store) -> None:
    """Import, claims, FINISH and a block over a scoped exclusion, through the store's code."""
    specs = [
        make_spec(
            phone=PhoneNumber(f"7928100{i:04d}"),
            country=CountryName("russia" if i % 3 else "kazakhstan"),
            operator=OperatorName(("beeline", "mts", "")[i % 3]),
            rentable=i % 2 == 0,
        )
        for i in range(12)
    ]
    store.run(lambda uow: import_numbers(uow, specs, NOW))
    for service, status in ((SERVICES[0], 3), (SERVICES[1], 3), (SERVICES[0], 4), (SERVICES[2], 3)):
        operation = store.run(
            lambda uow, s=service: issue_number(uow, "onlinesim", make_order(service=s), NOW)
        )  # type: ignore[misc]
        assert operation is not None
        if status != 4:
            store.run(
                lambda uow, o=operation, st=status: finish_operation(uow, "onlinesim", o.id, st, None, NOW)  # type: ignore[misc]
            )
    store.run(lambda uow: issue_number(uow, "onlinesim", make_order(), NOW))  # stays open

    def offline(uow: UnitOfWork) -> None:
        uow.numbers.set_online(specs[5].phone, False, NOW)

    store.run(offline)

    def block_over_a_scoped_exclusion(uow: UnitOfWork) -> None:
        # Two rows of one (number, service) (migration 0021): a downgrade keeps the global one.
        number = uow.numbers.get_by_phone(specs[7].phone)
        assert number is not None
        uow.numbers.exclude(number.id, SERVICES[1], "retries", NOW, marketplace="onlinesim")
        uow.numbers.exclude(number.id, SERVICES[1], "blocked", NOW)

    store.run(block_over_a_scoped_exclusion)


def recounted(uow: UnitOfWork) -> object:
    numbers = uow.numbers
    assert isinstance(numbers, SqlNumbers)
    return rules.tally_availability(
        numbers.group_counts_recounted("onlinesim", NOW),
        numbers.excluded_counts_recounted("onlinesim", NOW),
        SERVICES,
        with_rent=True,
    )


def kept(uow: UnitOfWork) -> object:
    return list_available(uow, "onlinesim", SERVICES, with_rent=True, now=NOW)


def test_0011_starts_from_a_recount_and_answers_as_before(old_database: str) -> None:  # noqa: F811
    # The farm is written at the head (today's code writes columns of later revisions, 0021's
    # `subsumed`), then taken back to before 0011 and up again, twice: 0011's backfill meets a
    # populated farm each time.
    schema.upgrade(old_database)
    store = open_store(old_database)
    try:
        farm(store)
        before = store.run(recounted)
    finally:
        store.close()
    for _ in range(2):
        command.downgrade(schema._config(old_database), BEFORE)
        schema.upgrade(old_database)
        store = open_store(old_database)
        try:
            assert store.run(lambda uow: uow.numbers.count_drift()) == []
            assert store.run(kept) == before
            assert any(c.operator_map["any"]["telegram"] for c in store.run(kept))  # not all zeros
        finally:
            store.close()
