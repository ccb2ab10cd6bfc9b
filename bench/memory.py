"""Resident memory of `simgate serve` over a big farm under mixed load (issue 14, target 7).

A farm of 100,000 numbers; wrk drives GET_NUMBER + FINISH (bench/pairs.lua) at 64
connections while one caller asks GET_SERVICES every second, the way a marketplace polls;
VmRSS of the server is sampled every few seconds. `--only memory`, not part of the default
run: it lasts as long as asked (the issue's figure is after 10 minutes).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from bench import farm, machine
from bench.procs import ServerProcess, clean_environment, free_port, python_module
from bench.scenarios import order_maker
from bench.wrk import SERVER_CPU, lua_script, pinned, run_wrk
from simgate import catalogue


@dataclass(frozen=True, slots=True)
class MemoryOptions:
    numbers: int = 100_000
    seconds: float = 120.0
    connections: int = 64
    sample_every: float = 5.0


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _poll_services(url: str, key: str, stop: threading.Event, answered: list[int]) -> None:
    body = msgspec.json.encode({"action": "GET_SERVICES", "key": key})
    while not stop.wait(1.0):
        request = urllib.request.Request(
            f"{url}/onlinesim/getServices", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
                answered.append(answer.status)
        except OSError:
            answered.append(0)


def bench_memory(
    folder: Path, wrk: str, options: MemoryOptions, say: Callable[[str], None]
) -> dict[str, Any]:
    services = catalogue.services()
    make = order_maker(services)
    rng = random.Random(1)
    key = secrets.token_hex(16)
    script = lua_script(folder, key, [msgspec.json.encode({**make(rng), "key": key}) for _ in range(2_000)])
    say(f"farm: {options.numbers} numbers (memory)")
    database = folder / "memory.db"
    farm.build(database, farm.FarmShape(numbers=options.numbers), services)
    port = free_port()
    server = ServerProcess(
        "simgate serve (memory)",
        pinned(python_module("simgate", "serve", "--host", "127.0.0.1", "--port", str(port)), SERVER_CPU),
        port,
        clean_environment(SIMGATE_DATABASE_URL=f"sqlite:///{database}", SIMGATE_ONLINESIM_KEY=key),
        folder / "simgate-serve-memory.log",
    )
    samples: list[tuple[float, float]] = []
    answered: list[int] = []
    with server:
        at_start = rss_mib(server.pid)
        stop = threading.Event()
        poller = threading.Thread(target=_poll_services, args=(server.url, key, stop, answered), daemon=True)
        poller.start()
        started = time.monotonic()
        pairs = 0
        say(f"wrk GET_NUMBER + FINISH and GET_SERVICES every second for {options.seconds:.0f} s")
        while (elapsed := time.monotonic() - started) < options.seconds:
            chunk = min(options.sample_every, options.seconds - elapsed)
            run = run_wrk(wrk, server.url, script, connections=options.connections, seconds=max(1.0, chunk))
            pairs += run.finishes
            rss = rss_mib(server.pid)
            if rss is not None:
                samples.append((time.monotonic() - started, rss))
        stop.set()
        poller.join(timeout=15)
    return {
        "numbers": options.numbers,
        "seconds": options.seconds,
        "pairs": pairs,
        "get_services_calls": len(answered),
        "get_services_failed": sum(1 for status in answered if status != 200),
        "rss_mib_at_start": at_start,
        "rss_mib_max": max((rss for _, rss in samples), default=None),
        "rss_mib_at_end": samples[-1][1] if samples else None,
        "samples": samples,
        "load_average": machine.load_average(),
    }
