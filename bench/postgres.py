"""GET_NUMBER+FINISH on PostgreSQL, with one and with two `simgate serve` processes (issue 5).

Driven by wrk when it is installed (bench/pg_wrk.py: the wrk pairs script, a farm of
--wrk-numbers SIMs), else by the Python generator on the SQLite rows' farm. Needs a reachable
PostgreSQL (BENCH_POSTGRES_URL, else SIMGATE_TEST_POSTGRES_URL, else the local default); a
fresh database is created for the run and dropped after it. Without a server the scenario is
skipped with the reason, never failed.

Two knobs for docs/deployment.md's trade-offs: BENCH_PG_POOL sets the servers'
SIMGATE_POSTGRES_POOL_SIZE, BENCH_PG_SYNCHRONOUS_COMMIT the bench database's
synchronous_commit (never the server's: other databases keep theirs).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench import farm, machine
from bench.load import run_pairs
from bench.pg_measure import BackendCpu, round_trips
from bench.pg_wrk import measure, pairs_script
from bench.procs import ServerProcess, clean_environment, free_port, python_module
from bench.scenarios import PairsOptions, Result, _pairs_summary, order_maker, run_async
from simgate import catalogue
from simgate.storage import schema

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("SIMGATE_TEST_POSTGRES_URL") or DEFAULT_URL


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"simgate_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reachable(url: str) -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]
    return None


def bench_pairs_postgres(
    folder: Path,
    options: PairsOptions,
    say: Callable[[str], None],
    *,
    wrk: str | None = None,
    wrk_numbers: int = 20_000,
) -> Result:
    """`wrk`: drive the servers with it (on a farm of `wrk_numbers`), else the Python generator."""
    try:
        return _bench_pairs_postgres(folder, options, say, wrk, wrk_numbers)
    except psycopg.OperationalError as error:
        # The shared server went away mid-run (restarted by someone else): the other
        # measurements still count.
        problem = str(error).strip().splitlines()[0]
        say(f"[yellow]PostgreSQL pairs abandoned: {problem}[/yellow]")
        return {"skipped": problem}


def _bench_pairs_postgres(
    folder: Path, options: PairsOptions, say: Callable[[str], None], wrk: str | None, wrk_numbers: int
) -> Result:
    admin = server_url()
    problem = reachable(admin)
    if problem is not None:
        say(f"[yellow]PostgreSQL pairs skipped: {problem}[/yellow]")
        return {"skipped": problem}
    from simgate.storage.postgres import PostgresStore

    services = catalogue.services()
    load = partial(
        run_pairs,
        make_order=order_maker(services),
        clients=options.clients,
        duration=options.duration,
        warmup=options.warmup,
        max_pairs=options.max_pairs,
    )
    results: Result = {
        "clients": options.clients,
        "duration": options.duration,
        "generator": "wrk" if wrk else "python",
    }
    with fresh_database(admin) as url:
        schema.upgrade(url)
        synchronous_commit = os.environ.get("BENCH_PG_SYNCHRONOUS_COMMIT")
        if synchronous_commit:
            if synchronous_commit not in ("on", "off", "local", "remote_write", "remote_apply"):
                raise SystemExit(
                    f"BENCH_PG_SYNCHRONOUS_COMMIT={synchronous_commit}: not a synchronous_commit value"
                )
            # Only the bench's own database: the trade-off docs/deployment.md measures.
            with psycopg.connect(url, autocommit=True) as conn:
                name = conn.execute("SELECT current_database()").fetchone()
                assert name is not None
                conn.execute(f'ALTER DATABASE "{name[0]}" SET synchronous_commit = {synchronous_commit}')
            say(f"[yellow]synchronous_commit = {synchronous_commit} on the bench database[/yellow]")
            results["synchronous_commit"] = synchronous_commit
        pool = os.environ.get("BENCH_PG_POOL")
        settings = {"SIMGATE_POSTGRES_POOL_SIZE": pool} if pool else {}
        if pool:
            results["pool_size"] = int(pool)
        shape = farm.FarmShape(numbers=wrk_numbers if wrk else options.numbers)
        say(f"PostgreSQL farm: {shape.numbers} numbers")
        store = PostgresStore(url, min_size=1, max_size=2)
        try:
            results["farm"] = {"shape": shape.as_dict(), **farm.fill(store, shape, services).as_dict()}
        finally:
            store.close()
        results["round_trips"] = round_trips(url, order_maker(services))
        say(f"PostgreSQL round trips per unit (median): {results['round_trips']}")
        key = secrets.token_hex(16)
        script = pairs_script(folder, key) if wrk else None
        for processes in (1, 2):
            ports = [free_port() for _ in range(processes)]
            servers = [
                ServerProcess(
                    f"simgate serve #{i} (PostgreSQL)",
                    python_module("simgate", "serve", "--host", "127.0.0.1", "--port", str(port)),
                    port,
                    clean_environment(SIMGATE_DATABASE_URL=url, SIMGATE_ONLINESIM_KEY=key, **settings),
                    folder / f"simgate-pg-{processes}-{i}.log",
                )
                for i, port in enumerate(ports)
            ]
            say(
                f"simgate serve on PostgreSQL x{processes}: {options.clients} "
                + (f"wrk connections, {options.duration:.0f} s" if wrk else "clients")
            )
            if wrk is not None and script is not None:
                with contextlib.ExitStack() as stack:
                    running = [stack.enter_context(server) for server in servers]
                    summary = measure(
                        wrk,
                        running,
                        url,
                        script,
                        clients=options.clients,
                        seconds=options.duration,
                        warmup=max(options.warmup, 2.0),
                    )
                if summary["errors"]:
                    say(f"[red]{summary['errors']} failed requests or socket errors[/red]")
                results[f"processes_{processes}"] = summary
                continue
            backends = BackendCpu(url)
            load_average = machine.load_average()
            with contextlib.ExitStack() as stack:
                running = [stack.enter_context(server) for server in servers]

                def cpu(
                    running: list[ServerProcess] = running, backends: BackendCpu = backends
                ) -> float | None:
                    backends.sample()  # at the window's start and end, like the servers' CPU
                    seconds = [server.cpu_seconds() for server in running]
                    return None if None in seconds else sum(s for s in seconds if s is not None)

                measured = run_async(load([s.url for s in running], key, server_cpu=cpu))
            if measured.errors:
                say(f"[red]{measured.errors} failed requests; first: {measured.first_error}[/red]")
            summary = _pairs_summary(measured)
            summary["load_average"] = load_average
            summary["postgres_cpu_percent"] = (
                None if backends.seconds is None else 100 * backends.seconds / measured.window_seconds
            )
            if measured.pairs:
                summary["server_cpu_ms_per_pair"] = (
                    None
                    if measured.server_cpu_seconds is None
                    else 1000 * measured.server_cpu_seconds / measured.pairs
                )
                summary["postgres_cpu_ms_per_pair"] = (
                    None if backends.seconds is None else 1000 * backends.seconds / measured.pairs
                )
            results[f"processes_{processes}"] = summary
    return results
