"""GET_NUMBER + FINISH on SQLite driven by wrk, beside the trivial app in the same run.

A fresh farm of 20,000 numbers, `simgate serve` pinned to CPU 0, wrk (one thread,
64 connections) pinned to CPU 1; the trivial Starlette app is measured the same way first.
"""

from __future__ import annotations

import random
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from bench import claim, farm, machine
from bench.procs import ServerProcess, clean_environment, free_port, python_module
from bench.scenarios import order_maker
from bench.wrk import SERVER_CPU, WrkRun, can_pin, lua_script, pinned, run_wrk
from simgate import catalogue

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WrkPairsOptions:
    connections: int = 64
    duration: float = 10.0
    warmup: float = 2.0
    numbers: int = 20_000
    orders: int = 2_000
    """Distinct GET_NUMBER bodies the script cycles through (Onlinesim's mix, bench/scenarios.py)."""


def _measure(
    wrk: str, server: ServerProcess, script: Path, options: WrkPairsOptions
) -> tuple[WrkRun, float | None]:
    # Warm-up: connections open, caches and the page cache filled; its figures are dropped.
    run_wrk(wrk, server.url, script, connections=options.connections, seconds=options.warmup)
    load = machine.load_average()
    measured = run_wrk(
        wrk,
        server.url,
        script,
        connections=options.connections,
        seconds=options.duration,
        server_cpu=server.cpu_seconds,
    )
    return measured, load


def bench_pairs_wrk(folder: Path, wrk: str, options: WrkPairsOptions, say: Callable[[str], None]) -> Result:
    services = catalogue.services()
    make = order_maker(services)
    rng = random.Random(1)
    key = secrets.token_hex(16)
    encode = msgspec.json.Encoder().encode
    bodies = [encode({**make(rng), "key": key}) for _ in range(options.orders)]
    script = lua_script(folder, key, bodies)

    base_port = free_port()
    baseline = ServerProcess(
        "baseline app (pinned)",
        pinned(python_module("bench.runner", "baseline", "--port", str(base_port)), SERVER_CPU),
        base_port,
        clean_environment(),
        folder / "baseline-wrk.log",
    )
    say(f"wrk: trivial Starlette app, {options.connections} connections, {options.duration:.0f} s")
    with baseline:
        base, base_load = _measure(wrk, baseline, script, options)

    say(f"farm: {options.numbers} numbers for GET_NUMBER+FINISH (wrk)")
    database = folder / "pairs-wrk.db"
    shape = farm.FarmShape(numbers=options.numbers)
    stats = farm.build(database, shape, services)
    port = free_port()
    server = ServerProcess(
        "simgate serve (pinned)",
        pinned(python_module("simgate", "serve", "--host", "127.0.0.1", "--port", str(port)), SERVER_CPU),
        port,
        clean_environment(SIMGATE_DATABASE_URL=f"sqlite:///{database}", SIMGATE_ONLINESIM_KEY=key),
        folder / "simgate-serve-wrk.log",
    )
    say(f"wrk: simgate serve, {options.connections} connections, {options.duration:.0f} s")
    with server:
        measured, load = _measure(wrk, server, script, options)
    if measured.failures or measured.socket_errors:
        say(f"[red]{measured.failures} failed answers, {measured.socket_errors} socket errors[/red]")
    alone = _claim_alone(folder, shape, services, options, say)
    return {
        "connections": options.connections,
        "duration": options.duration,
        "pinned": can_pin(),
        "farm": {"shape": shape.as_dict(), **stats.as_dict()},
        "simgate": {**measured.as_dict(), "load_average": load},
        "baseline": {**base.as_dict(), "load_average": base_load},
        "ratio_requests": measured.requests_per_second / base.requests_per_second,
        "claim_alone": alone,
    }


def _claim_alone(
    folder: Path,
    shape: farm.FarmShape,
    services: list[str],
    options: WrkPairsOptions,
    say: Callable[[str], None],
) -> Result:
    """The same pairs through the store alone on the server's CPU (bench/claim.py): no HTTP."""
    database = folder / "claim-alone.db"
    farm.build(database, shape, services)
    say(f"the claim alone (no HTTP): {options.connections} tasks, {options.duration:.0f} s, on its CPU")
    argv = pinned(
        python_module("bench.claim", str(database), str(options.duration), str(options.connections)),
        SERVER_CPU,
    )
    done = subprocess.run(
        argv, env=clean_environment(), capture_output=True, text=True, check=True, timeout=300
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith(claim.RESULT_PREFIX))
    result: Result = msgspec.json.decode(line[len(claim.RESULT_PREFIX) :])
    return result
