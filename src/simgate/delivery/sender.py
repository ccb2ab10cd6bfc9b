"""The webhook sender: one pooled aiohttp session, explicit timeouts, errors as values."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from simgate.domain.messages import PushReply, PushRequest

MAX_ANSWER = 4096


class WebhookSender:
    def __init__(self, timeout: float = 30.0, connections: int = 64) -> None:
        self.timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookSender:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(5.0, self.timeout)),
            connector=aiohttp.TCPConnector(limit=self._connections),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: PushRequest) -> PushReply:
        assert self._session is not None, "use the sender as an async context manager"
        started = time.perf_counter()
        try:
            async with self._session.post(
                request.url, data=request.body, headers=request.headers
            ) as response:
                body = await response.content.read(MAX_ANSWER)
                return PushReply(response.status, body, _ms(started))
        except TimeoutError:
            return PushReply(None, b"", _ms(started), f"timeout after {self.timeout:g}s")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as error:
            return PushReply(None, b"", _ms(started), f"{type(error).__name__}: {error}"[:500])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
