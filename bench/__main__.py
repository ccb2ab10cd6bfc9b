"""`make bench` (python -m bench): GET_NUMBER+FINISH throughput and GET_SERVICES latency.

Every figure is printed beside a baseline measured in the same run, so the ratios mean
something on any machine. Servers run as subprocesses on loopback; every load is bounded in
time and in count. Results: a table on the terminal and JSON in bench/results/latest.json.

Settings (flag, or the environment variable named in its help):

    python -m bench --duration 10 --clients 64 --sizes 10000,100000 --only pairs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import machine, tables_wrk, two_marketplaces
from bench.delivery import DeliveryOptions, bench_delivery
from bench.delivery_wrk import DeliveryWrkOptions, bench_delivery_wrk
from bench.memory import MemoryOptions, bench_memory
from bench.pairs_wrk import WrkPairsOptions, bench_pairs_wrk
from bench.postgres import bench_pairs_postgres
from bench.procs import ROOT
from bench.scenarios import (
    PairsOptions,
    ServicesOptions,
    baseline_server,
    bench_pairs,
    bench_services,
)
from bench.tables import print_report, verdicts
from bench.two_marketplaces import TwoMarketplacesOptions, bench_two_marketplaces
from bench.wrk import find_wrk

DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default) or default


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=float(_env("BENCH_DURATION", "10")),
        help="seconds of measured GET_NUMBER+FINISH load, per server (BENCH_DURATION; 10)",
    )
    parser.add_argument(
        "--warmup", type=float, default=float(_env("BENCH_WARMUP", "1")), help="BENCH_WARMUP; 1"
    )
    parser.add_argument(
        "--clients", type=int, default=int(_env("BENCH_CLIENTS", "64")), help="BENCH_CLIENTS; 64"
    )
    parser.add_argument(
        "--max-pairs",
        type=int,
        default=int(_env("BENCH_MAX_PAIRS", "200000")),
        help="stop after this many pairs even before --duration (BENCH_MAX_PAIRS; 200000)",
    )
    parser.add_argument(
        "--pair-numbers",
        type=int,
        default=int(_env("BENCH_PAIR_NUMBERS", "5000")),
        help="inventory for the GET_NUMBER+FINISH farm (BENCH_PAIR_NUMBERS; 5000)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=_sizes(_env("BENCH_SIZES", "10000,100000")),
        help="farm sizes for GET_SERVICES (BENCH_SIZES; 10000,100000)",
    )
    parser.add_argument(
        "--services", type=int, default=int(_env("BENCH_SERVICES", "300")), help="BENCH_SERVICES; 300"
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=int(_env("BENCH_CALLS", "200")),
        help="GET_SERVICES calls per measurement, bounded by --call-seconds too (BENCH_CALLS; 200)",
    )
    parser.add_argument(
        "--call-seconds",
        type=float,
        default=float(_env("BENCH_CALL_SECONDS", "10")),
        help="time bound per GET_SERVICES measurement (BENCH_CALL_SECONDS; 10)",
    )
    parser.add_argument(
        "--only",
        choices=(
            "pairs",
            "pairs-pg",
            "services",
            "delivery",
            "pairs-python",
            "delivery-python",
            "memory",
            "two-marketplaces",
        ),
        default=_env("BENCH_ONLY", "") or None,
        help=(
            "one measurement; pairs and delivery use wrk if they can, pairs-python and delivery-python "
            "the Python generator (BENCH_ONLY)"
        ),
    )
    parser.add_argument(
        "--memory-seconds",
        type=float,
        default=float(_env("BENCH_MEMORY_SECONDS", "120")),
        help="mixed load before reading the server's RSS, --only memory (BENCH_MEMORY_SECONDS; 120)",
    )
    parser.add_argument(
        "--wrk-numbers",
        type=int,
        default=int(_env("BENCH_WRK_NUMBERS", "20000")),
        help="inventory for the wrk GET_NUMBER+FINISH farm (BENCH_WRK_NUMBERS; 20000)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file ({DEFAULT_JSON})")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.clients < 1 or args.max_pairs < 1 or args.calls < 1:
        parser.error("--duration, --clients, --max-pairs and --calls must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A pipe or CI log gets rich's 80 columns by default, which folds every row in three.
    console = Console(width=None if sys.stdout.isatty() else 150)

    def say(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")

    started = time.perf_counter()
    pairs_options = PairsOptions(
        clients=args.clients,
        duration=args.duration,
        warmup=args.warmup,
        max_pairs=args.max_pairs,
        numbers=args.pair_numbers,
    )
    services_options = ServicesOptions(
        sizes=args.sizes, services=args.services, calls=args.calls, max_seconds=args.call_seconds
    )
    results: dict[str, object] = {"machine": machine.describe()}
    two_result: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="simgate-bench-") as temp:
        folder = Path(temp)
        try:
            wanted = (None, "pairs", "memory", "two-marketplaces", "delivery", "pairs-pg")
            wrk = find_wrk(say) if args.only in wanted else None
            pg_wrk = wrk
            if args.only == "memory":
                if wrk is None:
                    raise SystemExit("--only memory needs wrk (apt-get install wrk)")
                memory_options = MemoryOptions(seconds=args.memory_seconds)
                results["memory"] = bench_memory(folder, wrk, memory_options, say)
                wrk = None
            if wrk is not None:
                wrk_options = WrkPairsOptions(
                    connections=args.clients, duration=args.duration, numbers=args.wrk_numbers
                )
                if args.only in (None, "pairs"):
                    results["pairs_wrk"] = bench_pairs_wrk(folder, wrk, wrk_options, say)
                if args.only in (None, "two-marketplaces"):
                    two = TwoMarketplacesOptions(
                        connections=args.clients, duration=args.duration, numbers=args.wrk_numbers
                    )
                    two_result = bench_two_marketplaces(folder, wrk, two, say)
                    results["two_marketplaces"] = two_result
                if args.only in (None, "delivery"):
                    results["delivery_wrk"] = bench_delivery_wrk(wrk, folder, DeliveryWrkOptions(), say)
            elif args.only in (None, "pairs", "pairs-pg", "two-marketplaces", "delivery"):
                say(
                    "[yellow]wrk not found (apt-get install wrk): pairs and delivery measured with the "
                    "Python generator, which needs a core of its own; its ceiling is the rig's[/yellow]"
                )
            with baseline_server(folder) as baseline:
                if args.only == "pairs-python" or (args.only in (None, "pairs") and wrk is None):
                    results["pairs"] = bench_pairs(folder, pairs_options, baseline, say)
                if args.only in (None, "pairs-pg"):
                    results["pairs_postgres"] = bench_pairs_postgres(
                        folder, pairs_options, say, wrk=pg_wrk, wrk_numbers=args.wrk_numbers
                    )
                if args.only == "delivery-python" or (args.only in (None, "delivery") and wrk is None):
                    results["delivery"] = bench_delivery(folder, DeliveryOptions(), say)
                if args.only in (None, "services"):
                    # GET_SERVICES is measured again under GET_NUMBER load, which wrk drives.
                    loaded = dataclasses.replace(services_options, wrk=wrk or find_wrk(say))
                    results["services"] = bench_services(folder, loaded, baseline, say)
        except Exception:
            # The servers' logs live in the temporary folder: keep them, they say why.
            kept = args.json.parent / "failed-logs"
            kept.mkdir(parents=True, exist_ok=True)
            for log in folder.glob("*.log"):
                shutil.copy(log, kept / log.name)
            say(f"[red]bench failed; server logs kept in {kept}[/red]")
            raise
    results["load_average_at_end"] = machine.load_average()
    results["verdicts"] = verdicts(results)
    if "pairs_wrk" in results:
        results["verdicts"].update(tables_wrk.verdicts(results["pairs_wrk"]))
    if "delivery_wrk" in results:
        results["verdicts"].update(tables_wrk.delivery_verdicts(results["delivery_wrk"]))
    if two_result is not None:
        results["verdicts"].update(two_marketplaces.verdicts(two_result))
    results["seconds"] = time.perf_counter() - started
    print_report(console, results)
    if "memory" in results:
        memory = results["memory"]
        console.print(
            f"memory: {memory['numbers']:,} numbers, {memory['seconds']:.0f} s of mixed load "
            f"({memory['pairs']:,} pairs, {memory['get_services_calls']} GET_SERVICES, "
            f"{memory['get_services_failed']} failed): RSS {memory['rss_mib_at_start']:.0f} MiB at start, "
            f"{memory['rss_mib_max']:.0f} MiB at most, {memory['rss_mib_at_end']:.0f} MiB at the end "
            f"(target < 200 MB)"
        )
    if two_result is not None:
        console.print(two_marketplaces.table(two_result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    say(f"results written to {args.json} ({results['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
