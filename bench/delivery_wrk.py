"""Intake -> acknowledged PUSH_SMS driven by wrk (issue 14, target 6).

The Python posters of bench/delivery.py need most of a core for ~1,000 SMS/s, so on this
2-core machine they measured themselves as much as the server. Here wrk (bench/intake.lua)
posts to /intake/sms, pinned to CPU 1 beside the receiver (this process, aiohttp, answering
SUCCESS at once); `simgate serve` runs pinned to CPU 0 and pushes to the receiver. Every text
carries its send time, so the receiver measures the whole path: the hardware's POST to the
marketplace's receipt.

Per server: `intake_only` (no push URL: what intake alone sustains), then with pushes: as fast
as 32 connections go for `seconds`, drained, then `paced_rate` SMS/s offered (open loop) for
`seconds`, whose latency is the path's and not a queue's. Exactly-once: every accepted SMS
arrives, none twice. Server CPU is read from /proc over each run, so CPU per SMS holds on a
shared machine where the wall-clock figures do not.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import farm
from bench.delivery import serve_pushes
from bench.procs import ROOT, ServerProcess, clean_environment, free_port, python_module
from bench.scenarios import Result, run_async
from bench.stats import summarise
from bench.wrk import LOAD_CPU, RESULT_PREFIX, SERVER_CPU, can_pin, pinned
from simgate import catalogue

LUA = ROOT / "bench" / "intake.lua"


@dataclass(frozen=True, slots=True)
class DeliveryWrkOptions:
    numbers: int = 1_000
    connections: int = 32
    seconds: float = 8.0
    paced_rate: float = 1_000.0
    """Issue 14: p99 < 100 ms at 1,000 SMS/s offered."""
    paced_connections: int = 64
    drain_seconds: float = 60.0
    servers: tuple[tuple[str, str | None], ...] = field(default=(("simgate", None),))
    """(label, source folder) per server to measure in the same run: None is this checkout;
    a folder (another checkout's `src`) measures that code instead, for A/B runs."""


@dataclass
class Arrivals:
    at: dict[str, float] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)
    duplicates: int = 0


async def _receiver(port: int, arrivals: Arrivals) -> web.AppRunner:
    async def push(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        text = str(body.get("text"))
        now = time.time()
        if text in arrivals.at:
            arrivals.duplicates += 1
        else:
            arrivals.at[text] = now
            sent = text.rpartition(" t=")[2]
            arrivals.latency.append(now - float(sent))
        return web.json_response({"status": "SUCCESS"})

    return await serve_pushes(push, port)


def _script(folder: Path, phones: list[str], token: str, tag: str, rate: float) -> Path:
    lines = ["phones = {", *(f"  {json.dumps(p)}," for p in phones), "}"]
    lines += [f"token = {json.dumps(token)}", f"tag = {json.dumps(tag)}", f"rate = {rate:g}", ""]
    path = folder / f"intake-{tag}.lua"
    path.write_text("\n".join(lines) + LUA.read_text())
    return path


async def _wrk(wrk: str, url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    argv = pinned(
        [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(script), url],
        LOAD_CPU,
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    lines = [line for line in out.decode().splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}): {out[-500:]!r} {err[-500:]!r}")
    raw: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return raw


def _load() -> float:
    return os.getloadavg()[0]


async def _one_run(
    wrk: str,
    server: ServerProcess,
    script: Path,
    connections: int,
    seconds: float,
    arrivals: Arrivals | None,
    drain: float,
) -> dict[str, Any]:
    load = _load()
    cpu_before = server.cpu_seconds() or 0.0
    first_post = time.time()
    spy = None
    if os.environ.get("BENCH_PYSPY"):  # a profile of this run: BENCH_PYSPY=folder
        out = Path(os.environ["BENCH_PYSPY"]) / f"{server.pid}-{script.stem}.txt"
        # BENCH_PYSPY_GIL=1: only the thread holding the GIL, so a COMMIT waiting for its
        # fsync (no CPU) does not show as the writer thread's time.
        gil = ["--gil"] if os.environ.get("BENCH_PYSPY_GIL") else []
        spy = await asyncio.create_subprocess_exec(
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
            "record", "--pid", str(server.pid), "--duration", str(round(seconds)),
            "--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out), *gil,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    perf = None
    if os.environ.get("BENCH_PERF"):  # kernel, SQLite and interpreter time: BENCH_PERF=folder
        out = Path(os.environ["BENCH_PERF"]) / f"{server.pid}-{script.stem}.perf"
        perf = await asyncio.create_subprocess_exec(
            "perf", "record", "-F", "499", "-g", "-p", str(server.pid), "-o", str(out),
            "--", "sleep", str(round(seconds)),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    raw = await _wrk(wrk, server.url, script, connections, seconds)
    for watcher in (spy, perf):
        if watcher is not None:
            await watcher.wait()
    posted_for = raw["duration_us"] / 1e6
    result: dict[str, Any] = {
        "load_before": load,
        "accepted": raw["accepted"],
        "refused": raw["refused"] + raw["socket_errors"],
        "intake_per_second": raw["accepted"] / posted_for,
        "intake_p50_ms": raw["p50_us"] / 1000,
        "intake_p99_ms": raw["p99_us"] / 1000,
    }
    if arrivals is not None:
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline:
            if len(arrivals.at) >= raw["accepted"]:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # late duplicates show here
        last = max(arrivals.at.values(), default=first_post)
        delivered = len(arrivals.at)
        cpu = (server.cpu_seconds() or 0.0) - cpu_before
        result.update(
            delivered=delivered,
            missing=raw["accepted"] - delivered,
            duplicates=arrivals.duplicates,
            pushed_per_second=delivered / max(1e-9, last - first_post),
            latency=summarise(arrivals.latency).as_dict() if arrivals.latency else None,
            server_cpu_seconds=cpu,
            server_cpu_ms_per_sms=1000 * cpu / max(1, delivered),
        )
    else:
        cpu = (server.cpu_seconds() or 0.0) - cpu_before
        result.update(server_cpu_seconds=cpu, server_cpu_ms_per_sms=1000 * cpu / max(1, raw["accepted"]))
    result["load_after"] = _load()
    return result


def _measure(
    wrk: str,
    folder: Path,
    database: Path,
    options: DeliveryWrkOptions,
    phones: list[str],
    token: str,
    key: str,
    label: str,
    source: str | None,
    mode: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    receiver_port = free_port() if mode == "pushed" else None
    settings = {
        "SIMGATE_DATABASE_URL": f"sqlite:///{database}",
        "SIMGATE_ONLINESIM_KEY": key,
        "SIMGATE_INTAKE_TOKEN": token,
        "SIMGATE_ONLINESIM_SMS_ID": "message",
    }
    if receiver_port is not None:
        settings["SIMGATE_ONLINESIM_PUSH_URL"] = f"http://127.0.0.1:{receiver_port}"
    environ = clean_environment(**settings)
    if source is not None:
        environ["PYTHONPATH"] = f"{source}{os.pathsep}{environ['PYTHONPATH']}"
    port = free_port()
    argv = python_module("simgate", "serve", "--host", "127.0.0.1", "--port", str(port))
    server = ServerProcess(
        f"simgate serve ({label}, {mode})", pinned(argv, SERVER_CPU), port, environ,
        folder / f"simgate-delivery-wrk-{label}-{mode}.log",
    )  # fmt: skip
    runs: dict[str, Any] = {}

    async def main() -> None:
        full = Arrivals()
        script = _script(folder, phones, token, f"{label}-{mode}-full", 0)
        say(f"{label} {mode}: {options.connections} connections for {options.seconds:g} s")
        if receiver_port is None:
            runs["full"] = await _one_run(wrk, server, script, options.connections, options.seconds, None, 0)
            return
        runner = await _receiver(receiver_port, full)
        try:
            runs["full"] = await _one_run(
                wrk, server, script, options.connections, options.seconds, full, options.drain_seconds
            )
        finally:
            await runner.cleanup()
        paced = Arrivals()
        runner = await _receiver(receiver_port, paced)
        try:
            script = _script(folder, phones, token, f"{label}-paced", options.paced_rate)
            say(f"{label} {mode}: {options.paced_rate:g} SMS/s offered for {options.seconds:g} s")
            runs["paced"] = await _one_run(
                wrk, server, script, options.paced_connections, options.seconds, paced, options.drain_seconds
            )
        finally:
            await runner.cleanup()

    with server:
        run_async(main())
    if receiver_port is not None:
        with sqlite3.connect(database) as db:
            runs["stored"] = dict(
                db.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
            )
            runs["messages"] = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    return runs


def bench_delivery_wrk(
    wrk: str, folder: Path, options: DeliveryWrkOptions, say: Callable[[str], None]
) -> Result:
    pinned_to = os.sched_getaffinity(0) if can_pin() else None
    if pinned_to is not None:
        os.sched_setaffinity(0, {LOAD_CPU})  # the receiver shares wrk's core, not the server's
    try:
        return _bench(wrk, folder, options, say)
    finally:
        if pinned_to is not None:
            os.sched_setaffinity(0, pinned_to)  # the benches after this one run as before


def _bench(wrk: str, folder: Path, options: DeliveryWrkOptions, say: Callable[[str], None]) -> Result:
    services = catalogue.services()
    shape = farm.FarmShape(numbers=options.numbers, busy=1.0, offline=0.0, disabled=0.0, sold=0.0)
    say(f"delivery (wrk) farm: {options.numbers} numbers, each in an open activation")
    template = folder / "delivery-wrk-template.db"
    stats = farm.build(template, shape, services)
    with sqlite3.connect(template) as db:
        phones = [r[0] for r in db.execute("SELECT phone FROM numbers WHERE open_operation_id IS NOT NULL")]
    token, key = secrets.token_hex(16), secrets.token_hex(16)
    results: Result = {"options": asdict(options), "farm": stats.as_dict(), "servers": {}}
    for label, source in options.servers:
        for mode in ("intake_only", "pushed"):
            database = folder / f"delivery-wrk-{label}-{mode}.db"
            shutil.copy(template, database)
            runs = _measure(wrk, folder, database, options, phones, token, key, label, source, mode, say)
            results["servers"].setdefault(label, {})[mode] = runs
    return results


if __name__ == "__main__":  # a quick A/B: python -m bench.delivery_wrk [label=src ...]
    import tempfile

    servers: list[tuple[str, str | None]] = [("simgate", None)]
    for arg in sys.argv[1:]:
        name, _, src = arg.partition("=")
        servers.append((name, src))
    found = shutil.which("wrk")
    assert found, "wrk is missing"
    with tempfile.TemporaryDirectory(prefix="simgate-bench-") as tmp:
        out = bench_delivery_wrk(
            found,
            Path(tmp),
            DeliveryWrkOptions(
                servers=tuple(servers),
                paced_rate=float(os.environ.get("BENCH_PACED_RATE", "1000")),
                seconds=float(os.environ.get("BENCH_SECONDS", "8")),
            ),
            lambda s: print(s, flush=True),
        )
    print(json.dumps(out["servers"], indent=1))
    if os.environ.get("BENCH_OUT"):
        Path(os.environ["BENCH_OUT"]).write_text(json.dumps(out["servers"], indent=1))
