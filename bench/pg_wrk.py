"""GET_NUMBER + FINISH on PostgreSQL driven by wrk (issue 14, targets 1 and 5).

The Python generator (bench/load.py) spends ~0.8 ms of CPU per pair, as much as simgate's
own share on PostgreSQL, and on a 2-core machine it competes with the server and the
database for the same cores. wrk spends a few percent of a core. Each process gets its own
wrk (one thread, pinned to the load CPU like every wrk run here), the clients split between
them; the servers and PostgreSQL are not pinned: the database is a third party on the cores.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from bench import machine
from bench.pg_measure import BackendCpu
from bench.procs import ServerProcess
from bench.scenarios import order_maker
from bench.wrk import WrkRun, lua_script, run_wrk
from simgate import catalogue

Result = dict[str, Any]

ORDERS = 2_000
"""Distinct GET_NUMBER bodies the script cycles through (Onlinesim's mix, as bench/pairs_wrk.py)."""


def pairs_script(folder: Path, key: str) -> Path:
    make = order_maker(catalogue.services())
    rng = random.Random(1)
    encode = msgspec.json.Encoder().encode
    return lua_script(folder, key, [encode({**make(rng), "key": key}) for _ in range(ORDERS)])


def _split(clients: int, parts: int) -> list[int]:
    """`clients` connections over `parts` servers, every server at least one."""
    return [max(1, clients // parts + (1 if i < clients % parts else 0)) for i in range(parts)]


def measure(
    wrk: str,
    servers: Sequence[ServerProcess],
    url: str,
    script: Path,
    *,
    clients: int,
    seconds: float,
    warmup: float,
) -> Result:
    """One wrk per server at once; CPU of the servers and of the database's backends across
    the measured window, per pair."""
    connections = _split(clients, len(servers))

    def run(window: float, server_cpu: Callable[[], float | None] | None = None) -> list[WrkRun]:
        with ThreadPoolExecutor(len(servers)) as pool:
            runs = [
                pool.submit(run_wrk, wrk, server.url, script, connections=n, seconds=window)
                for server, n in zip(servers, connections, strict=True)
            ]
            return [run.result() for run in runs]

    run(warmup)  # connections open, the pool filled, statements prepared; figures dropped
    load = machine.load_average()
    backends = BackendCpu(url)
    backends.sample()
    before = [server.cpu_seconds() for server in servers]
    runs = run(seconds)
    after = [server.cpu_seconds() for server in servers]
    backends.sample()
    window = max(r.seconds for r in runs)
    pairs = sum(r.finishes for r in runs)
    simgate = None if None in before or None in after else sum(after) - sum(before)  # type: ignore[arg-type]
    # Latency across the servers: the slowest server's percentiles (wrk merges none for us).
    worst = max(runs, key=lambda r: r.p99_ms)
    return {
        "generator": "wrk",
        "connections": connections,
        "pairs_per_second": pairs / window,
        "pairs": pairs,
        "window_seconds": window,
        "requests": {"p50_ms": worst.p50_ms, "p90_ms": worst.p90_ms, "p99_ms": worst.p99_ms},
        "no_numbers": sum(r.no_numbers for r in runs),
        "errors": sum(r.failures + r.socket_errors for r in runs),
        "load_average": load,
        "server_cpu_percent": None if simgate is None else 100 * simgate / window,
        "postgres_cpu_percent": None if backends.seconds is None else 100 * backends.seconds / window,
        "server_cpu_ms_per_pair": None if simgate is None or not pairs else 1000 * simgate / pairs,
        "postgres_cpu_ms_per_pair": (
            None if backends.seconds is None or not pairs else 1000 * backends.seconds / pairs
        ),
    }
