"""The simulated marketplace as a load generator (`simgate simulate load`, `make bench`).

Not a buyer: GET_NUMBER + FINISH (cancel) pairs at a fixed rate, to measure the partner's
throughput and latency. It checks only that every call is answered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from simgate.simulator.client import JSON, USER_AGENT
from simgate.simulator.findings import Latencies

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass
class LoadResult:
    target_rate: float
    concurrency: int
    seconds: float = 0.0
    started: int = 0
    pairs: int = 0
    """GET_NUMBER answered SUCCESS and its FINISH answered SUCCESS."""
    no_numbers: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: Latencies = field(default_factory=Latencies)

    @property
    def achieved_rate(self) -> float:
        """Completed GET_NUMBER calls (issued or NO_NUMBERS) per second."""
        return (self.pairs + self.no_numbers) / self.seconds if self.seconds > 0 else 0.0

    def fail(self, message: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = message

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "started": self.started,
            "pairs": self.pairs,
            "no_numbers": self.no_numbers,
            "errors": self.errors,
            "first_error": self.first_error,
            "latency": {call: self.latencies.summary(call) for call in self.latencies.calls()},
        }


async def run_load(
    server_url: str,
    key: str,
    *,
    rate: float,
    concurrency: int,
    duration: float,
    max_requests: int = 1_000_000,
    services: Sequence[str] = ("telegram", "whatsapp", "vkcom", "google"),
    services_every: int = 20,
    seed: int | None = None,
) -> LoadResult:
    """The marketplace as a load generator: GET_NUMBER + FINISH (cancel) pairs at `rate`/s.

    Open loop, bounded: a new pair starts every 1/rate s while fewer than `concurrency` are
    in flight (so a slow server shows as a lower achieved rate, not as a pile-up), for at
    most `duration` seconds and `max_requests` pairs; one call in `services_every` is a
    GET_SERVICES. Cancelled pairs (status 4) give their numbers back, so the farm never
    runs dry however long the run.
    """
    if rate <= 0 or concurrency < 1 or duration <= 0:
        raise ValueError("rate, concurrency and duration must be positive")
    rng = random.Random(seed)
    result = LoadResult(target_rate=rate, concurrency=concurrency)
    headers = {"Content-Type": JSON, "User-Agent": USER_AGENT, "Authorization": f"Bearer {key}"}
    base = server_url.rstrip("/") + "/onlinesim/"
    limit = asyncio.Semaphore(concurrency)

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency + 4),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as session:

        async def post(call: str, payload: dict[str, Any]) -> dict[str, Any] | None:
            started = time.monotonic()
            try:
                async with session.post(base + call, data=_encode(payload), headers=headers) as answer:
                    body = await answer.read()
                    status = answer.status
            except (TimeoutError, aiohttp.ClientError, OSError) as problem:
                result.fail(f"{call}: {type(problem).__name__} {problem}"[:200])
                return None
            result.latencies.add(call, time.monotonic() - started)
            try:
                decoded = _decode(body)
            except msgspec.DecodeError:
                decoded = None
            if status != 200 or not isinstance(decoded, dict):
                result.fail(f"{call}: HTTP {status} {body[:120]!r}")
                return None
            return decoded

        stock = await post("getServices", {"action": "GET_SERVICES", "key": key})
        targets: list[tuple[str, str]] = []
        for entry in (stock or {}).get("countryList", []):
            anyop = entry.get("operatorMap", {}).get("any", {}) if isinstance(entry, dict) else {}
            targets += [(entry["country"], s) for s in services if anyop.get(s, 0) > 0]
        if not targets:
            result.fail("nothing advertised for the requested services")
            return result

        async def pair(index: int) -> None:
            try:
                if services_every and index % services_every == services_every - 1:
                    await post("getServices", {"action": "GET_SERVICES", "key": key})
                    return
                country, service = rng.choice(targets)
                order = {"action": "GET_NUMBER", "country": country, "operator": "any",
                         "service": service, "sum": 10, "key": key}  # fmt: skip
                issued = await post("getNumber", order)
                if issued is None:
                    return
                if issued.get("status") == "NO_NUMBERS":
                    result.no_numbers += 1
                    return
                if issued.get("status") != "SUCCESS":
                    result.fail(f"getNumber: {issued}")
                    return
                finish = {"action": "FINISH_ACTIVATION", "activationId": issued.get("activationId"),
                          "status": 4, "key": key}  # fmt: skip
                done = await post("finishActivation", finish)
                if done is not None and done.get("status") == "SUCCESS":
                    result.pairs += 1
                elif done is not None:
                    result.fail(f"finishActivation: {done}")
            finally:
                limit.release()

        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        end = started + duration
        for index in range(max_requests):
            due = started + index / rate
            now = time.monotonic()
            if due >= end or now >= end:
                break
            if due > now:
                await asyncio.sleep(due - now)
            try:
                await asyncio.wait_for(limit.acquire(), timeout=max(0.0, end - time.monotonic()))
            except TimeoutError:
                break
            result.started += 1
            task = asyncio.create_task(pair(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=15)
        result.seconds = time.monotonic() - started
        for task in tasks:
            task.cancel()
    return result
