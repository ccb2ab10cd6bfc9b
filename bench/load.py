"""The load generator: aiohttp clients on loopback, bounded in time and in request count."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
TIMEOUT = aiohttp.ClientTimeout(total=10)
"""The marketplace's own deadline (spec): a request slower than this has failed anyway."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

OrderMaker = Callable[[random.Random], dict[str, Any]]


@dataclass
class PairsRun:
    """GET_NUMBER followed by FINISH_ACTIVATION, by `clients` concurrent callers."""

    clients: int
    window_seconds: float
    pairs: int = 0
    """Pairs whose FINISH completed inside the measurement window."""
    started_pairs: int = 0
    """All pairs begun, warm-up included (bounded by max_pairs)."""
    get_number: list[float] = field(default_factory=list)
    finish: list[float] = field(default_factory=list)
    no_numbers: int = 0
    errors: int = 0
    first_error: str = ""
    server_cpu_seconds: float | None = None
    client_cpu_seconds: float = 0.0

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.window_seconds

    def fail(self, message: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = message


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, bytes]:
    async with session.post(url, data=body, headers=JSON_HEADERS) as answer:
        return answer.status, await answer.read()


async def run_pairs(
    base_url: str | Sequence[str],
    key: str,
    make_order: OrderMaker,
    *,
    clients: int,
    duration: float,
    warmup: float,
    max_pairs: int,
    server_cpu: Callable[[], float | None] | None = None,
) -> PairsRun:
    """Each client loops GET_NUMBER then FINISH (status 4, which frees the number).

    Stops issuing at `warmup + duration` seconds or after `max_pairs` pairs, whichever comes
    first. Latencies are kept for requests begun after the warm-up; each is the time from
    sending to having read the whole answer, so it includes the client's own queueing.
    """
    # Several servers (PostgreSQL, several processes): client i talks to server i mod n.
    bases = [base_url] if isinstance(base_url, str) else list(base_url)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    run = PairsRun(clients=clients, window_seconds=duration)
    cpu_marks: list[tuple[float | None, float]] = []

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_marks.append((server_cpu() if server_cpu else None, time.process_time()))
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        cpu_marks.append((server_cpu() if server_cpu else None, time.process_time()))

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        rng = random.Random(index)
        get_url = f"{bases[index % len(bases)]}/onlinesim/getNumber"
        finish_url = f"{bases[index % len(bases)]}/onlinesim/finishActivation"
        while run.started_pairs < max_pairs and time.perf_counter() < stop_at:
            run.started_pairs += 1
            order = make_order(rng)
            order["key"] = key
            t0 = time.perf_counter()
            status, raw = await _post(session, get_url, _encode(order))
            t1 = time.perf_counter()
            measured = t0 >= measure_from
            if measured:
                run.get_number.append(t1 - t0)
            reply = _decode(raw)
            if reply.get("status") == "NO_NUMBERS":
                run.no_numbers += 1
                continue
            if status != 200 or reply.get("status") != "SUCCESS" or "activationId" not in reply:
                run.fail(f"GET_NUMBER: HTTP {status} {raw[:200]!r}")
                continue
            finish = {
                "action": "FINISH_ACTIVATION",
                "key": key,
                "activationId": reply["activationId"],
                "status": 4,
                "sum": order.get("sum", 0),
            }
            t2 = time.perf_counter()
            status, raw = await _post(session, finish_url, _encode(finish))
            t3 = time.perf_counter()
            if measured:
                run.finish.append(t3 - t2)
            if status != 200 or _decode(raw).get("status") != "SUCCESS":
                run.fail(f"FINISH: HTTP {status} {raw[:200]!r}")
                continue
            if measure_from <= t3 <= stop_at:
                run.pairs += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        monitor = asyncio.create_task(mark_cpu())
        await asyncio.gather(*(client(session, index) for index in range(clients)))
        if not monitor.done():
            # Ended early by max_pairs: the window is what actually elapsed.
            monitor.cancel()
            run.window_seconds = max(1e-9, time.perf_counter() - measure_from)
            cpu_marks.append((server_cpu() if server_cpu else None, time.process_time()))
    if len(cpu_marks) == 2:
        (server_before, client_before), (server_after, client_after) = cpu_marks
        if server_before is not None and server_after is not None:
            run.server_cpu_seconds = server_after - server_before
        run.client_cpu_seconds = client_after - client_before
    return run


@dataclass
class SequentialRun:
    """One caller, one request at a time: the latency a marketplace's poll sees."""

    latencies: list[float] = field(default_factory=list)
    answer_bytes: int = 0
    content_encoding: str = ""
    wire_bytes: int | None = None


async def run_sequential(
    url: str, body: dict[str, Any], *, calls: int, max_seconds: float, warmup_calls: int = 3
) -> SequentialRun:
    """Up to `calls` requests (after a few unmeasured ones), stopping after `max_seconds`."""
    payload = _encode(body)
    run = SequentialRun()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for _ in range(warmup_calls):
            await _post(session, url, payload)
        deadline = time.perf_counter() + max_seconds
        while len(run.latencies) < calls and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with session.post(url, data=payload, headers=JSON_HEADERS) as answer:
                raw = await answer.read()
                status = answer.status
                run.content_encoding = answer.headers.get("Content-Encoding", "identity")
                wire = answer.headers.get("Content-Length")
            run.latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"{url}: HTTP {status} {raw[:200]!r}")
            run.answer_bytes = len(raw)
            run.wire_bytes = int(wire) if wire and wire.isdigit() else None
    return run
