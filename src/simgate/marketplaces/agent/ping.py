"""A periodic GET of the marketplace's ping URL (HeroSMS, spec/herosms.md 5.5), as a health check.

It carries no key, so a SUCCESS proves the path to the marketplace works (DNS, egress, TLS,
their server up), not that the key is right. It never gates a push: the outbox retries on its
own; the result is for the owner, on the Hardware page and in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec

from simgate.domain.types import Timestamp
from simgate.marketplaces.base import Health

log = logging.getLogger("simgate.agent")

TIMEOUT = 5.0
"""The reference agent's ping timeout (spec 5.5)."""
MAX_ANSWER = 4096

_decode = msgspec.json.Decoder(Any).decode


def ping_url_for(push_url: str) -> str:
    """The ping next to a push URL: .../agent/api/sms -> .../agent/api/ping, else the host's
    /agent/api/ping (both published URLs share a host, spec 5.4-5.5)."""
    parts = urlsplit(push_url)
    path = parts.path
    path = path[: -len("/sms")] + "/ping" if path.endswith("/agent/api/sms") else "/agent/api/ping"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def judge(status: int | None, body: bytes, error: str | None) -> str | None:
    """None when the ping succeeded (HTTP 2xx and a body status SUCCESS), else why not."""
    if error is not None:
        return error
    if status is None or not 200 <= status < 300:
        return f"HTTP {status}"
    try:
        answer = _decode(body)
    except msgspec.DecodeError:
        return "answer is not JSON"
    if isinstance(answer, dict) and answer.get("status") == "SUCCESS":
        return None
    text = body[:120].decode("utf-8", "replace")
    return f"answer is not SUCCESS: {text}"


@dataclass
class Pinger:
    marketplace: str
    url: str
    every: float
    user_agent: str
    clock: Callable[[], Timestamp]
    last: Health = field(init=False)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.last = Health(check="ping", url=self.url, every_seconds=self.every)

    def health(self) -> Health:
        return self.last

    async def once(self, session: aiohttp.ClientSession) -> Health:
        started = time.perf_counter()
        status, body, error = None, b"", None
        try:
            async with session.get(self.url) as response:
                status, body = response.status, await response.content.read(MAX_ANSWER)
        except TimeoutError:
            error = f"timeout after {TIMEOUT:g}s"
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:300]
        latency = round((time.perf_counter() - started) * 1000, 1)
        problem = judge(status, body, error)
        failures = 0 if problem is None else self.last.failures + 1
        if problem is not None and self.last.failures == 0:
            log.warning("%s ping failed: %s", self.marketplace, problem)
        elif problem is None and self.last.failures:
            log.info("%s ping succeeds again", self.marketplace)
        self.last = replace(
            self.last,
            ok=problem is None,
            at=self.clock(),
            latency_ms=latency,
            error=problem,
            failures=failures,
        )
        return self.last

    async def run(self) -> None:
        headers = {"User-Agent": self.user_agent, "Accept-Encoding": "gzip", "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while not self._stop.is_set():
                await self.once(session)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.every)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._stop.clear()
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            self._stop.set()
            await task
