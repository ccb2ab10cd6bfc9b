"""A response's head and body in one write to the socket, not two.

uvicorn writes the status line and headers when the app sends `http.response.start`, and the
body on `http.response.body`: two system calls and two TCP segments per answer, where a
marketplace call's whole answer is ~200 bytes (docs/benchmarks.md, issue 14). This transport
holds the head back until the body follows, which for every answer simgate gives is at once,
within the same turn of the loop; a head whose body does not follow in that turn (a streamed
answer, a `100 Continue`) is written at the end of the turn, as it would have been.
"""

from __future__ import annotations

import asyncio
from typing import Any


class HeadWithBody:
    """`transport` for uvicorn's protocol, holding each response head for its body."""

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:5] == b"HTTP/":  # bytes, or a body's memoryview or bytearray
            self._head = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write a head still held (its body did not follow in the same turn)."""
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.flush()  # a refusal's whole answer is one write, then close: it goes out first
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, abort, ...) as is.
        return getattr(self._transport, name)
