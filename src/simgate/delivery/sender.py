"""The webhook sender: pooled keep-alive connections (delivery/http1.py), explicit timeouts,
errors as values."""

from __future__ import annotations

import time

from simgate.delivery.http1 import Http1Client
from simgate.domain.messages import PushReply, PushRequest


class WebhookSender:
    def __init__(self, timeout: float = 30.0, connections: int = 64) -> None:
        self.timeout = timeout
        self._connections = connections
        self._client: Http1Client | None = None

    async def __aenter__(self) -> WebhookSender:
        self._client = Http1Client(self.timeout, self._connections)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, request: PushRequest) -> PushReply:
        assert self._client is not None, "use the sender as an async context manager"
        started = time.perf_counter()
        try:
            status, body = await self._client.post(request.url, request.body, request.headers)
            return PushReply(status, body, _ms(started))
        except TimeoutError:
            return PushReply(None, b"", _ms(started), f"timeout after {self.timeout:g}s")
        except (OSError, ValueError) as error:
            return PushReply(None, b"", _ms(started), f"{type(error).__name__}: {error}"[:500])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
