"""History pruning (domain/history.py), held to one contract over memory, SQLite and PostgreSQL:
old finished history goes; open operations, unfinished pushes, sales inside a resale window,
operations a rule still counts and notices of open alerts stay; batches stay bounded."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simgate.dashboard.farm_gauges import FarmCollector
from simgate.domain.history import DAY, SCAN, START, TABLES, WALK, Batch, HistoryPolicy, Position
from simgate.domain.messages import Attempt, DeliveryState, IncomingMessage, Verdict
from simgate.domain.model import Number, Operation, OperationKind
from simgate.domain.types import ServiceName, Timestamp
from simgate.services.history import Run, prune_history, prune_pass
from simgate.services.lanes import register_marketplaces
from simgate.storage.ports import Store, UnitOfWork
from tests.conftest import copy_database
from tests.factories import make_order, make_spec

NOW = 1_800_000_000.0
OLD = NOW - 200 * DAY
"""Past the 180-day horizon."""
POLICY = HistoryPolicy(days=180, longest_window=60 * DAY, counted=frozenset({("smshub", 4)}))


@dataclass
class Farm:
    """What a scenario made, by name: operations and messages."""

    store: Store
    ops: dict[str, Operation] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)

    def number(self) -> Number:
        spec = make_spec()

        def work(uow: UnitOfWork) -> Number:
            uow.numbers.upsert(spec, OLD - DAY)
            found = uow.numbers.get_by_phone(spec.phone)
            assert found is not None
            return found

        return self.store.run(work)

    def operation(
        self,
        name: str,
        opened: Timestamp,
        finished: Timestamp | None = None,
        status: int = 4,
        marketplace: str = "onlinesim",
        kind: OperationKind = OperationKind.ACTIVATION,
    ) -> Operation:
        number = self.number()
        order = make_order(kind=kind)

        def work(uow: UnitOfWork) -> Operation:
            operation = uow.operations.open(marketplace, order, number, opened)
            uow.numbers.mark_busy(number.id, operation.id, opened)
            if finished is not None:
                uow.operations.finish(operation.id, status, None, finished)
                uow.numbers.release(number.id, operation.id, operation.kind)
            if status == 3 and operation.service is not None:  # what finish_operation adds
                uow.numbers.exclude(number.id, operation.service, "sold", finished, operation_id=operation.id)
            return operation

        self.ops[name] = self.store.run(work)
        return self.ops[name]

    def sms(self, name: str, operation: str, at: Timestamp, pushes: int = 2, delivered: bool = True) -> None:
        """An SMS to `operation` stored at `at`, pushed `pushes` times; delivered or still pending."""
        op = self.ops[operation]
        incoming = IncomingMessage(op.phone, "VK", f"code {name}", "http", None, None)

        def work(uow: UnitOfWork) -> tuple[int, int]:
            message = uow.messages.add(incoming, op.number_id, op.id, at)
            assert message is not None
            delivery = uow.outbox.enqueue(message.id, op.id, op.marketplace, at)
            for i in range(pushes):
                last = i == pushes - 1
                state = DeliveryState.DELIVERED if delivered and last else DeliveryState.PENDING
                verdict = Verdict.DELIVERED if delivered and last else Verdict.RETRY
                attempt = Attempt(at + i, 12.0, 200, "ok", None, verdict)
                uow.outbox.record(delivery, "w1", attempt, state, at + i + 10, None)
            return message.id, delivery

        self.messages[name], self.deliveries[name] = self.store.run(work)

    def stuck(self, operation: str, at: Timestamp, count: int) -> list[int]:
        """`count` SMS to `operation` from `at` on, a second apart, each with a push still
        pending (a marketplace without a push URL): old, yet they stay. One transaction."""
        op = self.ops[operation]

        def work(uow: UnitOfWork) -> list[int]:
            ids = []
            for i in range(count):
                incoming = IncomingMessage(op.phone, "VK", f"stuck {i}", "http", None, None)
                message = uow.messages.add(incoming, op.number_id, op.id, at + i)
                assert message is not None
                self.deliveries[f"{operation}{i}"] = uow.outbox.enqueue(
                    message.id, op.id, op.marketplace, at + i
                )
                ids.append(message.id)
            return ids

        return self.store.run(work)

    def unpushed(self, operation: str, at: Timestamp, count: int) -> None:
        """`count` SMS to `operation` from `at` on, never pushed (nothing pending): old ones go."""
        op = self.ops[operation]

        def work(uow: UnitOfWork) -> None:
            for i in range(count):
                incoming = IncomingMessage(op.phone, "VK", f"rent {i}", "http", None, None)
                assert uow.messages.add(incoming, op.number_id, op.id, at + i) is not None

        self.store.run(work)


def operation_ids(store: Store) -> set[int]:
    def work(uow: UnitOfWork) -> set[int]:
        return {op.id for n in uow.numbers.search() for op in uow.operations.of_number(n.id)}

    return store.run(work)


def message_exists(store: Store, message_id: int) -> bool:
    return store.run(lambda uow: uow.messages.get(message_id)) is not None


def attempts_of(store: Store, delivery_id: int) -> int:
    return len(store.run(lambda uow: uow.outbox.attempts(delivery_id)))


def history(store: Store) -> Farm:
    farm = Farm(store)
    farm.operation("done", OLD, OLD + 60)  # old, finished, pushed: goes whole
    farm.sms("done", "done", OLD + 30)
    farm.operation("rent", OLD, None, kind=OperationKind.RENT)  # still open after 200 days
    farm.sms("rent", "rent", OLD + 30)
    farm.operation("waiting", OLD, OLD + 60)  # its SMS never reached the marketplace
    farm.sms("waiting", "waiting", OLD + 30, delivered=False)
    farm.operation("recent", NOW - 10 * DAY, NOW - 10 * DAY + 60)
    farm.sms("recent", "recent", NOW - 10 * DAY + 30)
    farm.operation("sold", OLD, OLD + 60, status=3)  # a sale long out of every window
    farm.operation("budget", OLD, OLD + 60, marketplace="smshub")  # status 4 counted, not spent
    farm.operation("spent", OLD, OLD + 60, marketplace="smshub")
    spent = farm.ops["spent"]
    assert spent.service is not None
    store.run(
        lambda uow: uow.numbers.exclude(
            spent.number_id, spent.service, "retries", OLD + 60, marketplace="smshub", operation_id=spent.id
        )
    )
    return farm


def test_old_finished_history_goes_and_what_is_still_needed_stays(store: Store) -> None:
    farm = history(store)
    before = operation_ids(store)
    expected = {"delivery_attempts": 2, "deliveries": 1, "messages": 1, "operations": 3, "alert_notices": 0}
    plan = POLICY.plan(NOW)
    assert plan is not None
    assert store.run_read(lambda uow: uow.history.prunable(plan)) == expected

    assert prune_history(store, POLICY, NOW) == expected

    gone = {farm.ops[name].id for name in ("done", "sold", "spent")}
    assert operation_ids(store) == before - gone
    assert not message_exists(store, farm.messages["done"])
    assert store.run(lambda uow: uow.outbox.get(farm.deliveries["done"])) is None
    for kept in ("rent", "waiting", "recent"):
        assert message_exists(store, farm.messages[kept]), kept
        assert attempts_of(store, farm.deliveries[kept]) == 2, kept
    # The sale's lasting consequence is its exclusion row, which stays.
    sold = farm.ops["sold"]
    excluded = store.run(lambda uow: uow.numbers.excluded_services(sold.number_id, "smshub"))
    assert ServiceName("telegram") in excluded
    # Nothing more to do, and the GET_SERVICES counts still equal a recount (`simgate check`).
    assert store.run_read(lambda uow: uow.history.prunable(plan)) == dict.fromkeys(TABLES, 0)
    assert prune_history(store, POLICY, NOW) == dict.fromkeys(TABLES, 0)
    assert store.run_read(lambda uow: uow.numbers.count_drift()) == []


def test_a_dry_run_counted_window_by_window_adds_up_to_what_a_prune_removes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simgate.storage import sql_history

    monkeypatch.setattr(sql_history, "COUNT_WINDOW", 2)  # every old row a window's edge
    farm = history(store)
    farm.unpushed("done", OLD + 40, 5)
    plan = POLICY.plan(NOW)
    assert plan is not None
    counted = store.run_read(lambda uow: uow.history.prunable(plan))
    assert counted == {
        "delivery_attempts": 2,
        "deliveries": 1,
        "messages": 6,
        "operations": 3,
        "alert_notices": 0,
    }
    assert prune_history(store, POLICY, NOW) == counted


def test_a_delivered_push_releases_what_it_kept(store: Store) -> None:
    farm = history(store)
    prune_history(store, POLICY, NOW)
    waiting = farm.deliveries["waiting"]
    attempt = Attempt(NOW, 12.0, 200, "ok", None, Verdict.DELIVERED)
    store.run(lambda uow: uow.outbox.record(waiting, "w1", attempt, DeliveryState.DELIVERED, NOW, None))
    removed = prune_history(store, POLICY, NOW)
    assert (removed["messages"], removed["operations"], removed["delivery_attempts"]) == (1, 1, 3)
    assert farm.ops["waiting"].id not in operation_ids(store)


def test_a_sale_inside_a_resale_window_stays_whatever_the_setting(store: Store) -> None:
    farm = Farm(store)
    farm.operation("in_window", NOW - 45 * DAY, NOW - 45 * DAY, status=3)
    farm.operation("past_window", NOW - 70 * DAY, NOW - 70 * DAY, status=3)
    short = HistoryPolicy(days=30, longest_window=60 * DAY)
    assert short.horizon == 60 * DAY
    assert prune_history(store, short, NOW)["operations"] == 1
    assert operation_ids(store) == {farm.ops["in_window"].id}


def test_notices_go_when_sent_long_ago_for_an_alert_no_longer_open(store: Store) -> None:
    def work(uow: UnitOfWork) -> list[int]:
        uow.alerts.fire("gone", "push_pending", "old", OLD)
        uow.alerts.resolve("gone", OLD + 60)
        uow.alerts.fire("still", "gateway_silent", "silent", OLD)
        ids = [
            uow.alerts.add_notice("gone", "push_pending", "firing", "webhook", "old", OLD),
            uow.alerts.add_notice("still", "gateway_silent", "firing", "webhook", "silent", OLD),
            uow.alerts.add_notice("gone", "push_pending", "resolved", "webhook", "unsent", OLD),
        ]
        for notice_id in ids[:2]:
            assert uow.alerts.claim(notice_id, 0, OLD)
            uow.alerts.record_send(notice_id, OLD, None)
        return ids

    ids = store.run(work)
    assert prune_history(store, POLICY, NOW)["alert_notices"] == 1
    left = {n.id for n in store.run(lambda uow: uow.alerts.recent(10))}
    assert left == {ids[1], ids[2]}


def test_each_batch_removes_at_most_its_bound_and_a_prune_works_off_the_backlog(store: Store) -> None:
    farm = Farm(store)
    for i in range(5):
        farm.operation(f"op{i}", OLD, OLD + 60)
        farm.sms(f"op{i}", f"op{i}", OLD + 30, pushes=3)
    plan = POLICY.plan(NOW)
    assert plan is not None
    first = prune_pass(store, plan, batch=4)
    assert all(rows <= 4 for rows in first.values())
    assert first["delivery_attempts"] == 4
    removed = prune_history(store, POLICY, NOW, batch=4)
    for table, rows in first.items():
        removed[table] += rows
    assert removed == {
        "delivery_attempts": 15, "deliveries": 5, "messages": 5, "operations": 5, "alert_notices": 0
    }  # fmt: skip
    assert operation_ids(store) == set()


def test_the_last_prune_is_remembered_per_table(store: Store) -> None:
    history(store)
    prune_history(store, POLICY, NOW)
    farm = Farm(store)
    farm.operation("later", OLD, OLD + 60)
    prune_history(store, POLICY, NOW + 300)
    pruned = {p.table: p for p in store.run_read(lambda uow: uow.history.pruned())}
    assert pruned["operations"].last_at == NOW + 300
    assert (pruned["operations"].last_rows, pruned["operations"].total_rows) == (1, 4)
    assert (pruned["messages"].last_at, pruned["messages"].total_rows) == (NOW, 1)
    assert "alert_notices" not in pruned


def test_history_kept_forever_prunes_nothing(store: Store) -> None:
    history(store)
    forever = HistoryPolicy(days=0, longest_window=60 * DAY)
    assert forever.plan(NOW) is None
    assert prune_history(store, forever, NOW) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize("table", ["numbers", "nonsense"])
def test_only_history_tables_are_pruned(store: Store, table: str) -> None:
    plan = POLICY.plan(NOW)
    assert plan is not None
    with pytest.raises(ValueError, match="not a history table"):
        store.run(lambda uow: uow.history.prune(table, plan, 10))


def all_time(store: Store) -> dict[str, float]:
    """The /metrics counters read from the database, by sample name and labels."""
    found: dict[str, float] = {}
    for family in FarmCollector(store, lambda: NOW).collect():
        for sample in family.samples:
            if family.type == "counter":
                found[f"{sample.name}{sorted(sample.labels.items())}"] = sample.value
    return found


def test_metrics_all_time_counters_never_go_down(store: Store) -> None:
    farm = history(store)
    farm.operation("sold_smshub", OLD, OLD + 60, status=3, marketplace="smshub")
    before = all_time(store)
    assert before["simgate_sales_total[]"] == 2
    prune_history(store, POLICY, NOW)
    assert farm.ops["sold"].id not in operation_ids(store)
    assert all_time(store) == before
    pruned = store.run_report(lambda r: r.pruned_sales())
    assert [(p.marketplace, p.currency, p.sold, p.earnings) for p in pruned] == [
        ("onlinesim", "RUB", 1, 1250),
        ("smshub", "RUB", 1, 1250),
    ]


def test_a_full_batch_of_operations_goes_in_one_transaction(store: Store) -> None:
    """More operations than one statement's list holds (500): the store splits its lists."""
    numbers = [Farm(store).number() for _ in range(3)]

    def work(uow: UnitOfWork) -> None:
        for i in range(601):
            number = numbers[i % 3]
            operation = uow.operations.open("onlinesim", make_order(), number, OLD + i)
            uow.numbers.mark_busy(number.id, operation.id, OLD + i)
            uow.operations.finish(operation.id, 3 if i % 2 else 4, None, OLD + i + 1)
            uow.numbers.release(number.id, operation.id, operation.kind)

    store.run(work)
    plan = POLICY.plan(NOW)
    assert plan is not None
    assert prune_pass(store, plan, batch=1000)["operations"] == 601
    (pruned,) = store.run_report(lambda r: r.pruned_sales())
    assert (pruned.sold, pruned.earnings) == (300, 300 * 1250)


def test_a_lifted_block_does_not_release_the_status_4_budget(store: Store) -> None:
    """An owner's block is an exclusion that can be lifted (services/admin.unblock_service):
    while it stands, the status-4 operations it covers are still what the budget counts once
    it is lifted, so they stay."""
    farm = Farm(store)
    budget = farm.operation("budget", OLD, OLD + 60, marketplace="smshub")
    assert budget.service is not None
    store.run(lambda uow: uow.numbers.exclude(budget.number_id, budget.service, "blocked", OLD + 120))
    prune_history(store, POLICY, NOW)
    assert operation_ids(store) == {budget.id}
    store.run(lambda uow: uow.numbers.unexclude(budget.number_id, budget.service, "blocked"))
    used = store.run(lambda uow: uow.operations.count_finished(budget.number_id, budget.service, "smshub", 4))
    assert used == 1


def test_a_batch_examines_a_bounded_stretch_of_old_rows_that_stay_and_says_where_it_stopped(
    store: Store,
) -> None:
    """SMS still to be pushed to a marketplace without a push URL are old and stay: a batch
    must not walk past all of them to find its rows (every batch read them all again)."""
    farm = Farm(store)
    farm.operation("stuck", OLD, OLD + 60)
    stuck = farm.stuck("stuck", OLD, 3 * SCAN * 2 + 5)
    plan = POLICY.plan(NOW)
    assert plan is not None

    def batch(table: str, after: Position = START) -> Batch:
        return store.run(lambda uow: uow.history.prune(table, plan, 2, after))

    first = Batch(0, Position(OLD + SCAN * 2 - 1, stuck[SCAN * 2 - 1]))
    for table in ("delivery_attempts", "deliveries", "messages"):
        assert batch(table) == first, table
    assert first.reached is not None
    assert batch("messages", first.reached) == Batch(
        0, Position(OLD + 2 * SCAN * 2 - 1, stuck[2 * SCAN * 2 - 1])
    )
    last = Position(OLD + 3 * SCAN * 2 - 1, stuck[3 * SCAN * 2 - 1])
    assert batch("messages", last) == Batch(0, None)


def test_a_prune_walks_past_the_rows_that_stay_once(store: Store) -> None:
    """With S old SMS that stay ahead of M that go, a prune's batches each continue where the
    previous one of their walk stopped: about S / (SCAN x limit) + M / limit passes, each
    batch's examined stretch after the previous one's, and all M go."""
    farm = Farm(store)
    farm.operation("stuck", OLD, OLD + 60)
    stuck_sms, limit = 50, 2
    farm.stuck("stuck", OLD, stuck_sms)
    for i in range(5):
        farm.operation(f"op{i}", OLD + 100 + i, OLD + 200 + i)
        farm.sms(f"op{i}", f"op{i}", OLD + 100 + i, pushes=1)
    for i in range(3 * SCAN * limit):  # status 4 the agent protocol still counts, then one that goes
        farm.operation(f"counted{i}", OLD + 300, OLD + 300, marketplace="smshub")
    farm.operation("last", OLD + 400, OLD + 400)
    plan = POLICY.plan(NOW)
    assert plan is not None
    run, passes = Run(plan, limit), 0
    while not run.done:
        passes += 1
        for table, work in run.steps():
            before = run.at[WALK[table]]
            run.record(table, store.run(work))
            reached = run.at[WALK[table]]
            assert before is not None
            assert reached is None or reached >= before, (table, before, reached)
    assert run.removed == {
        "delivery_attempts": 5,
        "deliveries": 5,
        "messages": 5,
        "operations": 6,
        "alert_notices": 0,
    }
    assert passes <= stuck_sms // (SCAN * limit) + 6 // limit + 3
    assert operation_ids(store) == {
        farm.ops[name].id for name in farm.ops if name.startswith(("stuck", "counted"))
    }
    # The next prune starts from the oldest again: what stayed may go by then.
    for delivery in (farm.deliveries["stuck0"], farm.deliveries[f"stuck{stuck_sms - 1}"]):
        attempt = Attempt(NOW, 12.0, 200, "ok", None, Verdict.DELIVERED)
        store.run(
            lambda uow, d=delivery: uow.outbox.record(d, "w1", attempt, DeliveryState.DELIVERED, NOW, None)
        )
    removed = prune_history(store, POLICY, NOW, batch=limit)
    assert (removed["delivery_attempts"], removed["deliveries"], removed["messages"]) == (2, 2, 2)


def test_an_sqlite_batch_costs_its_stretch_not_the_rows_that_stay(sqlite_url: str) -> None:
    """The work of one batch on SQLite, counted in virtual machine instructions (progress
    handler, not time): the same with 10 times as many old SMS that stay ahead of it."""
    from simgate.storage.sql_history import SqlHistory
    from simgate.storage.sqlite import SQLiteStore

    def steps(stuck: int) -> int:
        store = SQLiteStore.from_url(sqlite_url)
        farm = Farm(store)
        farm.operation(f"stuck{stuck}", OLD, OLD + 60)
        farm.stuck(f"stuck{stuck}", OLD, stuck)
        store.close()
        db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0

        db.set_progress_handler(count, 100)
        plan = POLICY.plan(NOW)
        assert plan is not None
        SqlHistory(db).prune("messages", plan, 10)
        db.rollback()
        db.close()
        return counted[0]

    few = steps(200)
    assert steps(2000) < 1.5 * few  # before: 70 and 730 (hundreds of instructions)


def test_an_sqlite_operations_batch_costs_the_same_however_many_sms_its_operation_had(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    """Whether an old rent keeps one of its SMS is two index probes (migration 0022), not a
    look at each of them: a rent with thousands of SMS not yet pruned cost every batch of the
    operations' walk thousands of lookups. VM instructions, as above."""
    from simgate.storage.sql_history import SqlHistory
    from simgate.storage.sqlite import SQLiteStore

    def steps(sms: int) -> int:
        url = copy_database(migrated_sqlite, tmp_path / f"rent{sms}.db")
        store = SQLiteStore.from_url(url)
        farm = Farm(store)
        farm.operation("rent", OLD, OLD + sms + 60, kind=OperationKind.RENT)
        farm.unpushed("rent", OLD, sms)
        store.close()
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0

        db.set_progress_handler(count, 100)
        plan = POLICY.plan(NOW)
        assert plan is not None
        assert SqlHistory(db).prune("operations", plan, 10).removed == 0  # its SMS go first
        db.rollback()
        db.close()
        return counted[0]

    few = steps(200)
    assert steps(2000) < 1.5 * few  # 4 and 4 (hundreds of instructions); before: 116 and 1,124


def test_no_statement_of_a_dry_run_grows_with_the_history(tmp_path: Path, migrated_sqlite: Path) -> None:
    """`simgate prune --dry-run` on a huge history must not outlast PostgreSQL's statement
    timeout: it counts a window at a time, so its costliest statement is the same with 10
    times as many old SMS (SQLite VM instructions per statement, not time)."""
    from simgate.storage import sql_history
    from simgate.storage.sqlite import SQLiteStore

    def costliest(sms: int) -> int:
        url = copy_database(migrated_sqlite, tmp_path / f"dry{sms}.db")
        store = SQLiteStore.from_url(url)
        farm = Farm(store)
        farm.operation("rent", OLD, OLD + sms + 60, kind=OperationKind.RENT)
        farm.unpushed("rent", OLD, sms)
        store.close()
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        statements = [0]
        db.set_trace_callback(lambda _: statements.append(0))

        def count() -> int:
            statements[-1] += 1
            return 0

        db.set_progress_handler(count, 100)
        plan = POLICY.plan(NOW)
        assert plan is not None
        assert sql_history.SqlHistory(db).prunable(plan)["messages"] == sms
        db.close()
        return max(statements)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sql_history, "COUNT_WINDOW", 100)
        few = costliest(200)
        assert costliest(2000) < 1.5 * few


def test_two_postgres_prunes_at_once_share_the_work_and_never_wait(postgres_url: str) -> None:
    """Instance A holds its batch of attempts, uncommitted; instance B, whose every wait on a
    lock would fail at once (lock_timeout), takes the other attempts and what they held up."""
    import psycopg

    from simgate.storage.pg_units import PgConnection
    from simgate.storage.postgres import PostgresStore
    from simgate.storage.sql_history import SqlHistory

    store = PostgresStore(postgres_url, min_size=1, max_size=2)
    store.run(lambda uow: register_marketplaces(uow, ["onlinesim"], 0.0))
    farm = Farm(store)
    for i in range(4):
        farm.operation(f"op{i}", OLD + i, OLD + 60 + i)
        farm.sms(f"op{i}", f"op{i}", OLD + 30 + i, pushes=2)
    plan = POLICY.plan(NOW)
    assert plan is not None
    with (
        psycopg.connect(postgres_url, autocommit=True) as a,
        psycopg.connect(postgres_url, autocommit=True) as b,
    ):
        b.execute("SET lock_timeout = '1ms'")
        first, second = (
            SqlHistory(PgConnection(a), skip_locked=True),
            SqlHistory(PgConnection(b), skip_locked=True),
        )
        assert first.prune("delivery_attempts", plan, 4).removed == 4
        other = {table: second.prune(table, plan, 4) for table in TABLES}
        b.execute("COMMIT")
        a.execute("COMMIT")
    assert {table: batch.removed for table, batch in other.items()} == {
        "delivery_attempts": 4, "deliveries": 2, "messages": 2, "operations": 2, "alert_notices": 0
    }  # fmt: skip
    first_message = farm.messages["op0"]
    assert other["messages"].reached == Position(
        OLD + 30, first_message - 1
    )  # held before A's, which go next
    assert prune_history(store, POLICY, NOW) == {
        "delivery_attempts": 0, "deliveries": 2, "messages": 2, "operations": 2, "alert_notices": 0
    }  # fmt: skip
    store.close()
