"""The two measurements the issue asks for, each beside a baseline taken in the same run."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import shutil
import sqlite3
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import uvloop

from bench import farm, machine
from bench.load import OrderMaker, PairsRun, run_pairs, run_sequential
from bench.procs import ServerProcess, clean_environment, free_port, python_module
from bench.stats import summarise
from bench.wrk import SERVER_CPU, lua_script, pinned, run_wrk
from simgate import catalogue
from simgate.domain import rules
from simgate.domain.types import ServiceName
from simgate.services.operations import list_available
from simgate.simulator.load import run_load
from simgate.storage.sqlite import SQLiteStore

T = TypeVar("T")
Result = dict[str, Any]


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """The load generator runs on uvloop, as fast a client as this machine offers."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


@dataclass(frozen=True, slots=True)
class PairsOptions:
    clients: int = 64
    duration: float = 10.0
    warmup: float = 1.0
    max_pairs: int = 200_000
    numbers: int = 5_000


@dataclass(frozen=True, slots=True)
class ServicesOptions:
    sizes: tuple[int, ...] = (10_000, 100_000)
    services: int = 300
    calls: int = 200
    max_seconds: float = 10.0
    part_calls: int = 20
    part_seconds: float = 3.0
    """Calls and time bound for each part of the breakdown (a p50 is all it is read for)."""
    load_seconds: float = 10.0
    load_connections: int = 8
    """GET_NUMBER + FINISH load (wrk, pinned beside the pinned server) while GET_SERVICES is
    measured again: few connections, so the server is busy but its queue stays short."""
    wrk: str | None = None


MARKETPLACE_RATE = 300.0
"""Pairs per second the marketplace simulator offers: well inside capacity, so its latencies
are the server's, not a queue's."""


def baseline_server(folder: Path) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        "baseline app",
        python_module("bench.runner", "baseline", "--port", str(port)),
        port,
        clean_environment(),
        folder / "baseline.log",
    )


def order_maker(services: Sequence[ServiceName]) -> OrderMaker:
    """GET_NUMBER bodies the way Onlinesim sends them: mostly `any` operator, popular
    services far more often than the tail, some with an exceptionPhoneSet (numbers and
    strings mixed, spec 8.3) that the claim query has to evaluate."""
    services = list(services)
    service_weights = list(itertools.accumulate(farm.popularity(services)))
    country_weights = list(itertools.accumulate(farm.MIX_COUNTRY))

    def make(rng: random.Random) -> dict[str, Any]:
        country, prefix, _, operators = rng.choices(farm.COUNTRIES, cum_weights=country_weights)[0]
        named = [name for name in operators if name]
        order: dict[str, Any] = {
            "action": "GET_NUMBER",
            "country": country,
            "operator": rng.choice(named) if rng.random() < 0.2 else "any",
            "service": rng.choices(services, cum_weights=service_weights)[0],
            "sum": 12.5,
        }
        if rng.random() < 0.2:
            order["exceptionPhoneSet"] = [int(prefix + "9"), prefix + "8"]
        return order

    return make


def _pairs_summary(run: PairsRun) -> Result:
    requests = run.get_number + run.finish
    return {
        "pairs_per_second": run.pairs_per_second,
        "pairs": run.pairs,
        "window_seconds": run.window_seconds,
        "started_pairs": run.started_pairs,
        "get_number": summarise(run.get_number).as_dict(),
        "finish": summarise(run.finish).as_dict(),
        "requests": summarise(requests).as_dict(),
        "no_numbers": run.no_numbers,
        "errors": run.errors,
        "first_error": run.first_error,
        "server_cpu_percent": None
        if run.server_cpu_seconds is None
        else 100 * run.server_cpu_seconds / run.window_seconds,
        "client_cpu_percent": 100 * run.client_cpu_seconds / run.window_seconds,
    }


def bare_commits(folder: Path, *, seconds: float = 2.0, limit: int = 50_000) -> Result:
    """Durable one-row write transactions per second on one thread, in the benchmark's folder.

    The same pragmas as SQLiteStore (WAL, synchronous=FULL): with one unit of work per
    transaction, this is the ceiling on GET_NUMBER + FINISH, which commit twice per pair.
    """
    path = folder / "commits.db"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at REAL NOT NULL)")
        commits = 0
        started = time.perf_counter()
        deadline = started + seconds
        while commits < limit and time.perf_counter() < deadline:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO t (at) VALUES (?)", (time.time(),))
            connection.execute("COMMIT")
            commits += 1
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return {"commits": commits, "seconds": elapsed, "commits_per_second": commits / elapsed}


def bench_pairs(
    folder: Path, options: PairsOptions, baseline: ServerProcess, say: Callable[[str], None]
) -> Result:
    services = catalogue.services()
    make_order = order_maker(services)
    load = partial(
        run_pairs,
        make_order=make_order,
        clients=options.clients,
        duration=options.duration,
        warmup=options.warmup,
        max_pairs=options.max_pairs,
    )
    say(f"baseline: trivial Starlette app, {options.clients} clients, {options.duration:.0f} s")
    base = run_async(load(baseline.url, "unused", server_cpu=baseline.cpu_seconds))

    say("baseline: bare durable SQLite commits, one thread")
    commits = bare_commits(folder)

    shape = farm.FarmShape(numbers=options.numbers)
    say(f"farm: {options.numbers} numbers for GET_NUMBER+FINISH")
    database = folder / "pairs.db"
    stats = farm.build(database, shape, services)

    key = secrets.token_hex(16)
    port = free_port()
    server = ServerProcess(
        "simgate serve",
        python_module("simgate", "serve", "--host", "127.0.0.1", "--port", str(port)),
        port,
        clean_environment(SIMGATE_DATABASE_URL=f"sqlite:///{database}", SIMGATE_ONLINESIM_KEY=key),
        folder / "simgate-serve.log",
    )
    say(f"simgate serve: {options.clients} clients, {options.duration:.0f} s")
    with server:
        measured = run_async(load(server.url, key, server_cpu=server.cpu_seconds))
        # The marketplace simulator as the load generator (issue 4): Onlinesim's mix, open loop
        # at a steady rate, which is how a marketplace really arrives (not a closed loop).
        say(f"marketplace simulator: {MARKETPLACE_RATE:.0f} pairs/s offered, {options.duration:.0f} s")
        marketplace = run_async(
            run_load(server.url, key, rate=MARKETPLACE_RATE, concurrency=options.clients,
                     duration=options.duration, seed=1)
        ).to_dict()  # fmt: skip
    if measured.errors:
        say(f"[red]{measured.errors} failed requests; first: {measured.first_error}[/red]")
    return {
        "clients": options.clients,
        "duration": options.duration,
        "warmup": options.warmup,
        "max_pairs": options.max_pairs,
        "farm": {"shape": shape.as_dict(), **stats.as_dict()},
        "simgate": _pairs_summary(measured),
        "marketplace_simulator": marketplace,
        "baseline": _pairs_summary(base),
        "bare_commits": commits,
    }


def _services_over_http(
    folder: Path,
    built: Path,
    size: int,
    services: Sequence[ServiceName],
    key: str,
    variant: str,
    options: ServicesOptions,
    say: Callable[[str], None],
) -> Result:
    """GET_SERVICES over HTTP on a copy of the farm, alone and then under GET_NUMBER load.

    `variant` "kept" is simgate as it is; "recounted" counts per call as before migration
    0011 (bench.runner --recount): the A/B of issue 14 target 4, in the same run."""
    database = folder / f"services-{size}-{variant}.db"
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{built}{suffix}").exists():
            shutil.copyfile(f"{built}{suffix}", f"{database}{suffix}")
    port = free_port()
    argv = python_module(
        "bench.runner", "services", "--port", str(port), "--database", str(database), "--key", key,
        "--services", str(len(services)), *(["--recount"] if variant == "recounted" else []),
    )  # fmt: skip
    server = ServerProcess(
        f"simgate app with {len(services)} services ({variant} counts)",
        pinned(argv, SERVER_CPU) if options.wrk else argv,
        port,
        clean_environment(),
        folder / f"services-{size}-{variant}.log",
    )
    url_body = ("{url}/onlinesim/getServices", {"action": "GET_SERVICES", "key": key})
    result: Result = {}
    with server:
        url = url_body[0].format(url=server.url)
        _wait_idle(server)  # its start (lanes settled, first rounds) is not GET_SERVICES' cost
        say(f"GET_SERVICES over HTTP, {size} numbers, {variant} counts: up to {options.calls} calls")
        load = machine.load_average()
        cpu = server.cpu_seconds()
        alone = run_async(
            run_sequential(url, url_body[1], calls=options.calls, max_seconds=options.max_seconds)
        )
        spent = server.cpu_seconds()
        calls = len(alone.latencies) + 3  # and the unmeasured warm-up calls
        result["alone"] = {
            "server_cpu_ms_per_call": None if cpu is None or spent is None else 1000 * (spent - cpu) / calls,
            **summarise(alone.latencies).as_dict(),
            "answer_bytes": alone.answer_bytes,
            "wire_bytes": alone.wire_bytes,
            "content_encoding": alone.content_encoding,
            "load_average": load,
        }
        if options.wrk:
            say(
                f"GET_SERVICES under GET_NUMBER+FINISH load (wrk, {options.load_connections}"
                f" connections), {variant} counts, {options.load_seconds:.0f} s"
            )
            result["under_load"] = _under_load(server, url, url_body[1], key, services, options)
    return result


def _wait_idle(server: ServerProcess, *, quiet: float = 0.05, most: float = 30.0) -> None:
    """Until the server spent under `quiet` CPU-seconds in half a second (or `most` passed)."""
    deadline = time.monotonic() + most
    last = server.cpu_seconds()
    while last is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        now = server.cpu_seconds()
        if now is None or now - last < quiet:
            return
        last = now


def _under_load(
    server: ServerProcess,
    url: str,
    body: dict[str, Any],
    key: str,
    services: Sequence[ServiceName],
    options: ServicesOptions,
) -> Result:
    assert options.wrk is not None
    make = order_maker(catalogue.services())
    rng = random.Random(1)
    encode = msgspec.json.Encoder().encode
    bodies = [encode({**make(rng), "key": key}) for _ in range(2_000)]
    script = lua_script(server.log_path.parent, key, bodies)
    load = machine.load_average()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            run_wrk,
            options.wrk,
            server.url,
            script,
            connections=options.load_connections,
            seconds=options.load_seconds,
            server_cpu=server.cpu_seconds,
        )
        time.sleep(1.0)  # the load is up before the first measured call
        measured = run_async(
            run_sequential(
                url, body, calls=options.calls * 10, max_seconds=max(1.0, options.load_seconds - 2.5)
            )
        )
        pairs = running.result()
    return {
        **summarise(measured.latencies).as_dict(),
        "load_average": load,
        "pairs_per_second": pairs.pairs_per_second,
        "pair_requests_p50_ms": pairs.p50_ms,
        "pair_requests_p99_ms": pairs.p99_ms,
        "server_cpu_percent": pairs.server_cpu_percent,
        "failures": pairs.failures + pairs.socket_errors,
    }


def _time_sync(call: Callable[[], object], calls: int, max_seconds: float) -> list[float]:
    call()  # warm caches and the page cache
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(latencies) < calls and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return latencies


async def _time_async(call: Callable[[], Awaitable[object]], calls: int, max_seconds: float) -> list[float]:
    await call()
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(latencies) < calls and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t0)
    return latencies


def _in_process(database: Path, services: Sequence[ServiceName], options: ServicesOptions) -> Result:
    """The use case on the store the server uses, and its parts, without HTTP."""
    store = SQLiteStore(str(database))
    encode = msgspec.json.Encoder().encode
    use_case = partial(
        list_available, marketplace="onlinesim", services=services, with_services=True, with_rent=False
    )

    def recounted(uow: Any) -> object:
        # The use case as before migration 0011: both counts computed per call.
        numbers = uow.numbers
        return rules.tally_availability(
            numbers.group_counts_recounted("onlinesim"),
            numbers.excluded_counts_recounted("onlinesim"),
            services,
            with_services=True,
            with_rent=False,
        )

    async def part(call: Callable[[Any], object]) -> list[float]:
        return await _time_async(lambda: store.read(call), options.part_calls, options.part_seconds)

    async def measure() -> Result:
        cpu = time.process_time()
        whole = await _time_async(lambda: store.read(use_case), options.calls, options.max_seconds)
        cpu_kept = (time.process_time() - cpu) / (len(whole) + 1)
        cpu = time.process_time()
        before = await _time_async(lambda: store.read(recounted), options.calls, options.max_seconds)
        cpu_recounted = (time.process_time() - cpu) / (len(before) + 1)
        groups = await store.read(lambda uow: uow.numbers.group_counts("onlinesim"))
        excluded = await store.read(lambda uow: uow.numbers.excluded_counts("onlinesim"))
        group_sql = await part(lambda uow: uow.numbers.group_counts("onlinesim"))
        excluded_sql = await part(lambda uow: uow.numbers.excluded_counts("onlinesim"))
        group_before = await part(lambda uow: uow.numbers.group_counts_recounted("onlinesim"))
        excluded_before = await part(lambda uow: uow.numbers.excluded_counts_recounted("onlinesim"))
        tally = partial(
            rules.tally_availability, groups, excluded, services, with_services=True, with_rent=False
        )
        countries = tally()
        reply = {
            "status": "SUCCESS",
            "countryList": [{"country": c.country, "operatorMap": c.operator_map} for c in countries],
        }
        body = encode(reply)
        return {
            # CPU of this process (its reader thread included) per call: what load moves least.
            "use_case": {**summarise(whole).as_dict(), "cpu_ms_per_call": 1000 * cpu_kept},
            "use_case_recounted": {**summarise(before).as_dict(), "cpu_ms_per_call": 1000 * cpu_recounted},
            "parts": {
                "group_counts_sql": summarise(group_sql).as_dict(),
                "excluded_counts_sql": summarise(excluded_sql).as_dict(),
                "group_counts_recounted_sql": summarise(group_before).as_dict(),
                "excluded_counts_recounted_sql": summarise(excluded_before).as_dict(),
                "tally_python": summarise(
                    _time_sync(tally, options.part_calls, options.part_seconds)
                ).as_dict(),
                "encode_json": summarise(
                    _time_sync(lambda: encode(reply), options.part_calls, options.part_seconds)
                ).as_dict(),
                # simgate's GZipMiddleware runs at Starlette's default level, 9.
                "gzip_level_9": summarise(
                    _time_sync(lambda: _gzip(body, 9), options.part_calls, options.part_seconds)
                ).as_dict(),
                "gzip_level_1": summarise(
                    _time_sync(lambda: _gzip(body, 1), options.part_calls, options.part_seconds)
                ).as_dict(),
            },
            "gzip_bytes": {"level_9": len(_gzip(body, 9)), "level_1": len(_gzip(body, 1))},
            "excluded_rows": len(excluded),
            "groups": len(groups),
            "answer_bytes": len(body),
        }

    try:
        return run_async(measure())
    finally:
        store.close()


def _gzip(body: bytes, level: int) -> bytes:
    # What GZipMiddleware does: one zlib stream with a gzip header, flushed at the end.
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def _sql_baselines(database: Path, options: ServicesOptions) -> Result:
    """The cheapest queries over the same table: what any GET_SERVICES has to pay at least."""
    connection = sqlite3.connect(database)
    try:

        def count() -> object:
            return connection.execute("SELECT count(*) FROM numbers").fetchall()

        def group_by() -> object:
            return connection.execute(
                "SELECT country, operator, count(*) FROM numbers GROUP BY country, operator"
            ).fetchall()

        return {
            "count": summarise(_time_sync(count, options.calls, options.part_seconds)).as_dict(),
            "group_by": summarise(_time_sync(group_by, options.calls, options.part_seconds)).as_dict(),
        }
    finally:
        connection.close()


def bench_services(
    folder: Path, options: ServicesOptions, baseline: ServerProcess, say: Callable[[str], None]
) -> Result:
    services = farm.service_names(options.services)
    say(f"baseline: one caller, trivial Starlette app, up to {options.calls} calls")
    round_trip = run_async(
        run_sequential(
            f"{baseline.url}/onlinesim/getServices",
            {"action": "GET_SERVICES"},
            calls=options.calls,
            max_seconds=options.max_seconds,
        )
    )
    sizes: list[Result] = []
    for size in options.sizes:
        database = folder / f"services-{size}.db"
        shape = farm.FarmShape(numbers=size)
        say(f"farm: {size} numbers, {len(services)} services")
        stats = farm.build(database, shape, services)
        key = secrets.token_hex(16)
        variants = {
            variant: _services_over_http(folder, database, size, services, key, variant, options, say)
            for variant in ("kept", "recounted")
        }
        http = variants["kept"]["alone"]
        say(f"list_available in process and SQL baselines, {size} numbers")
        sizes.append(
            {
                "numbers": size,
                "services": len(services),
                "farm": {"shape": shape.as_dict(), **stats.as_dict()},
                "http": http,
                "http_variants": variants,
                **_in_process(database, services, options),
                "baselines": _sql_baselines(database, options),
            }
        )
    return {
        "services": len(services),
        "round_trip_baseline": {
            **summarise(round_trip.latencies).as_dict(),
            "answer_bytes": round_trip.answer_bytes,
        },
        "sizes": sizes,
    }
