"""`simgate demo` (`make demo`): the whole system on this machine, in one command.

A fresh SQLite file, a generated farm loaded with `simgate numbers import`, the real server
(`simgate serve` in a child process, on loopback), a simulated SIM bank and simulated
marketplaces (Onlinesim, SMSHUB, ... side by side) that buy from the same farm. Live
progress in the terminal; at the end (after --duration seconds or Ctrl-C) every open
operation is finished and the partner checks are printed: each marketplace's own, and with
several those across them (one SIM, one buyer at a time). Exit status 0 only with a clean
report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import aiohttp
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from simgate.simulator.farm import SimCard, make_farm, save_csv
from simgate.simulator.findings import STATUS_WORDS, Report, earnings_text
from simgate.simulator.market_config import MarketplaceConfig, for_marketplace
from simgate.simulator.protocol import PROTOCOLS
from simgate.simulator.run import Progress, Simulation, summary
from simgate.simulator.simbank import SimBankConfig

FOLDER = Path("demo-data")
DATABASE = FOLDER / "simgate-demo.db"
FARM_CSV = FOLDER / "farm.csv"
SERVER_LOG = FOLDER / "server.log"
REPORT_JSON = FOLDER / "report.json"
CONFIG_TOML = FOLDER / "simgate.toml"
DEFAULT_PORT = 8080
DEFAULT_MARKETPLACES = ("onlinesim",)
LIVE_CALLS = frozenset(
    {"getNumber", "finishActivation", "getServices", "GET_NUMBER", "GET_SERVICES", "intake"}
)
START_TIMEOUT = 60.0


class DemoError(RuntimeError):
    pass


def port_is_free(port: int) -> bool:
    """Whether `serve` can listen there. uvicorn binds with SO_REUSEADDR, so the sockets a
    previous demo left in TIME_WAIT (for a minute) do not count as taken: test the same way."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MAX_PORT = 65535


def choose_port(port: int | None) -> tuple[int, str | None]:
    """The asked port, or 8080, or (if 8080 is taken and none was asked) any free one."""
    if port is not None:
        if not port_is_free(port):
            raise DemoError(f"port {port} is in use; pass another --port")
        return port, None
    if port_is_free(DEFAULT_PORT):
        return DEFAULT_PORT, None
    chosen = free_port()
    return chosen, f"port {DEFAULT_PORT} is in use, serving on {chosen} instead"


def _orphan_guard() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server dies with the demo even if the demo is killed outright."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def parse_marketplaces(text: str) -> tuple[str, ...]:
    """`onlinesim,smshub` -> the marketplaces to simulate, each once, in the order given."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown or not names:
        raise DemoError(
            f"--marketplaces: {', '.join(unknown) or 'none given'}; known: {', '.join(PROTOCOLS)}"
        )
    return names


def name_tables(markets: Sequence[MarketplaceConfig], cards: Sequence[SimCard]) -> str:
    """TOML: for each agent-protocol marketplace, its names for the farm's countries, operators
    and services, as an owner copies them from the marketplace's lists (simgate ships only
    the few the protocol documents confirm, and advertises nothing without a name)."""
    lines: list[str] = []
    for market in markets:
        if market.protocol != "agent":
            continue
        names = market.names
        tables: dict[str, dict[str, str]] = {
            "services": {ours: names.own_service(ours) for ours in sorted(set(names.services.values()))},
            "countries": {c: names.own_country(c) for c in sorted({card.country for card in cards})},
        }
        if market.named_operators:  # else the shipped (none): everything under `any`
            tables["operators"] = {
                op: op for op in sorted({card.operator for card in cards if card.operator})
            }
        for table, entries in tables.items():
            lines.append(f"[marketplaces.{market.marketplace}.{table}]")
            lines += [f'{ours} = "{theirs}"' for ours, theirs in entries.items()]
            lines.append("")
    return "\n".join(lines)


def lane_pace(speed: float) -> dict[str, str]:
    """Lanes rebalance every minute over an hour's demand (the defaults); the simulated world
    runs `speed` times faster, so the lanes must too, within what the settings allow."""
    return {
        "SIMGATE_LANE_REBALANCE_SECONDS": f"{max(1.0, 60.0 / speed):g}",
        "SIMGATE_LANE_DEMAND_SECONDS": f"{max(60.0, 3600.0 / speed):g}",
        "SIMGATE_LANE_STALE_SECONDS": f"{max(60.0, 600.0 / speed):g}",
        "SIMGATE_LANE_IDLE_SECONDS": f"{max(60.0, 900.0 / speed):g}",
    }


def server_environment(
    *, keys: Mapping[str, str], push_urls: Mapping[str, str], intake: str, admin: str, speed: float
) -> dict[str, str]:
    """The demo's settings only: a SIMGATE_* variable or config file of the shell must not leak in.

    Each simulated marketplace is enabled by its key, and its pushes go to its simulator; the
    agent-protocol marketplaces' names are in the demo's own config file.
    """
    environ = {name: value for name, value in os.environ.items() if not name.startswith("SIMGATE_")}
    environ.update(
        SIMGATE_DATABASE_URL=f"sqlite:///{DATABASE.resolve()}",
        SIMGATE_INTAKE_TOKEN=intake,
        SIMGATE_ADMIN_TOKEN=admin,
        # Spec: resend a failed push after 10 s; accelerated like everything else.
        SIMGATE_PUSH_RETRY_SECONDS=f"{max(0.2, 10.0 / speed):g}",
        PYTHONUNBUFFERED="1",
        **lane_pace(speed),
    )
    if CONFIG_TOML.exists():
        environ["SIMGATE_CONFIG"] = str(CONFIG_TOML.resolve())
    for name, key in keys.items():
        environ[f"SIMGATE_{name.upper()}_KEY"] = key
        environ[f"SIMGATE_{name.upper()}_PUSH_URL"] = push_urls[name]
    if "herosms" in keys:
        # Its ping goes next to the push URL, to the simulator; often enough to be seen.
        environ["SIMGATE_HEROSMS_PING_SECONDS"] = "5"
    return environ


def fresh_database() -> None:
    FOLDER.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)


def import_farm(environ: dict[str, str]) -> str:
    """As an owner starts: `simgate migrate` creates the database, then the CSV is imported."""
    for command in (["migrate"], ["numbers", "import", str(FARM_CSV)]):
        # Our own interpreter and fixed arguments: nothing here comes from the user.
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "simgate", *command],
            env=environ, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise DemoError(f"`simgate {command[0]}` failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "imported"


class ServerProcess:
    """`simgate serve` in its own session: the terminal's Ctrl-C reaches the demo, which
    then ends the operations and only afterwards stops the server."""

    def __init__(self, port: int, environ: dict[str, str]) -> None:
        self.port = port
        self.environ = environ
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = SERVER_LOG.open("wb")
        self._log = log
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "-m", "simgate", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.environ, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_orphan_guard if sys.platform == "linux" else None,
        )  # fmt: skip

    async def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise DemoError(
                        f"the server exited with status {self.process.returncode}: {self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(self.url + "/readyz") as answer:
                        if answer.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise DemoError(f"the server was not ready within {START_TIMEOUT:g} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            lines = SERVER_LOG.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()


def live_view(progress: Progress, duration: float | None, port: int) -> RenderableType:
    counts = progress.counts
    simulated = progress.elapsed * progress.speed
    limit = f" of {duration:g} s" if duration else ""
    state = "finishing open operations ..." if progress.ending else "Ctrl-C to stop"
    header = Text.assemble(
        ("simgate demo", "bold"),
        f"  x{progress.speed:g}  {progress.elapsed:.0f} s{limit} ({simulated / 60:.1f} simulated min)  ",
        (state, "dim"),
    )
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    several = len(progress.markets) > 1
    for name, market in progress.markets.items():
        for kind in ("activation", "rent"):
            if kind == "rent" and several and not market.get("rent.opened"):
                continue  # the agent protocol has no rent
            finished = ", ".join(
                f"{STATUS_WORDS.get(key.rsplit('.', 1)[1], key)} {n}"
                for key, n in sorted(market.items())
                if key.startswith(f"{kind}.finished.")
            )
            table.add_row(
                f"{name} {kind}s" if several else f"{kind}s",
                f"opened {market.get(f'{kind}.opened', 0)}, open {market.get(f'{kind}.open', 0)}"
                + (f"; {finished}" if finished else "")
                + (f"; pushed {market.get('push.success', 0)}" if several and kind == "activation" else ""),
            )
    markets = progress.markets.values()
    table.add_row(
        "SMS",
        f"received {counts.get('sms.sent', 0)} (routed {counts.get('sms.routed', 0)}, "
        f"idle numbers {counts.get('sms.stray', 0)}, no open operation {counts.get('sms.unrouted', 0)}, "
        f"resent {counts.get('sms.resent', 0)}); "
        f"pushed {sum(m.get('push.success', 0) for m in markets)} "
        f"(+{sum(m.get('push.ignored', 0) for m in markets)} ignored, "
        f"{sum(m.get('push.no_operation', 0) for m in markets)} late); pending {progress.pending_pushes}",
    )
    table.add_row("earnings", earnings_text(progress.earnings))
    latency = "  ".join(
        f"{call} {figures['p50_ms']:.0f}/{figures['p99_ms']:.0f}"
        for call, figures in progress.latencies.items()
        if call.rsplit(" ", 1)[-1] in LIVE_CALLS
    )
    table.add_row("latency ms p50/p99", latency or "-")
    if progress.failures:
        text = Text(", ".join(f"{name} {n}" for name, n in progress.failures.items()), style="red")
    else:
        text = Text("all passing so far", style="green")
    table.add_row("checks", text)
    table.add_row("dashboard", f"http://127.0.0.1:{port}/")
    return Group(header, table)


async def _demo(
    *,
    duration: float | None,
    numbers: int,
    speed: float,
    port: int,
    marketplaces: Sequence[str],
    console: Console,
    note: str | None,
) -> Report:
    keys = {name: secrets.token_hex(12) for name in marketplaces}
    intake, admin = secrets.token_hex(12), secrets.token_hex(12)
    # No SIM is pinned to a marketplace: the lanes' floor (SIMGATE_LANE_MIN_SHARE) keeps
    # every marketplace selling, whatever the other one orders.
    cards = make_farm(numbers)
    fresh_database()
    save_csv(cards, FARM_CSV)
    server_url = f"http://127.0.0.1:{port}"
    markets = [for_marketplace(name, server_url, keys[name], speed=speed) for name in marketplaces]
    CONFIG_TOML.write_text(name_tables(markets, cards), encoding="utf-8")
    bank = SimBankConfig(server_url=server_url, token=intake, speed=speed)
    async with Simulation(markets, bank, cards) as sim:
        environ = server_environment(
            keys=keys, push_urls=sim.push_urls, intake=intake, admin=admin, speed=speed
        )
        imported = await asyncio.to_thread(import_farm, environ)
        server = ServerProcess(port, environ)
        server.start()
        try:
            await server.ready()
            if note:
                console.print(note, style="yellow")
            console.print(f"farm: {numbers} virtual SIMs in {FARM_CSV} ({imported}); database {DATABASE}")
            console.print(f"server: {server.url} (log {SERVER_LOG})")
            for name, url in sim.push_urls.items():
                console.print(f"{name}: key {keys[name]}; pushes to {url}")
            console.print(f"intake token {intake}; admin token {admin}")
            console.print(f"dashboard: http://127.0.0.1:{port}/")
            return await _watch(sim, duration, port, console)
        finally:
            await asyncio.to_thread(server.stop)


async def _watch(sim: Simulation, duration: float | None, port: int, console: Console) -> Report:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # a second Ctrl-C: stop at once
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    running = asyncio.create_task(sim.run(duration, stop))
    render: Callable[[], RenderableType] = lambda: live_view(sim.progress(), duration, port)  # noqa: E731
    if console.is_terminal:
        with Live(render(), console=console, refresh_per_second=4, transient=False) as live:
            while not running.done():
                await asyncio.wait([running], timeout=0.25)
                live.update(render())
    else:
        while not running.done():
            await asyncio.wait([running], timeout=5.0)
            console.print(json.dumps(summary(sim.progress())))
    return await running


def run_demo(
    *,
    duration: float | None,
    numbers: int,
    speed: float = 10.0,
    port: int | None = None,
    marketplaces: str = ",".join(DEFAULT_MARKETPLACES),
) -> int:
    """The `simgate demo` command; returns the exit status."""
    console = Console()
    # Refusals go to standard error, like every other command's (CONTRACT.md).
    if numbers < 1:
        print("simgate: demo: --numbers must be at least 1", file=sys.stderr)
        return 2
    if speed <= 0 or (duration is not None and duration <= 0):
        print("simgate: demo: --speed and --duration must be > 0", file=sys.stderr)
        return 2
    if port is not None and not 1 <= port <= MAX_PORT:
        print(f"simgate: demo: --port must be between 1 and {MAX_PORT}", file=sys.stderr)
        return 2
    try:
        names = parse_marketplaces(marketplaces)
        chosen, note = choose_port(port)
        report = asyncio.run(
            _demo(
                duration=duration,
                numbers=numbers,
                speed=speed,
                port=chosen,
                marketplaces=names,
                console=console,
                note=note,
            )
        )
    except DemoError as error:
        print(f"simgate: demo: {error}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        print("simgate: demo: interrupted", file=sys.stderr)
        return 130
    report.title = "simgate demo"
    report.print(console)
    REPORT_JSON.write_text(report.to_json(), encoding="utf-8")
    console.print(f"report: {REPORT_JSON}; server log: {SERVER_LOG}")
    if not report.ok:
        print(f"simgate: demo: {len(report.failed)} partner check(s) failed", file=sys.stderr)
        return 1
    return 0
