"""PostgreSQL: two units of work writing one number's exclusions at once, on two connections.

Unit A runs and stays uncommitted; unit B runs on another connection until it either waits
on A's locks or finishes; A commits; B must then finish without an error, and the rows must
be what the two in either order leave (tests/contract/test_exclusion_scopes.py), with the
kept counts equal to a recount. READ COMMITTED, as the store runs units.

Before the number row was locked and the insert made an upsert (storage/sql.py `exclude`,
migration 0023), B's insert of the same (number, service, marketplace) failed with a unique
violation once A committed; a global and a scoped row written side by side left the scoped
one counted beside the global one; and an exclusion written beside a claim or a FINISH copied
the number's state from before it (free while busy, or the reverse).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest

from simgate.domain.model import FinishPolicy, FinishStatus, NumberSpec, OperationKind, Order
from simgate.domain.read_model import BLOCKED, SOLD
from simgate.domain.types import (
    ANY_OPERATOR,
    EVERYWHERE,
    CountryName,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from simgate.services.admin import block_service, unblock_service
from simgate.services.inventory import import_numbers
from simgate.services.lanes import register_marketplaces
from simgate.services.operations import finish_operation, issue_number
from simgate.storage.pg_units import PgConnection, PgUnitOfWork
from simgate.storage.ports import UnitOfWork
from simgate.storage.postgres import PostgresStore
from simgate.storage.sql_base import COUNTED, FREE

pytestmark = pytest.mark.postgres

OS, HUB = "onlinesim", "smshub"
AGENT = FinishPolicy(retry_budget_status=4, retry_budget=0)
"""The first status 4 spends SMSHUB's budget: one scoped exclusion at once."""
WHATSAPP = ServiceName("whatsapp")
COUNTRY, OPERATOR = CountryName("russia"), OperatorName("mts")
ORDER = Order(OperationKind.ACTIVATION, COUNTRY, ANY_OPERATOR, WHATSAPP)
NOW = 1_700_000_000.0
BOUND = 10.0
"""Seconds any wait here may take (the server's lock_timeout too): far above the
milliseconds each step takes, so a deadlock fails the test instead of hanging it."""

Step = Callable[[UnitOfWork], object]


@dataclass(frozen=True)
class Farm:
    url: str
    store: PostgresStore
    number_id: NumberId
    operation_id: OperationId | None


@pytest.fixture
def make_farm(postgres_url: str) -> Iterator[Callable[..., Farm]]:
    stores: list[PostgresStore] = []

    def make(*, open_activation: bool = True, blocked: bool = False) -> Farm:
        """One SIM only SMSHUB sells (its lane counts it), with an open WhatsApp activation."""
        store = PostgresStore(postgres_url, min_size=1, max_size=2)
        stores.append(store)
        spec = NumberSpec(PhoneNumber("79990001122"), COUNTRY, OPERATOR, marketplaces=frozenset({HUB}))
        store.run(lambda uow: register_marketplaces(uow, (OS, HUB), NOW))
        store.run(lambda uow: import_numbers(uow, [spec], NOW))
        number = store.run(lambda uow: uow.numbers.get_by_phone(spec.phone))
        assert number is not None
        assert number.lane == HUB
        operation = store.run(lambda uow: issue_number(uow, HUB, ORDER, NOW)) if open_activation else None
        if blocked:
            store.run(lambda uow: block_service(uow, number.id, "whatsapp", NOW))
        return Farm(postgres_url, store, number.id, None if operation is None else operation.id)

    yield make
    for store in stores:
        store.close()


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    bound = int(BOUND * 1000)
    # Autocommit, as the store's connections: PgConnection begins the unit's transaction.
    return psycopg.connect(
        url, autocommit=True, options=f"-c lock_timeout={bound} -c statement_timeout={bound}"
    )


def waiting_on_a_lock(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def interleave(url: str, first: Step, second: Step) -> None:
    """`first` in transaction A, left open; `second` in B, on another connection, as the store
    runs it (a FINISH or a claim as its own one-statement transaction); B waits on A or is
    done; A commits; B must finish, without an error."""
    errors: list[BaseException] = []
    with connect(url) as conn_a, connect(url) as conn_b:
        a = PgConnection(conn_a)
        first(PgUnitOfWork(a))
        b = PgConnection(conn_b, single=True)

        def run_b() -> None:
            try:
                second(PgUnitOfWork(b))
                b.commit()
            except BaseException as error:
                b.rollback()
                errors.append(error)

        thread = threading.Thread(target=run_b, daemon=True)
        thread.start()
        deadline = time.monotonic() + BOUND
        while thread.is_alive() and not waiting_on_a_lock(url, conn_b.info.backend_pid):
            assert time.monotonic() < deadline, "B neither waited nor finished"
            time.sleep(0.01)
        a.commit()
        thread.join(BOUND)
        assert not thread.is_alive(), "B still waits after A committed"
    assert errors == []


def block(farm: Farm) -> Step:
    return lambda uow: block_service(uow, farm.number_id, "whatsapp", NOW + 1)


def unblock(farm: Farm) -> Step:
    return lambda uow: unblock_service(uow, farm.number_id, "whatsapp", NOW + 1)


def finish(farm: Farm, status: int) -> Step:
    assert farm.operation_id is not None
    operation_id = farm.operation_id
    return lambda uow: finish_operation(uow, HUB, operation_id, status, None, NOW + 2, AGENT)


def claim(uow: UnitOfWork) -> object:
    return issue_number(uow, HUB, ORDER, NOW + 3)


ROWS_NOW = (
    "SELECT x.service, x.marketplace, x.subsumed, x.free, x.counted_lane,"
    " x.marketplace <> '*' AND EXISTS (SELECT 1 FROM number_exclusions g"
    " WHERE g.number_id = x.number_id AND g.service = x.service AND g.marketplace = '*'),"
    f" {FREE}, CASE WHEN {COUNTED} THEN n.lane END"
    " FROM number_exclusions x JOIN numbers n ON n.id = x.number_id ORDER BY x.service, x.marketplace"
)
"""Each exclusion row's `subsumed` and copies of its number (migrations 0004, 0005, 0021), as
stored and as they would be written now."""


def assert_rows(farm: Farm, expected: list[tuple[str, str, str]]) -> None:
    """The rows left; each as it would be written now (subsumed beside a global row, the
    number's state copied from the number as it is); and the kept counts equal to a recount.
    The counts alone can come out right by accident: a stale copy that counts nowhere beside a
    scoped row that should not count."""
    facts = farm.store.run_read(lambda uow: uow.numbers.exclusions(farm.number_id))
    assert [(f.service, f.marketplace, f.reason) for f in facts] == expected
    with psycopg.connect(farm.url) as conn:
        for service, scope, *row in conn.execute(ROWS_NOW).fetchall():
            stored, now = row[:3], row[3:]
            assert stored == now, f"{service} on {scope}: (subsumed, free, counted_lane) {stored}, not {now}"
    assert farm.store.run(lambda uow: uow.numbers.count_drift()) == []


SOLD_ROW = [(WHATSAPP, EVERYWHERE, SOLD)]
BLOCKED_ROW = [(WHATSAPP, EVERYWHERE, BLOCKED)]
BESIDE = [(WHATSAPP, EVERYWHERE, BLOCKED), (WHATSAPP, HUB, "retries")]
SCOPED = [(WHATSAPP, HUB, "retries")]


def test_a_block_and_a_sale_at_once_leave_the_sale(postgres_url: str, make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    interleave(postgres_url, block(farm), finish(farm, FinishStatus.SOLD))
    assert_rows(farm, SOLD_ROW)


def test_a_sale_and_a_block_at_once_leave_the_sale(postgres_url: str, make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    interleave(postgres_url, finish(farm, FinishStatus.SOLD), block(farm))
    assert_rows(farm, SOLD_ROW)


def test_the_same_block_twice_at_once_is_one_row(postgres_url: str, make_farm: Callable[..., Farm]) -> None:
    farm = make_farm(open_activation=False)
    interleave(postgres_url, block(farm), block(farm))
    assert_rows(farm, BLOCKED_ROW)


def test_a_block_beside_a_spent_budget_subsumes_it(postgres_url: str, make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    interleave(postgres_url, block(farm), finish(farm, 4))
    assert_rows(farm, BESIDE)


def test_a_spent_budget_beside_a_block_is_subsumed(postgres_url: str, make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    interleave(postgres_url, finish(farm, 4), block(farm))
    assert_rows(farm, BESIDE)


def test_an_unblock_beside_a_spent_budget_lets_it_count(
    postgres_url: str, make_farm: Callable[..., Farm]
) -> None:
    farm = make_farm(blocked=True)
    interleave(postgres_url, unblock(farm), finish(farm, 4))
    assert_rows(farm, SCOPED)


def test_a_spent_budget_beside_an_unblock_counts(postgres_url: str, make_farm: Callable[..., Farm]) -> None:
    farm = make_farm(blocked=True)
    interleave(postgres_url, finish(farm, 4), unblock(farm))
    assert_rows(farm, SCOPED)


def test_a_block_beside_a_claim_copies_the_claimed_number(
    postgres_url: str, make_farm: Callable[..., Farm]
) -> None:
    farm = make_farm(open_activation=False)
    interleave(postgres_url, claim, block(farm))
    assert_rows(farm, BLOCKED_ROW)


def test_a_claim_beside_a_block_passes_the_number_over(
    postgres_url: str, make_farm: Callable[..., Farm]
) -> None:
    farm = make_farm(open_activation=False)
    interleave(postgres_url, block(farm), claim)
    assert_rows(farm, BLOCKED_ROW)
