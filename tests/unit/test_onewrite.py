"""A response's head waits for its body, so the two leave in one write."""

from __future__ import annotations

import asyncio
from typing import Any

from simgate.http.onewrite import HeadWithBody


class Recorded:
    def __init__(self) -> None:
        self.writes: list[bytes | bytearray | memoryview] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 9) if name == "peername" else None


def test_head_and_body_leave_in_one_write() -> None:
    async def scenario() -> list[bytes | bytearray | memoryview]:
        real = Recorded()
        transport = HeadWithBody(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        transport.write(b"")
        await asyncio.sleep(0)
        return real.writes

    assert asyncio.run(scenario()) == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    ]


def test_a_head_without_a_body_in_the_same_turn_is_written_at_its_end() -> None:
    async def scenario() -> tuple[list[bytes | bytearray | memoryview], list[bytes | bytearray | memoryview]]:
        real = Recorded()
        transport = HeadWithBody(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        before = list(real.writes)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return before, real.writes

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == [b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_closing_writes_a_held_answer_first_and_the_rest_passes_through() -> None:
    async def scenario() -> Recorded:
        real = Recorded()
        transport = HeadWithBody(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        assert transport.get_extra_info("peername") == ("127.0.0.1", 9)
        transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
        transport.close()
        await asyncio.sleep(0)
        return real

    real = asyncio.run(scenario())
    assert real.writes == [b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n"]
    assert real.closed


def test_a_body_given_as_a_memoryview_or_bytearray_passes_too() -> None:
    async def scenario() -> list[bytes | bytearray | memoryview]:
        real = Recorded()
        transport = HeadWithBody(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(memoryview(b"chunk one"))
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(bytearray(b"body"))
        return real.writes

    assert asyncio.run(scenario()) == [memoryview(b"chunk one"), b"HTTP/1.1 200 OK\r\n\r\nbody"]
