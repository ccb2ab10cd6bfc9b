"""Connection-level limits under uvicorn: header size, read timeouts, connection caps.

uvicorn with httptools holds a request head of any size in memory (a 150 MB header was
held whole), waits for a head or a body for ever, and accepts connections until the process
runs out of file descriptors. A few hundred slow sockets could then starve the marketplace's
calls, which are what the farm earns from. This protocol class adds what is missing:

- a request head (request line and headers) larger than `max_head_bytes` gets a 431;
- a head not complete within `head_timeout` of its first byte (or of the connection) gets a
  408; a body not complete within `body_timeout` of its head gets a 408 (or, if its answer
  has begun, is cut off), and its request is abandoned: nothing of it is stored (deadlines
  are checked every `SWEEP_SECONDS` at most, so either may come that much later);
- at most `max_connections_per_client` connections per peer address (a trusted proxy, named
  in FORWARDED_ALLOW_IPS, is exempt: it must limit its own clients, docs/security.md);
- at most `max_connections` in all: when full, the connection that has waited longest for
  a request head (the slowest, or an idle keep-alive) is closed to make room, so a new
  caller that sends its request at once is always served.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from simgate.http.onewrite import HeadWithBody

INFINITY = float("inf")


@dataclass(frozen=True, slots=True)
class Limits:
    max_head_bytes: int = 64 * 1024
    """Request line plus headers; nginx's default buffers hold 4 x 8 KB."""
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    """A 1 MB body (the default limit) needs 30 s only below ~35 kB/s."""
    max_connections: int = 900
    """Below the usual 1,024 file descriptors, leaving room for the database and logs."""
    max_connections_per_client: int = 64
    keep_alive: int = 5
    """Seconds an idle keep-alive connection stays open (uvicorn's default)."""


def _trusted(allowed: list[str] | str) -> Any:
    """A predicate: is this peer address a trusted proxy (FORWARDED_ALLOW_IPS)?"""
    items = [item.strip() for item in (allowed.split(",") if isinstance(allowed, str) else allowed)]
    if "*" in items:
        return lambda host: True
    networks, literals = [], set()
    for item in filter(None, items):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            literals.add(item)

    def check(host: str) -> bool:
        if host in literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in networks)

    return check


def _response(status: int, reason: str) -> bytes:
    text = f"{reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(text)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + text


SWEEP_SECONDS = 0.5
"""How often the deadlines are looked at, at most: a head or body timeout fires up to this
much late (a tenth of the shorter timeout when that is less)."""


def guarded_protocol(limits: Limits) -> type[HttpToolsProtocol]:
    """An httptools protocol class enforcing `limits`; one class per server (shared counts)."""
    per_client: Counter[str] = Counter()
    waiting: dict[GuardedProtocol, None] = {}
    """Connections waiting for a request head, oldest first (dicts keep insertion order)."""
    is_trusted: list[Any] = []
    live: set[GuardedProtocol] = set()
    swept: set[asyncio.AbstractEventLoop] = set()
    """Loops a sweep is scheduled on (one per server; tests run several)."""
    every = max(0.01, min(SWEEP_SECONDS, limits.head_timeout / 10, limits.body_timeout / 10))

    # Deadlines are swept, not timed one by one: a timer per phase of every request (head,
    # body) was a call_later and a cancel twice per request, ~6 % of the event loop's CPU
    # under GET_NUMBER + FINISH (docs/benchmarks.md, issue 14). Now a request sets a float.
    def sweep(loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for late in [c for c in live if c.deadline <= now and c.loop is loop]:
            try:
                late.expire()
            except Exception as error:
                # Reported as a timer's callback was, and only this connection's: the others
                # due now are still refused, and the sweep is still re-armed below.
                loop.call_exception_handler(
                    {"message": "a late connection", "exception": error, "protocol": late}
                )
        if any(c.loop is loop for c in live):
            loop.call_later(every, sweep, loop)
        else:
            swept.discard(loop)  # nothing to watch: an idle server does not tick

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any], **kw: Any):
            super().__init__(config, server_state, app_state, **kw)
            if not is_trusted:
                is_trusted.append(_trusted(config.forwarded_allow_ips))
            self.peer = ""
            self.reading_body = False
            self.head_bytes = 0
            self.deadline = INFINITY
            """When the phase under way (head, body) must be over, on the loop's clock."""
            self.on_late: Any = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            # Each answer's head and body in one write (http/onewrite.py).
            super().connection_made(HeadWithBody(transport, self.loop))  # type: ignore[arg-type]
            live.add(self)
            if self.loop not in swept:
                swept.add(self.loop)
                self.loop.call_later(every, sweep, self.loop)
            self.peer = self.client[0] if self.client else ""
            per_client[self.peer] += 1
            if per_client[self.peer] > limits.max_connections_per_client and not is_trusted[0](self.peer):
                self.refuse(503, "Too many connections from your address")
                return
            if len(self.connections) > limits.max_connections:
                oldest = next(iter(waiting), None)
                if oldest is None:
                    self.refuse(503, "Too many connections")
                    return
                oldest.refuse(503, "Too many connections")
            self.await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            per_client[self.peer] -= 1
            if per_client[self.peer] <= 0:
                del per_client[self.peer]
            waiting.pop(self, None)
            live.discard(self)
            self.stop_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            in_head = self in waiting
            if in_head:
                self.head_bytes += len(data)
            super().data_received(data)
            if in_head and self in waiting and self.head_bytes > limits.max_head_bytes:
                self.refuse(431, "Request Header Fields Too Large")

        # -- where a request is in its life ------------------------------------------------

        def await_head(self) -> None:
            waiting.pop(self, None)
            waiting[self] = None  # to the end: the newest waiter
            self.head_bytes = 0
            self.start_timer(limits.head_timeout, self.head_late)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self not in waiting:  # a pipelined request right after the previous one
                self.await_head()
            elif self.on_late is None:
                self.start_timer(limits.head_timeout, self.head_late)

        def on_headers_complete(self) -> None:
            waiting.pop(self, None)
            self.reading_body = True
            self.start_timer(limits.body_timeout, self.body_late)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self.reading_body = False
            self.stop_timer()
            super().on_message_complete()
            if self.cycle is not None and self.cycle.response_complete:
                self.idle()  # answered before its body was in (a 413, a 401): idle only now

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.reading_body:
                self.idle()

        def idle(self) -> None:
            # Idle keep-alive: uvicorn's own timer closes it; until then it may be evicted.
            if not self.transport.is_closing():
                waiting.pop(self, None)
                waiting[self] = None
                self.head_bytes = 0

        # -- timers and refusals -----------------------------------------------------------

        def start_timer(self, delay: float, callback: Any) -> None:
            self.deadline, self.on_late = self.loop.time() + delay, callback

        def stop_timer(self) -> None:
            self.deadline, self.on_late = INFINITY, None

        def expire(self) -> None:
            callback = self.on_late
            self.stop_timer()
            if callback is not None:
                callback()

        def head_late(self) -> None:
            self.refuse(408, "Request Timeout")

        def body_late(self) -> None:
            # The app is reading this body: it sees a disconnect (a 400 nobody receives, as
            # uvicorn drops what a disconnected cycle sends). The client gets a 408 unless
            # its answer has begun (a 413 or 401 sent before the body was in): a gateway
            # that sends slowly learns why, instead of a bare reset.
            if self.transport.is_closing():
                return
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_response(408, "Request Timeout"))
            self.transport.close()

        def refuse(self, status: int, reason: str) -> None:
            waiting.pop(self, None)
            self.stop_timer()
            if self.transport.is_closing():
                return
            busy = self.cycle is not None and not self.cycle.response_complete
            if not busy:  # never write into a response the app is sending
                self.transport.write(_response(status, reason))
            self.transport.close()

    return GuardedProtocol
