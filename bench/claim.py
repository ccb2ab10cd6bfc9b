"""The claim alone: GET_NUMBER + FINISH through the SQLite store, no HTTP (issue 14, target 2).

Run as `python -m bench.claim DATABASE SECONDS CLIENTS` in a process pinned to the server's
CPU: `clients` tasks on one event loop each issue a number and finish it (status 4), over
the very store `simgate serve` uses (its writer thread, its group commit, FULL fsync, the
count triggers). What is left of a pair's cost once HTTP, the request log and the handler
are taken away: the ceiling any HTTP stack in front of this store could reach on this core.
Prints one `BENCH_RESULT {json}` line.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
from typing import Any

from bench.scenarios import order_maker
from simgate import catalogue
from simgate.domain.model import OperationKind, Order
from simgate.domain.types import ANY_OPERATOR, CountryName, Kopecks, OperatorName, ServiceName
from simgate.services.operations import finish_operation, issue_number
from simgate.storage.sqlite import SQLiteStore

RESULT_PREFIX = "BENCH_RESULT "
MARKET = "onlinesim"


def _orders(count: int) -> list[Order]:
    make = order_maker(catalogue.services())
    rng = random.Random(1)
    orders = []
    for _ in range(count):
        body = make(rng)
        operator = body["operator"]
        orders.append(
            Order(
                kind=OperationKind.ACTIVATION,
                country=CountryName(body["country"]),
                operator=ANY_OPERATOR if operator == "any" else OperatorName(operator),
                service=ServiceName(body["service"]),
                exception_prefixes=tuple(str(p) for p in body.get("exceptionPhoneSet", ())),
                offered=Kopecks(1250),
            )
        )
    return orders


async def _run(store: SQLiteStore, seconds: float, clients: int) -> dict[str, Any]:
    orders = _orders(2_000)
    pairs = no_numbers = 0
    stop = time.monotonic() + seconds

    async def client(index: int) -> None:
        nonlocal pairs, no_numbers
        step = index
        while time.monotonic() < stop:
            order = orders[step % len(orders)]
            step += clients
            now = time.time()
            operation = await store.transact(
                lambda uow, order=order, now=now: issue_number(uow, MARKET, order, now), single=True
            )
            if operation is None:
                no_numbers += 1
                continue
            opened = operation.id
            await store.transact(
                lambda uow, opened=opened: finish_operation(uow, MARKET, opened, 4, None, time.time()),
                single=True,
            )
            pairs += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {"pairs": pairs, "no_numbers": no_numbers}


def measure(database: str, seconds: float, clients: int) -> dict[str, Any]:
    store = SQLiteStore(database)
    try:
        asyncio.run(_run(store, 1.0, clients))  # warm-up: page cache, statement cache
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        counted = asyncio.run(_run(store, seconds, clients))
        after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    finally:
        store.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    pairs = max(counted["pairs"], 1)
    return {
        **counted,
        "seconds": elapsed,
        "pairs_per_second": counted["pairs"] / elapsed,
        "cpu_percent": 100 * cpu / elapsed,
        "cpu_ms_per_pair": 1000 * cpu / pairs,
        "user_ms_per_pair": 1000 * (after.ru_utime - before.ru_utime) / pairs,
        "system_ms_per_pair": 1000 * (after.ru_stime - before.ru_stime) / pairs,
        "clients": clients,
        "pid": os.getpid(),
    }


if __name__ == "__main__":
    result = measure(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
