"""One serial port as an AT-command channel: commands with deadlines, and URCs on the side.

A modem in a USB pool hangs, resets, drops off the bus and prints line noise; every read here
has a deadline, so a silent modem turns into ModemTimeout (and a reopen) instead of a task
that waits forever while its SIM's SMS pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import serial
import serial_asyncio_fast

log = logging.getLogger("simgate.hardware.modem")

FINAL_ERRORS = ("ERROR", "+CME ERROR", "+CMS ERROR", "COMMAND NOT SUPPORT", "NO CARRIER")
UNSOLICITED = (
    "+CMTI:", "+CDSI:", "+CDS:", "+CMT:", "RING", "+CLIP:", "+CUSD:", "+CREG: ", "+CGREG:",
    "^RSSI:", "^BOOT:", "^MODE:", "^SRVST:", "^SIMST:", "^HCSQ:", "^DSFLOWRPT:", "^CEND:", "^STIN:",
)  # fmt: skip
"""Lines a modem prints on its own. While a command runs they are set aside, not taken as its
answer ('+CREG: 1' unsolicited has one field, the answer to AT+CREG? two)."""


class ModemError(Exception):
    """The modem answered ERROR (or +CMS/+CME ERROR) to a command."""


class ModemTimeout(Exception):
    """No final result code within the deadline: the modem hangs or is gone."""


class ModemGone(Exception):
    """The port closed under us: unplugged, or the device reset."""


def clean(raw: bytes) -> str:
    """Printable ASCII only: noise bytes on the line must not spoil 'OK' or a PDU."""
    return "".join(ch for ch in raw.decode("latin-1") if " " <= ch <= "~").strip()


def unsolicited(line: str) -> bool:
    if line.startswith("+CREG: "):
        return line.count(",") == 0 or (line.count(",") == 2 and '"' in line.split(",")[1])
    return line.startswith(UNSOLICITED)


class Lines(asyncio.Protocol):
    """Splits the byte stream into lines; None in the queue means the port closed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data.replace(b"\r", b"\n")
        *complete, self.buffer = self.buffer.split(b"\n")
        for raw in complete:
            line = clean(raw)
            if line:
                self.queue.put_nowait(line)
        if len(self.buffer) > 65536:  # a modem spewing without line ends
            self.buffer = b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.queue.put_nowait(None)


class Channel:
    def __init__(self, protocol: Lines, timeout: float) -> None:
        self.protocol = protocol
        self.timeout = timeout
        self.urcs: list[str] = []

    async def _line(self, deadline: float) -> str:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise ModemTimeout("no answer")
        try:
            line = await asyncio.wait_for(self.protocol.queue.get(), remaining)
        except TimeoutError:
            raise ModemTimeout("no answer") from None
        if line is None:
            self.protocol.queue.put_nowait(None)  # stays closed for every later reader
            raise ModemGone("the port closed")
        return line

    def _discard_stale(self) -> None:
        """Lines nobody asked for: URCs are kept, the rest (a late answer, noise) dropped."""
        while not self.protocol.queue.empty():
            line = self.protocol.queue.get_nowait()
            if line is None:
                self.protocol.queue.put_nowait(None)
                raise ModemGone("the port closed")
            if unsolicited(line):
                self.urcs.append(line)

    def write(self, text: str) -> None:
        transport = self.protocol.transport
        if transport is None or self.protocol.closed:
            raise ModemGone("the port is closed")
        transport.write(text.encode("ascii"))

    async def command(self, command: str, seconds: float | None = None) -> list[str]:
        """Send one command; its information lines, or ModemError / ModemTimeout / ModemGone."""
        self._discard_stale()
        self.write(command + "\r")
        deadline = asyncio.get_running_loop().time() + (seconds or self.timeout)
        answer: list[str] = []
        while True:
            line = await self._line(deadline)
            if line == command:
                continue  # the echo, until ATE0 takes effect
            if line == "OK":
                return answer
            if line.startswith(FINAL_ERRORS):
                raise ModemError(f"{command}: {line}")
            if unsolicited(line):
                self.urcs.append(line)
                continue
            answer.append(line)

    async def wait_urcs(self, seconds: float) -> list[str]:
        """Idle: return the URCs that arrive (at least one) or [] after `seconds`."""
        if not self.urcs:
            deadline = asyncio.get_running_loop().time() + max(0.0, seconds)
            with contextlib.suppress(ModemTimeout):
                while not self.urcs:
                    line = await self._line(deadline)
                    if unsolicited(line):
                        self.urcs.append(line)
        seen, self.urcs = self.urcs, []
        return seen


@contextlib.asynccontextmanager
async def open_channel(device: str, baudrate: int, seconds: float) -> AsyncIterator[Channel]:
    """The port opened exclusively (a second simgate must not steal this modem's SMS)."""
    loop = asyncio.get_running_loop()
    options: dict[str, Any] = {"baudrate": baudrate, "exclusive": True, "rtscts": False}
    try:
        transport, protocol = await asyncio.wait_for(
            serial_asyncio_fast.create_serial_connection(loop, Lines, device, **options), seconds
        )
    except (serial.SerialException, OSError, ValueError) as error:
        raise ModemGone(f"cannot open {device}: {error}") from None
    except TimeoutError:
        raise ModemTimeout(f"opening {device} took longer than {seconds:g} s") from None
    assert isinstance(protocol, Lines)
    try:
        yield Channel(protocol, seconds)
    finally:
        # abort, not close: close() flushes first, and a hung modem never drains the buffer.
        # Not twice: a port that failed on a read is already closing itself.
        if not transport.is_closing():
            transport.abort()
