"""GET_NUMBER + FINISH on SQLite driven by wrk, beside the trivial app in the same run.

A fresh farm of 20,000 numbers, `simgate serve` pinned to CPU 0, wrk (one thread,
64 connections) pinned to CPU 1; the trivial Starlette app is measured the same way, on the
same core, in alternating rounds (ROUNDS), so that a VM whose speed drifts by 10 % within
minutes (docs/benchmarks.md, 2026-12-04) slows both sides of the ratio alike.
"""

from __future__ import annotations

import random
import secrets
import statistics
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


ROUNDS = 3
"""Alternating rounds per side; each gets duration / ROUNDS (whole seconds: wrk's -d)."""


def combined(runs: list[WrkRun]) -> WrkRun:
    """The rounds of one side as one run: counts and seconds added up (rates over the summed
    windows), the CPU share weighted by time, the middle round's p50 and p90, and the worst
    round's tail (p99, p99.9, max): a slow round's tail is never averaged away."""
    if len(runs) == 1:
        return runs[0]
    seconds = sum(r.seconds for r in runs)
    requests = sum(r.requests for r in runs)
    cpu = [r.server_cpu_percent for r in runs]
    return WrkRun(
        requests=requests,
        seconds=seconds,
        gets=sum(r.gets for r in runs),
        finishes=sum(r.finishes for r in runs),
        no_numbers=sum(r.no_numbers for r in runs),
        failures=sum(r.failures for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p90_ms=statistics.median(r.p90_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs),
        p999_ms=max(r.p999_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
        mean_ms=sum(r.mean_ms * r.requests for r in runs) / max(requests, 1),
        server_cpu_percent=None
        if any(c is None for c in cpu)
        else sum(c * r.seconds for c, r in zip(cpu, runs, strict=True) if c is not None) / seconds,
    )


def _alternate(
    wrk: str,
    servers: dict[str, ServerProcess],
    script: Path,
    options: WrkPairsOptions,
    say: Callable[[str], None],
) -> tuple[dict[str, WrkRun], dict[str, list[WrkRun]], float | None]:
    """Each server warmed up, then measured in ROUNDS alternating rounds."""
    for server in servers.values():
        # Warm-up: connections open, caches and the page cache filled; its figures are dropped.
        run_wrk(wrk, server.url, script, connections=options.connections, seconds=options.warmup)
    load = machine.load_average()
    each = max(1.0, round(options.duration / ROUNDS))
    runs: dict[str, list[WrkRun]] = {name: [] for name in servers}
    for index in range(ROUNDS):
        say(f"wrk: round {index + 1}/{ROUNDS}: {', then '.join(servers)}, {each:.0f} s each")
        for name, server in servers.items():
            runs[name].append(
                run_wrk(
                    wrk,
                    server.url,
                    script,
                    connections=options.connections,
                    seconds=each,
                    server_cpu=server.cpu_seconds,
                )
            )
    return {name: combined(r) for name, r in runs.items()}, runs, load


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
    say(
        f"wrk: the trivial app and simgate serve, {options.connections} connections,"
        f" {options.duration:.0f} s each"
    )
    # Both up (the idle one costs nothing), pinned to the same core.
    with baseline, server:
        sides, rounds, load = _alternate(wrk, {"trivial": baseline, "simgate": server}, script, options, say)
    measured, base, base_load = sides["simgate"], sides["trivial"], load
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
        "rounds": ROUNDS,
        "round_ratios": [
            ours.requests_per_second / theirs.requests_per_second
            for ours, theirs in zip(rounds["simgate"], rounds["trivial"], strict=True)
        ],
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
