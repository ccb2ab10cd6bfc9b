"""History pruning over old SMS that stay: what one prune costs the SQLite writer.

A farm whose marketplace has no push URL keeps every SMS's push pending: old, yet never
pruned. Behind them, SMS and operations that do go. Prints, for a prune that removes those
and for the next one (nothing left to remove), how many batches it ran and how long each
held the writer.

    .venv/bin/python -m bench.prune_stuck --stuck 100000 --going 2000 [--postgres URL]

Written through the storage ports and `prune_history` only, so it runs against an older
checkout too (PYTHONPATH=that/src) and compares before with after on the same data.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from simgate.domain.history import DAY, HistoryPolicy
from simgate.domain.messages import Attempt, DeliveryState, IncomingMessage, Verdict
from simgate.domain.model import NumberSpec, OperationKind, Order
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.services.history import prune_history
from simgate.services.lanes import register_marketplaces
from simgate.storage import schema
from simgate.storage.ports import Store, UnitOfWork
from simgate.storage.sqlite import SQLiteStore

NOW = 1_800_000_000.0
OLD = NOW - 200 * DAY
POLICY = HistoryPolicy(days=180, longest_window=60 * DAY)
PER_OPERATION = 1000
"""SMS per (rent) operation, unless --per-operation says otherwise."""


def fill(store: Store, stuck: int, going: int, per_operation: int = PER_OPERATION) -> None:
    spec = NumberSpec(PhoneNumber("79281234567"), CountryName("russia"), OperatorName("beeline"))
    order = Order(OperationKind.RENT, CountryName("russia"), OperatorName("any"), None)

    def work(uow: UnitOfWork) -> None:
        uow.numbers.upsert(spec, OLD - DAY)
        number = uow.numbers.get_by_phone(spec.phone)
        assert number is not None
        for start in range(0, stuck + going, per_operation):
            at = OLD + start
            operation = uow.operations.open("onlinesim", order, number, at)
            for i in range(start, min(start + per_operation, stuck + going)):
                incoming = IncomingMessage(spec.phone, "VK", f"code {i}", "http", None, None)
                message = uow.messages.add(incoming, number.id, operation.id, OLD + i)
                assert message is not None
                delivery = uow.outbox.enqueue(message.id, operation.id, "onlinesim", OLD + i)
                if i >= stuck:  # pushed: it goes
                    attempt = Attempt(OLD + i, 12.0, 200, "ok", None, Verdict.DELIVERED)
                    uow.outbox.record(delivery, "w1", attempt, DeliveryState.DELIVERED, OLD + i, None)
            uow.operations.finish(operation.id, 3, None, OLD + start + per_operation)

    store.run(lambda uow: register_marketplaces(uow, ["onlinesim"], 0.0))
    store.run(work)


class Timed:
    """The store, timing each unit of work a prune runs (each batch, on the writer)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.times: list[float] = []

    def run(self, work: Callable[[UnitOfWork], Any]) -> Any:
        started = time.perf_counter()
        try:
            return self.store.run(work)
        finally:
            self.times.append(time.perf_counter() - started)


def open_store(url: str) -> Store:
    if url.startswith("postgresql"):
        from simgate.storage.postgres import PostgresStore

        return PostgresStore(url, min_size=1, max_size=2)
    return SQLiteStore.from_url(url)


def measure(url: str, label: str) -> None:
    store = open_store(url)
    try:
        timed = Timed(store)
        started = time.perf_counter()
        removed = prune_history(cast(Store, timed), POLICY, NOW)
        wall = time.perf_counter() - started
        ms = [t * 1000 for t in timed.times]
        print(
            f"{label}: {len(ms)} units of work, writer {sum(ms):.0f} ms in all,"
            f" median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms; {wall:.2f} s;"
            f" removed {sum(removed.values())} rows {removed}"
        )
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stuck", type=int, default=100_000)
    parser.add_argument("--going", type=int, default=2_000)
    parser.add_argument("--per-operation", type=int, default=PER_OPERATION, help="SMS per operation")
    parser.add_argument("--postgres", help="an empty PostgreSQL database's URL instead of a SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.postgres or f"sqlite:///{Path(folder) / 'farm.db'}"
        schema.upgrade(url)
        store = open_store(url)
        fill(store, args.stuck, args.going, args.per_operation)
        store.close()
        print(f"{args.stuck} old SMS whose push is pending, then {args.going} old SMS that go")
        measure(url, "first prune")
        measure(url, "next prune ")


if __name__ == "__main__":
    main()
