"""GET_NUMBER + FINISH with Onlinesim and SMSHUB both enabled, beside Onlinesim alone (issue 10).

The same farm shape twice, `simgate serve` pinned to CPU 0 and two wrk processes (32
connections each) pinned to CPU 1, run at the same time:

- one marketplace: only Onlinesim is enabled, both wrk processes order from it;
- two marketplaces: Onlinesim and SMSHUB are enabled, so the lanes split the farm between
  them, and one wrk process orders from each (the same order mix, in SMSHUB's names).

Both runs use the same rig, so the ratio between them is the cost of a second marketplace:
lanes in every count and claim, two routes, two keys (the issue's target: within 10 %).
A wrk connection cannot tell which marketplace answered, so each process speaks to one.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from rich.table import Table

from bench import farm, machine
from bench.procs import ServerProcess, clean_environment, free_port, python_module
from bench.scenarios import order_maker
from bench.wrk import LUA, SERVER_CPU, WrkRun, can_pin, lua_script, pinned, run_wrk
from simgate import catalogue
from simgate.domain.types import ServiceName
from simgate.services.lanes import register_marketplaces
from simgate.storage import schema
from simgate.storage.sqlite import SQLiteStore

Result = dict[str, Any]

TARGET_RATIO = 0.9
"""Two marketplaces keep at least this share of one marketplace's pairs per second."""
ROUNDS = 3
"""Alternating measurement rounds; each configuration gets duration / ROUNDS per round."""
DEAD_END = "http://127.0.0.1:9/push"
"""Pushes go nowhere (no SMS arrives in this run; no traffic may leave the machine)."""


@dataclass(frozen=True, slots=True)
class TwoMarketplacesOptions:
    connections: int = 64
    """Split evenly over the two wrk processes."""
    duration: float = 10.0
    warmup: float = 2.0
    numbers: int = 20_000
    orders: int = 2_000


def agent_script(folder: Path, key: str, bodies: Sequence[bytes]) -> Path:
    """pairs.lua spoken to POST /smshub: one URL for both calls, the action in the body.
    FINISH status 5 (refunded) releases the number as Onlinesim's 4 does; the agent protocol's
    4 would spend the number's re-offer budget for that service."""
    path = lua_script(folder, key, bodies)
    text = path.read_text()
    swaps = {
        '"POST", "/onlinesim/finishActivation"': '"POST", "/smshub"',
        '"POST", "/onlinesim/getNumber"': '"POST", "/smshub"',
        '"status":4': '"status":5',
    }
    for old, new in swaps.items():
        if old not in text:
            raise RuntimeError(f"{LUA.name} changed: {old!r} not found; update bench/two_marketplaces.py")
        text = text.replace(old, new)
    agent = folder / "pairs-smshub.lua"
    agent.write_text(text)
    return agent


def names_toml(folder: Path, services: Sequence[str]) -> Path:
    """SMSHUB's names for the bench farm, as an owner writes them: its own names equal to
    simgate's (SMSHUB's shipped maps name only a few services and two countries)."""
    countries = [country for country, *_ in farm.COUNTRIES]
    operators = sorted({op for *_, ops in farm.COUNTRIES for op in ops if op})
    lines = ["[marketplaces.smshub.services]", *(f'{s} = "{s}"' for s in services)]
    lines += ["[marketplaces.smshub.countries]", *(f'{c} = "{c}"' for c in countries)]
    lines += ["[marketplaces.smshub.operators]", *(f'{o} = "{o}"' for o in operators)]
    path = folder / "two-marketplaces.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def build_farm(
    path: Path, shape: farm.FarmShape, services: Sequence[ServiceName], enabled: Sequence[str]
) -> farm.FarmStats:
    """bench/farm.py's farm, imported once the marketplaces are known, so the import shares
    the SIMs among their lanes as it does for an owner who enabled both before importing.
    (Enabled later, SMSHUB's lane would fill at SIMGATE_LANE_MOVES a round: a different test.)"""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    schema.upgrade(f"sqlite:///{path}")
    store = SQLiteStore(str(path))
    try:
        now = time.time()
        store.run(lambda uow: register_marketplaces(uow, enabled, now))
        return farm.fill(store, shape, services)
    finally:
        store.close()


def _together(wrk: str, url: str, scripts: Sequence[Path], connections: int, seconds: float) -> list[WrkRun]:
    with ThreadPoolExecutor(len(scripts)) as pool:
        runs = [
            pool.submit(run_wrk, wrk, url, script, connections=connections, seconds=seconds)
            for script in scripts
        ]
        return [run.result() for run in runs]


def _combined(runs: Sequence[WrkRun], cpu_seconds: float, load: Sequence[float | None]) -> Result:
    """Every round's processes added up: rates over the rounds' summed windows."""
    seconds = sum(run.seconds for run in runs) / 2  # two processes measure each window
    requests, finishes = sum(run.requests for run in runs), sum(run.finishes for run in runs)
    return {
        "requests_per_second": requests / seconds,
        "pairs_per_second": finishes / seconds,
        "gets": sum(run.gets for run in runs),
        "finishes": finishes,
        "no_numbers": sum(run.no_numbers for run in runs),
        "failures": sum(run.failures for run in runs),
        "socket_errors": sum(run.socket_errors for run in runs),
        # Each process's own percentiles; the worst one is what an owner meets.
        "p50_ms": max(run.p50_ms for run in runs),
        "p99_ms": max(run.p99_ms for run in runs),
        "server_cpu_percent": 100 * cpu_seconds / seconds if cpu_seconds else None,
        # On a shared machine the server may not get its whole core: CPU per pair is the
        # figure that load elsewhere moves least.
        "server_cpu_ms_per_pair": 1000 * cpu_seconds / finishes if cpu_seconds and finishes else None,
        "load_average": list(load),
        "processes": [run.as_dict() for run in runs],
    }


@dataclass(slots=True)
class _Side:
    """One configuration: its server, its wrk scripts, and what its rounds measured."""

    server: ServerProcess
    scripts: list[Path]
    runs: list[WrkRun] = field(default_factory=list)
    cpu_seconds: float = 0.0
    loads: list[float | None] = field(default_factory=list)

    def measure(self, wrk: str, connections: int, seconds: float) -> None:
        each = max(1, connections // len(self.scripts))
        self.loads.append(machine.load_average())
        before = self.server.cpu_seconds()
        self.runs += _together(wrk, self.server.url, self.scripts, each, seconds)
        after = self.server.cpu_seconds()
        if before is not None and after is not None:
            self.cpu_seconds += after - before


def _side(
    folder: Path, name: str, enabled: Sequence[str], environment: dict[str, str], scripts: list[Path]
) -> _Side:
    port = free_port()
    server = ServerProcess(
        f"simgate serve ({' + '.join(enabled)})",
        pinned(python_module("simgate", "serve", "--host", "127.0.0.1", "--port", str(port)), SERVER_CPU),
        port,
        clean_environment(**environment),
        folder / f"simgate-serve-{name}.log",
    )
    return _Side(server, scripts)


def bench_two_marketplaces(
    folder: Path, wrk: str, options: TwoMarketplacesOptions, say: Callable[[str], None]
) -> Result:
    services = catalogue.services()
    make = order_maker(services)
    rng = random.Random(2)
    orders = [make(rng) for _ in range(options.orders)]
    onlinesim_key, smshub_key = secrets.token_hex(16), secrets.token_hex(16)
    encode = msgspec.json.Encoder().encode
    onlinesim = lua_script(folder, onlinesim_key, [encode({**o, "key": onlinesim_key}) for o in orders])
    onlinesim_copy = folder / "pairs-onlinesim.lua"
    onlinesim_copy.write_text(onlinesim.read_text())  # lua_script reuses its file name
    # SMSHUB always names the currency of `sum` (ISO 4217 numeric; 643 is RUB).
    agent_orders = [encode({**o, "key": smshub_key, "currency": 643}) for o in orders]
    smshub = agent_script(folder, smshub_key, agent_orders)
    config = names_toml(folder, services)
    shape = farm.FarmShape(numbers=options.numbers)
    sides: dict[str, _Side] = {}
    stats: Result = {}
    for name, enabled in (("one", ("onlinesim",)), ("two", ("onlinesim", "smshub"))):
        say(f"farm: {options.numbers} numbers for {' + '.join(enabled)} (wrk)")
        database = folder / f"pairs-{name}.db"
        stats[name] = build_farm(database, shape, services, enabled).as_dict()
        environment = {
            "SIMGATE_DATABASE_URL": f"sqlite:///{database}",
            "SIMGATE_ONLINESIM_KEY": onlinesim_key,
            "SIMGATE_ONLINESIM_PUSH_URL": DEAD_END,
            "SIMGATE_CONFIG": str(config),
        }
        if "smshub" in enabled:
            environment |= {"SIMGATE_SMSHUB_KEY": smshub_key, "SIMGATE_SMSHUB_PUSH_URL": DEAD_END}
        scripts = [onlinesim_copy, smshub] if "smshub" in enabled else [onlinesim_copy, onlinesim_copy]
        sides[name] = _side(folder, name, enabled, environment, scripts)
    # Both servers up (the idle one costs nothing), measured in alternating rounds: a load
    # swing on this shared machine then falls on both configurations alike.
    each = max(1.0, options.duration / ROUNDS)
    with sides["one"].server, sides["two"].server:
        for side in sides.values():  # connections open, caches warm; figures dropped
            _together(wrk, side.server.url, side.scripts, options.connections // 2, options.warmup)
        for index in range(ROUNDS):
            say(f"wrk: round {index + 1}/{ROUNDS}: one marketplace, then two, {each:.0f} s each")
            for side in sides.values():
                side.measure(wrk, options.connections, each)
    one, two = ({**_combined(s.runs, s.cpu_seconds, s.loads), "farm": stats[n]} for n, s in sides.items())
    for name, result in (("one", one), ("two", two)):
        if result["failures"] or result["socket_errors"]:
            say(f"[red]{name}: {result['failures']} failed, {result['socket_errors']} socket errors[/red]")
    return {
        "connections": options.connections,
        "duration": options.duration,
        "rounds": ROUNDS,
        "pinned": can_pin(),
        "numbers": options.numbers,
        "one_marketplace": one,
        "two_marketplaces": two,
        "ratio_pairs": two["pairs_per_second"] / one["pairs_per_second"],
        "ratio_cpu_per_pair": None
        if not (one["server_cpu_ms_per_pair"] and two["server_cpu_ms_per_pair"])
        else two["server_cpu_ms_per_pair"] / one["server_cpu_ms_per_pair"],
    }


def verdicts(result: Result) -> dict[str, bool]:
    return {"two marketplaces: pairs/s >= 0.9x one": result["ratio_pairs"] >= TARGET_RATIO}


def table(result: Result) -> Table:
    one, two = result["one_marketplace"], result["two_marketplaces"]
    pinned = "server on CPU 0, wrk on CPU 1" if result["pinned"] else "not pinned"
    out = Table(
        title=(
            f"GET_NUMBER + FINISH, Onlinesim alone vs Onlinesim + SMSHUB (lanes): "
            f"{result['connections']} connections in 2 wrk processes, {result['duration']:.0f} s each in "
            f"{result['rounds']} alternating rounds, "
            f"{result['numbers']:,} numbers, {pinned}"
        ),
        title_justify="left",
    )
    for column in ("figure", "one marketplace", "two marketplaces", "ratio", "target"):
        out.add_column(column, justify="left" if column == "figure" else "right")
    ok = verdicts(result)["two marketplaces: pairs/s >= 0.9x one"]
    out.add_row(
        "pairs / s",
        f"{one['pairs_per_second']:,.0f}",
        f"{two['pairs_per_second']:,.0f}",
        f"x{result['ratio_pairs']:.2f}",
        ">= x0.9 " + ("[green]meets[/green]" if ok else "[red]misses[/red]"),
    )
    out.add_row(
        "requests / s", f"{one['requests_per_second']:,.0f}", f"{two['requests_per_second']:,.0f}", "", ""
    )
    for name in ("p50", "p99"):
        out.add_row(
            f"{name} latency (worse process)",
            f"{one[f'{name}_ms']:.1f} ms",
            f"{two[f'{name}_ms']:.1f} ms",
            "",
            "",
        )
    if one["server_cpu_percent"] is not None and two["server_cpu_percent"] is not None:
        out.add_row(
            "server CPU (% of one core)",
            f"{one['server_cpu_percent']:.0f} %",
            f"{two['server_cpu_percent']:.0f} %",
            "",
            "",
        )
    if result.get("ratio_cpu_per_pair") is not None:
        out.add_row(
            "server CPU per pair",
            f"{one['server_cpu_ms_per_pair']:.2f} ms",
            f"{two['server_cpu_ms_per_pair']:.2f} ms",
            f"x{result['ratio_cpu_per_pair']:.2f}",
            "",
        )
    out.add_row(
        "NO_NUMBERS · failed · socket errors",
        f"{one['no_numbers']} · {one['failures']} · {one['socket_errors']}",
        f"{two['no_numbers']} · {two['failures']} · {two['socket_errors']}",
        "",
        "",
    )
    return out
