"""GET_SERVICES A/B across checkouts, alternated in the same minutes (issue 14 target 4).

    python -m bench.services_ab main=/path/to/main this=. [--numbers 100000] [--rounds 2]

Builds one farm (bench/farm.py, 300 services) with this checkout, then per round and per
checkout: a copy of the farm, this checkout's `bench.runner services` serving that
checkout's simgate (its src first on PYTHONPATH), pinned to CPU 0; GET_SERVICES alone
(server CPU per call, p50 / p99) and under wrk GET_NUMBER + FINISH (8 connections, pinned
to CPU 1), with the load average.
The farm is built before any checkout's server migrates it, so an older checkout reads it too.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import farm, machine
from bench.load import run_sequential
from bench.procs import ROOT, ServerProcess, clean_environment, free_port, python_module
from bench.scenarios import ServicesOptions, _under_load, _wait_idle, run_async
from bench.stats import summarise
from bench.wrk import SERVER_CPU, find_wrk, pinned


def measure(
    checkout: Path, database: Path, key: str, services: int, options: ServicesOptions, log: Path
) -> dict[str, Any]:
    port = free_port()
    argv = python_module(
        "bench.runner", "services", "--port", str(port), "--database", str(database), "--key", key,
        "--services", str(services),
    )  # fmt: skip
    environ = clean_environment()
    # That checkout's simgate, this checkout's bench (the same runner for every server).
    environ["PYTHONPATH"] = os.pathsep.join([str(checkout / "src"), str(ROOT)])
    command = pinned(argv, SERVER_CPU) if options.wrk else argv
    server = ServerProcess(f"GET_SERVICES server ({checkout})", command, port, environ, log)
    body = {"action": "GET_SERVICES", "key": key}
    with server:
        url = f"{server.url}/onlinesim/getServices"
        _wait_idle(server)
        load = machine.load_average()
        cpu = server.cpu_seconds()
        alone = run_async(run_sequential(url, body, calls=options.calls, max_seconds=options.max_seconds))
        spent = server.cpu_seconds()
        calls = len(alone.latencies) + 3
        result: dict[str, Any] = {
            "alone": {
                **summarise(alone.latencies).as_dict(),
                "server_cpu_ms_per_call": None
                if cpu is None or spent is None
                else 1000 * (spent - cpu) / calls,
                "load_average": load,
                "answer_bytes": alone.answer_bytes,
            }
        }
        if options.wrk:
            loaded = _under_load(server, url, body, key, farm.service_names(services), options)
            result["under_load"] = loaded
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkouts", nargs="+", help="name=path")
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--farm", type=Path, help="reuse this farm file (built if missing)")
    args = parser.parse_args()
    named = [(name, Path(path).resolve()) for name, path in (c.split("=", 1) for c in args.checkouts)]
    options = ServicesOptions(
        calls=args.calls, load_seconds=args.load_seconds, wrk=find_wrk(print), max_seconds=10.0
    )
    with tempfile.TemporaryDirectory(prefix="services-ab-") as tmp:
        folder = Path(tmp)
        built = args.farm or folder / "farm.db"
        if not built.exists():
            farm.build(built, farm.FarmShape(numbers=args.numbers), farm.service_names(args.services))
        key = secrets.token_hex(16)
        rows = []
        for round_ in range(args.rounds):
            for name, checkout in named:
                database = folder / f"{name}-{round_}.db"
                for suffix in ("", "-wal", "-shm"):
                    if Path(f"{built}{suffix}").exists():
                        shutil.copyfile(f"{built}{suffix}", f"{database}{suffix}")
                started = time.strftime("%H:%M:%S", time.gmtime())
                figures = measure(
                    checkout, database, key, args.services, options, folder / f"{name}-{round_}.log"
                )
                alone, loaded = figures["alone"], figures.get("under_load", {})
                print(
                    f"{started} {name:>8} alone p50 {alone['p50_ms']:6.1f} p99 {alone['p99_ms']:6.1f} ms"
                    f" cpu/call {alone['server_cpu_ms_per_call']:5.1f} ms load {alone['load_average']:.2f}"
                    f" | loaded p50 {loaded.get('p50_ms', 0):6.1f} p99 {loaded.get('p99_ms', 0):6.1f} ms"
                    f" pairs/s {loaded.get('pairs_per_second', 0):5.0f}"
                    f" load {loaded.get('load_average', 0):.2f}",
                    flush=True,
                )
                rows.append({"name": name, "round": round_, "at": started, **figures})
                database.unlink(missing_ok=True)
        Path("bench/results").mkdir(parents=True, exist_ok=True)
        Path("bench/results/services_ab.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
