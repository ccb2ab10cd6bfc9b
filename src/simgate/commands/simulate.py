"""`simgate simulate ...`: the simulators as separate processes, on loopback only.

    simgate simulate simbank --numbers 100 --write-csv farm.csv --csv-only
    simgate numbers import farm.csv
    SIMGATE_ONLINESIM_PUSH_URL=http://127.0.0.1:8090 simgate serve &
    simgate simulate simbank --server http://127.0.0.1:8080 --token T --numbers 100 --control-port 8091 &
    simgate simulate marketplace --server http://127.0.0.1:8080 --key K --push-port 8090 \\
        --farm farm.csv --simbank-url http://127.0.0.1:8091 --duration 60 --speed 10

SMSHUB instead of Onlinesim (the agent protocol; simgate then needs SIMGATE_SMSHUB_KEY and
SIMGATE_SMSHUB_PUSH_URL=http://127.0.0.1:8092/agent/api/sms):

    simgate simulate marketplace --protocol smshub --key K --push-port 8092 --farm farm.csv
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer
from rich.console import Console

from simgate.simulator.farm import SimCard, load_csv, make_farm, save_csv
from simgate.simulator.protocol import PROTOCOLS

if TYPE_CHECKING:
    from simgate.simulator.findings import Report

# The simulators themselves (aiohttp, the buyer, the bank) are imported by the command that
# runs them: every `simgate` command loads this module, and they took a second to import.

app = typer.Typer(
    no_args_is_help=True,
    help="Simulated marketplaces (Onlinesim, SMSHUB) and SIM bank (loopback only).",
)
console = Console()

Server = Annotated[str, typer.Option(help="simgate's base URL (loopback)")]
Duration = Annotated[float | None, typer.Option(help="Stop after this many real seconds (else Ctrl-C)")]
Speed = Annotated[float, typer.Option(help="Time acceleration: every simulated delay is divided by it")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here")]


MAX_PORT = 65535


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"simgate: {message}", err=True)
    raise typer.Exit(code)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_url(url: str, option: str) -> str:
    """Simulated buyers against a real farm would open real operations: loopback only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"{option}: {url!r} is not an http:// URL")
    if not is_loopback(parts.hostname):
        fail(f"{option}: {parts.hostname} is not a loopback address; the simulators stay on this machine")
    return url.rstrip("/")


def run_until_signal(work: Callable[[asyncio.Event], Coroutine[Any, Any, Any]]) -> Any:
    """Run `work(stop)`; the first Ctrl-C (or SIGTERM) sets `stop`, a second one aborts."""

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        return await work(stop)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        fail("interrupted", 130)


def finish(report: Report, json_out: Path | None) -> None:
    report.print(console)
    if json_out is not None:
        json_out_text = report.to_json()
        write_file(json_out, lambda path: path.write_text(json_out_text, encoding="utf-8"))
    if not report.ok:
        fail(f"{len(report.failed)} partner check(s) failed", 1)


def farm_from(path: Path | None, numbers: int, seed: int) -> list[SimCard]:
    if path is None:
        return make_farm(numbers, seed=seed)
    return read_farm(path)


def read_farm(path: Path) -> list[SimCard]:
    """The inventory CSV, or the one-line reason it cannot be read (never a traceback)."""
    try:
        return load_csv(path)
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text (save it from the spreadsheet as CSV UTF-8)")


def write_file(path: Path, write: Callable[[Path], object]) -> None:
    """Write an output file the owner named, or say in one line why it cannot be written."""
    try:
        write(path)
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")


@app.command()
def marketplace(
    key: Annotated[
        str,
        typer.Option(
            help="The key simgate expects (default: SIMGATE_<PROTOCOL>_KEY, e.g. SIMGATE_ONLINESIM_KEY)"
        ),
    ] = "",
    protocol: Annotated[
        str, typer.Option(help=f"Which marketplace to be: {', '.join(PROTOCOLS)}")
    ] = "onlinesim",
    server: Server = "http://127.0.0.1:8080",
    push_port: Annotated[int, typer.Option(help="Port of our PUSH_SMS endpoints (0: any)")] = 8090,
    push_host: Annotated[str, typer.Option(help="Loopback address for PUSH_SMS")] = "127.0.0.1",
    duration: Duration = None,
    speed: Speed = 1.0,
    activation_rate: Annotated[float, typer.Option(help="Activations per simulated second")] = 0.5,
    rent_rate: Annotated[float, typer.Option(help="Rents per simulated second")] = 0.02,
    poll_interval: Annotated[
        float | None, typer.Option(help="Simulated seconds between GET_SERVICES (Onlinesim 20, SMSHUB 15)")
    ] = None,
    farm: Annotated[
        Path | None, typer.Option(help="The inventory CSV: enables the counts-vs-farm checks")
    ] = None,
    simbank_url: Annotated[
        str | None, typer.Option(help="A `simulate simbank --control-port` to tell about operations")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (repeatable runs)")] = None,
    json_out: JsonOut = None,
) -> None:
    """Be Onlinesim (or SMSHUB): poll, order, receive PUSH_SMS, finish; report on the partner."""
    if protocol not in PROTOCOLS:
        fail(f"--protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    key = key or os.environ.get(f"SIMGATE_{protocol.upper()}_KEY", "")
    if not key:
        fail(f"--key (or SIMGATE_{protocol.upper()}_KEY) is required")
    if not is_loopback(push_host):
        fail(f"--push-host: {push_host} is not a loopback address")
    if speed <= 0:
        fail("--speed must be > 0")
    if not 0 <= push_port <= MAX_PORT:
        fail(f"--push-port must be between 0 (any) and {MAX_PORT}")
    agent = PROTOCOLS[protocol] == "agent"
    from simgate.simulator.market_config import for_marketplace
    from simgate.simulator.marketplace import MarketplaceSimulator
    from simgate.simulator.simbank import RemoteBank

    habits: dict[str, float] = {} if agent else {"rent_rate": rent_rate}
    if poll_interval is not None:
        habits["poll_interval"] = poll_interval
    config = for_marketplace(
        protocol, loopback_url(server, "--server"), key, push_host=push_host, push_port=push_port,
        speed=speed, activation_rate=activation_rate, seed=seed, **habits,
    )  # fmt: skip
    cards = read_farm(farm) if farm is not None else None
    bank_url = loopback_url(simbank_url, "--simbank-url") if simbank_url else None

    async def work(stop: asyncio.Event) -> Report:
        remote = RemoteBank(bank_url) if bank_url else None
        listeners = [remote] if remote else []
        async with MarketplaceSimulator(config, farm=cards, listeners=listeners) as market:
            if remote is not None:
                await remote.__aenter__()
            try:
                if agent:
                    console.print(
                        f"PUSH_SMS endpoint at {market.push_url} "
                        f"(simgate needs SIMGATE_{protocol.upper()}_PUSH_URL={market.push_url})"
                    )
                else:
                    console.print(
                        f"PUSH_SMS endpoints at {market.push_url}/v1/PUSH_SMS and /v1/PUSH_SMS_RENT "
                        f"(simgate needs SIMGATE_ONLINESIM_PUSH_URL={market.push_url})"
                    )
                await market.run(duration, stop)
                console.print("finishing open operations ...")
                await market.close_all()
                await market.final_poll()
                return market.finalize()
            finally:
                if remote is not None:
                    await remote.__aexit__()

    try:
        report = run_until_signal(work)
    except OSError as error:
        fail(f"cannot listen on {push_host}:{push_port}: {error.strerror}")
    finish(report, json_out)


@app.command()
def simbank(
    token: Annotated[
        str, typer.Option(envvar="SIMGATE_INTAKE_TOKEN", help="simgate's intake bearer token")
    ] = "",
    server: Server = "http://127.0.0.1:8080",
    numbers: Annotated[int, typer.Option(help="Virtual SIMs (ignored with --farm)")] = 100,
    seed: Annotated[int, typer.Option(help="Farm seed: the same seed gives the same numbers")] = 7,
    farm: Annotated[Path | None, typer.Option(help="Use this inventory CSV instead of generating")] = None,
    write_csv: Annotated[Path | None, typer.Option(help="Write the farm's inventory CSV here")] = None,
    csv_only: Annotated[bool, typer.Option("--csv-only", help="Only write the CSV, then exit")] = False,
    control_port: Annotated[
        int | None, typer.Option(help="Listen here for a marketplace's operation events")
    ] = None,
    duration: Duration = None,
    speed: Speed = 1.0,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Code SMS per simulated second to random SIMs (default 0.2 without --control-port)"
        ),
    ] = None,
    stray_rate: Annotated[float, typer.Option(help="SMS per simulated second to idle SIMs")] = 0.05,
    json_out: JsonOut = None,
) -> None:
    """Be a SIM bank: send the farm's SMS to /intake/sms and check the answers."""
    if numbers < 0 or speed <= 0:
        fail("--numbers must be >= 0 and --speed > 0")
    if control_port is not None and not 0 <= control_port <= MAX_PORT:
        fail(f"--control-port must be between 0 (any) and {MAX_PORT}")
    cards = farm_from(farm, numbers, seed)
    if write_csv is not None:
        rows = len(cards)
        write_file(write_csv, lambda path: save_csv(cards, path))
        console.print(f"wrote {rows} SIMs to {write_csv} (load it with `simgate numbers import {write_csv}`)")
    if csv_only:
        return
    if not token:
        fail("--token (or SIMGATE_INTAKE_TOKEN) is required to send SMS")
    from simgate.simulator.simbank import SimBank, SimBankConfig

    traffic = rate if rate is not None else (0.0 if control_port is not None else 0.2)
    config = SimBankConfig(
        server_url=loopback_url(server, "--server"), token=token, speed=speed,
        stray_rate=stray_rate, traffic_rate=traffic,
    )  # fmt: skip

    async def work(stop: asyncio.Event) -> Report:
        async with SimBank(config, cards) as bank:
            if control_port is not None:
                bound = await bank.serve_control("127.0.0.1", control_port)
                console.print(f"listening for operations on http://127.0.0.1:{bound}/operations")
            started = time.monotonic()
            await bank.run(duration, stop)
            await bank.stop()
            bank.report.real_seconds = time.monotonic() - started  # Ctrl-C ends it early
            return bank.report

    try:
        report = run_until_signal(work)
    except OSError as error:
        fail(f"cannot listen on 127.0.0.1:{control_port}: {error.strerror}")
    finish(report, json_out)


@app.command()
def load(
    key: Annotated[str, typer.Option(envvar="SIMGATE_ONLINESIM_KEY", help="The partner key simgate expects")],
    server: Server = "http://127.0.0.1:8080",
    rate: Annotated[float, typer.Option(help="GET_NUMBER+FINISH pairs started per second")] = 200.0,
    concurrency: Annotated[int, typer.Option(help="At most this many pairs in flight")] = 32,
    duration: Annotated[float, typer.Option(help="Seconds of load")] = 10.0,
    max_requests: Annotated[int, typer.Option(help="At most this many pairs")] = 1_000_000,
    json_out: JsonOut = None,
) -> None:
    """Load: GET_NUMBER + FINISH (cancel) pairs at a fixed rate; prints rate and latencies."""
    from simgate.simulator.load import run_load

    url = loopback_url(server, "--server")
    try:
        result = asyncio.run(
            run_load(
                url, key, rate=rate, concurrency=concurrency, duration=duration, max_requests=max_requests
            )
        )
    except ValueError as error:
        fail(str(error))
    data = result.to_dict()
    console.print_json(json.dumps(data))
    if json_out is not None:
        write_file(
            json_out, lambda path: path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        )
    if result.errors:
        fail(f"{result.errors} error(s); first: {result.first_error}", 1)
