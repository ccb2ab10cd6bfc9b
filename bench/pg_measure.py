"""What a GET_NUMBER and a FINISH cost PostgreSQL: round trips per unit, and the CPU of the
server's backends for one database (issue 14, target 5).

Round trips are counted on the wire, from libpq's protocol trace: every Sync or simple Query
the client sends waits for the server's ReadyForQuery, so each is one round trip. The units
run through the same dispatch the HTTP handlers call, so the count is what a request costs.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import pq

from bench.procs import cpu_seconds
from bench.scenarios import OrderMaker
from simgate.domain.model import FinishPolicy, OperationKind, Order
from simgate.domain.types import CountryName, OperatorName, ServiceName
from simgate.marketplaces import dispatch
from simgate.marketplaces.onlinesim import MARKETPLACE


def _round_trips(trace: str) -> int:
    return sum(
        1
        for line in trace.splitlines()
        if line.startswith("F\t") and line.split("\t")[2].strip().split(" ")[0] in ("Sync", "Query")
    )


def _order(body: dict[str, object]) -> Order:
    prefixes = body.get("exceptionPhoneSet", ())
    assert isinstance(prefixes, list | tuple)
    return Order(
        kind=OperationKind.ACTIVATION,
        country=CountryName(str(body["country"])),
        operator=OperatorName(str(body["operator"])),
        service=ServiceName(str(body["service"])),
        exception_prefixes=tuple(str(p) for p in prefixes),
    )


def round_trips(url: str, make_order: OrderMaker, *, pairs: int = 30) -> dict[str, float]:
    """Median round trips of GET_NUMBER, of FINISH status 4 and of FINISH status 3 (a sale)."""
    from simgate.storage.postgres import PostgresStore

    store = PostgresStore(url, min_size=1, max_size=1)
    with tempfile.NamedTemporaryFile("w+", suffix=".trace") as trace:
        try:
            conn = store.pool.getconn()
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            store.pool.putconn(conn)
            counts: dict[str, list[int]] = {"get_number": [], "finish_4": [], "finish_3": []}
            rng = random.Random(7)
            policy = FinishPolicy()

            def mark() -> int:
                trace.flush()
                return os.path.getsize(trace.name)

            async def one(status: int) -> tuple[int, int, int] | None:
                start = mark()
                operation = await dispatch.issue(store, MARKETPLACE, _order(make_order(rng)), time.time)
                middle = mark()
                if operation is None:
                    return None
                await dispatch.finish(store, MARKETPLACE, operation.id, status, None, time.time, policy)
                return start, middle, mark()

            for index in range(pairs):
                # Status 3 sells the number for that service: a few, so the farm stays sellable.
                status = 3 if index % 5 == 0 else 4
                marks = asyncio.run(one(status))
                if marks is None:
                    continue
                start, middle, end = marks
                text = Path(trace.name).read_text()
                counts["get_number"].append(_round_trips(text[start:middle]))
                counts[f"finish_{status}"].append(_round_trips(text[middle:end]))
        finally:
            store.close()
    return {name: statistics.median(found) for name, found in counts.items() if found}


def backend_pids(url: str) -> list[int]:
    """The server processes serving the database of `url` (simgate's pooled connections)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


class BackendCpu:
    """CPU seconds of one database's backends between two samples (Linux, same machine)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.first: dict[int, float] | None = None
        self.seconds: float | None = None

    def sample(self) -> None:
        now = self._read(backend_pids(self.url))
        if self.first is None:
            self.first = now
            return
        # A backend that started inside the window counts from zero.
        self.seconds = sum(cpu - self.first.get(pid, 0.0) for pid, cpu in now.items())

    @staticmethod
    def _read(pids: Sequence[int]) -> dict[int, float]:
        found: dict[int, float] = {}
        for pid in pids:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                found[pid] = seconds
        return found
