"""GoIP (DBL / Hybertone) gateways through their "SMS server" protocol: clear text over UDP.

What the gateway sends, per line (each line has its own ID and password):

    req:12;id:goip1;pass:secret;num:79281234567;signal:23;gsm_status:LOGIN;...;imsi:...;iccid:...;
        keep-alive every 30 s; answered "reg:12;status:200;" when the id and password match.
    RECEIVE:1717171717;id:goip1;password:secret;srcnum:+79001112233;msg:Your code 1234
        an SMS; answered "RECEIVE 1717171717 OK" only once it is stored. Without that answer
        the gateway sends it again, and the resend is recognised by its recvid.
    STATE:, RECORD:, REMAIN:, DELIVER:, ... with the same "<KIND>:<recvid>;id:...;password:..."
        head: acknowledged "<KIND> <recvid> OK" so the gateway stops repeating them.

Who may speak for which number: a line mapped in [hardware.goip.lines] only for its own
number (the `num` it reports is ignored). An unmapped line learns its number from its
keep-alive's `num`, but only a number that no mapped line, no other unmapped line and no
other driver owns: else anyone who knows the shared password could take another SIM offline
or inject SMS into it. Per-line passwords (`[hardware.goip.lines.goip1] password = ...`)
with every line mapped is the safe set-up (docs/security.md). Wrong passwords count per
source address (domain/throttle.py): after 10, that address is ignored for a growing while.

Keep-alives drive the SIM's online state: gsm_status LOGOUT, or no keep-alive for
`offline_after` seconds, takes the number off sale (an offline SIM is not counted in
GET_SERVICES, so a buyer is never handed a number that cannot receive).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simgate.domain.errors import DomainError
from simgate.domain.messages import IncomingMessage
from simgate.domain.throttle import Throttle
from simgate.domain.types import PhoneNumber, Timestamp
from simgate.hardware.base import Background, Clock, Sink
from simgate.hardware.feed import Feed
from simgate.hardware.health import Health
from simgate.hardware.settings_table import Table, phone_value
from simgate.hardware.status import DriverStatus
from simgate.services.phones import normalise_phone

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

log = logging.getLogger("simgate.hardware.goip")

Address = tuple[str, int]

NO_SENDER = "(no sender)"
"""Stored as the sender of a RECEIVE without `srcnum`: refusing it would make the gateway drop
the SMS (some firmware omits srcnum for network and operator messages)."""


@dataclass(frozen=True, slots=True)
class GoipConfig:
    host: str
    port: int
    password: str
    lines: dict[str, PhoneNumber]
    """Line ID (as set in the gateway's SMS-server page) -> the SIM's number."""
    line_passwords: dict[str, str]
    offline_after: float
    keepalive_status: int

    @classmethod
    def parse(cls, table: Table) -> GoipConfig:
        host = table.string("host", "0.0.0.0") or "0.0.0.0"  # noqa: S104 - gateways are on the LAN
        port = table.integer("port", 44444, 1, 65535)
        password = table.required_string("password")
        lines: dict[str, PhoneNumber] = {}
        passwords: dict[str, str] = {}
        for line, entry in table.table("lines").raw.items():
            key = f"{table.path}.lines.{line}"
            if isinstance(entry, dict):
                sub = Table(key, entry)
                phone = sub.phone("phone")
                if phone is not None:
                    lines[line] = phone
                secret = sub.string("password")
                if secret is not None:
                    passwords[line] = secret
                sub.done()
            else:
                lines[line] = phone_value(key, entry)
        offline_after = table.number("offline_after", 120.0, 5.0, 86400.0)
        status = table.integer("keepalive_status", 200, 0, 999)
        table.done()
        return cls(host, port, password, lines, passwords, offline_after, status)


def fields(head: str) -> dict[str, str]:
    """'req:3;id:goip1;pass:x;' -> {'req': '3', 'id': 'goip1', 'pass': 'x'} (keys lower-cased)."""
    result: dict[str, str] = {}
    for item in head.split(";"):
        name, sep, value = item.partition(":")
        if sep:
            result.setdefault(name.strip().lower(), value.strip())
    return result


def split_receive(text: str) -> tuple[dict[str, str], str] | None:
    """The head fields and the message; the message is last and may hold ';' and ':'."""
    marker = text.find(";msg:")
    if marker < 0:
        return None
    return fields(text[:marker]), text[marker + len(";msg:") :]


class GoipProtocol(asyncio.DatagramProtocol):
    def __init__(self, driver: GoipDriver) -> None:
        self.driver = driver
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.driver.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.driver.health.error(f"UDP error: {exc}")


class GoipDriver:
    def __init__(self, config: GoipConfig, sink: Sink, clock: Clock) -> None:
        self.config = config
        self.owned_elsewhere: Callable[[], Iterable[PhoneNumber]] = lambda: ()
        """Numbers the other drivers hold (build_drivers sets it): no unmapped line may claim one."""
        self.throttle = Throttle()
        self.clock = clock
        self.health = Health("goip", "goip", clock)
        self.sink = Feed(sink, self.health)
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.learnt: dict[str, PhoneNumber] = {}
        """Line ID -> number from the keep-alive's `num`, for lines the config does not map."""
        self.heard: dict[str, Timestamp] = {}
        """Line ID -> time of its last keep-alive."""
        self.offline: set[str] = set()
        for line, phone in config.lines.items():
            self.health.port(line, phone=phone)

    def set_owned_elsewhere(self, numbers: Callable[[], Iterable[PhoneNumber]]) -> None:
        self.owned_elsewhere = numbers

    def routes(self) -> list[BaseRoute]:
        return []  # the gateway speaks UDP to `running`'s socket

    def background(self) -> list[Background]:
        return [self.running]

    def status(self) -> list[DriverStatus]:
        return [self.health.snapshot()]

    @property
    def address(self) -> Address:
        assert self.transport is not None, "the GoIP driver is not running"
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        where = f"udp://{self.config.host}:{self.config.port}"
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: GoipProtocol(self), local_addr=(self.config.host, self.config.port)
            )
        except OSError as error:
            raise RuntimeError(
                f"hardware.goip: cannot listen on {where}: {error.strerror or error}"
                " (another simgate instance or SMS server holds the port?)"
            ) from None
        self.transport = transport
        log.info("GoIP SMS server listening on udp://%s:%s", *self.address)
        started = self.clock()
        for line in self.config.lines:
            # A configured line that never sends a keep-alive (gateway off since before our
            # start) must go offline too, not keep the state of a previous run.
            self.heard.setdefault(line, started)
        watchdog = asyncio.create_task(self.watch_keepalives())
        try:
            yield
        finally:
            watchdog.cancel()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(watchdog, *self.tasks, return_exceptions=True)
            transport.close()
            await protocol.closed  # the port is free again once this returns (a restart rebinds it)
            self.transport = None

    # -- the wire ---------------------------------------------------------------------------

    def reply(self, text: str, addr: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(text.encode(), addr)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def datagram(self, data: bytes, addr: Address) -> None:
        # GoIP firmware sends UTF-8; a broken byte must not cost the whole SMS.
        text = data.decode("utf-8", errors="replace").strip("\x00\r\n")
        if text.startswith("req:"):
            self.keepalive(fields(text), addr)
            return
        if text.startswith("RECEIVE:"):
            parsed = split_receive(text)
            if parsed is None:
                self.health.error(f"RECEIVE without msg field from {addr[0]}: {text[:80]!r}")
                return
            head, message = parsed
            if self.authorised(head, addr):
                self.spawn(self.receive(head, message, addr))
            return
        kind, sep, _ = text.partition(":")
        if sep and kind.isupper() and kind.isalpha():
            # STATE, RECORD, REMAIN, DELIVER...: nothing to store, but unanswered they repeat.
            head = fields(text)
            if self.authorised(head, addr):
                self.health.contact()
                self.reply(f"{kind} {head.get(kind.lower(), '')} OK", addr)

    def authorised(self, head: dict[str, str], addr: Address) -> bool:
        now = self.clock()
        if self.throttle.wait(addr[0], now) > 0:
            return False  # unchecked, the right password included: guessing must not go on
        line = head.get("id", "")
        supplied = head.get("pass", head.get("password", ""))
        expected = self.config.line_passwords.get(line, self.config.password)
        # As bytes: the datagram was decoded with errors="replace", so this cannot raise.
        if line and hmac.compare_digest(supplied.encode(), expected.encode()):
            return True
        # Unanswered on purpose: the documented server answers only known id/password pairs.
        wait = self.throttle.failed(addr[0], now)
        later = f"; ignoring {addr[0]} for {wait:.0f} s" if wait else ""
        self.health.error(f"wrong id or password from {addr[0]} (id {line!r}){later}")
        return False

    def owner_of(self, phone: PhoneNumber, line: str) -> str | None:
        """Who else speaks for `phone`, if anyone: an unmapped line may not take it over."""
        for other, number in self.config.lines.items():
            if number == phone:
                return f"GoIP line {other}"
        for other, number in self.learnt.items():
            if number == phone and other != line:
                return f"GoIP line {other}"
        if phone in set(self.owned_elsewhere()):
            return "another driver"
        return None

    def phone_of(self, line: str) -> PhoneNumber | None:
        return self.config.lines.get(line) or self.learnt.get(line)

    # -- keep-alives and online state --------------------------------------------------------

    def keepalive(self, head: dict[str, str], addr: Address) -> None:
        if not self.authorised(head, addr):
            return
        line = head["id"]
        self.reply(f"reg:{head.get('req', '')};status:{self.config.keepalive_status};", addr)
        now = self.clock()
        self.health.contact()
        self.heard[line] = now
        number = head.get("num", "")
        if number and line not in self.config.lines:
            try:
                claimed = normalise_phone(number)
            except DomainError:
                self.health.error(f"line {line}: keep-alive num {number!r} is not a phone number")
            else:
                owner = self.owner_of(claimed, line)
                if owner is None:
                    self.learnt[line] = claimed
                else:
                    self.health.error(f"line {line}: claims {claimed}, which {owner} owns; ignored")
        online = head.get("gsm_status", "LOGIN").upper() != "LOGOUT"
        signal = head.get("signal", "")
        self.health.port(
            line,
            phone=self.phone_of(line),
            online=online,
            signal=int(signal) if signal.isdigit() else None,
            registration=head.get("gsm_status") or None,
            iccid=head.get("iccid") or None,
            imsi=head.get("imsi") or None,
            last_contact=now,
        )
        self.spawn(self.mark(line, online))

    async def mark(self, line: str, online: bool) -> None:
        phone = self.phone_of(line)
        if phone is None:
            self.health.port(line, last_error="no phone: map it in [hardware.goip.lines]")
            return
        try:
            found = await self.sink.set_online(phone, online)
        except Exception as problem:
            self.health.error(f"line {line}: cannot record online={online}: {problem}")
            return
        if online:
            self.offline.discard(line)
        else:
            self.offline.add(line)
        if not found:
            self.health.port(line, last_error=f"{phone} is not in the inventory")

    async def watch_keepalives(self) -> None:
        """A line that stopped sending keep-alives (power, cable, crashed module) goes offline."""
        period = min(5.0, self.config.offline_after / 4)
        while True:
            await asyncio.sleep(period)
            now = self.clock()
            for line, heard in list(self.heard.items()):
                if now - heard > self.config.offline_after and line not in self.offline:
                    self.health.port(line, online=False, last_error="keep-alives stopped")
                    await self.mark(line, False)

    # -- SMS ---------------------------------------------------------------------------------

    async def receive(self, head: dict[str, str], message: str, addr: Address) -> None:
        line, recvid = head.get("id", ""), head.get("receive", "")
        phone = self.phone_of(line)
        if not recvid:
            self.health.error(f"line {line}: RECEIVE without a recvid")
            return
        if phone is None:
            # Unanswered: the gateway resends, and a keep-alive with `num` may name the line.
            self.health.error(f"line {line}: SMS {recvid} held back, the line's number is unknown")
            return
        incoming = IncomingMessage(
            phone=phone,
            sender=head.get("srcnum", "").strip() or NO_SENDER,
            text=message,
            source=f"goip:{line}",
            message_key=recvid,
        )
        try:
            await self.sink.accept(incoming)
        except DomainError as problem:
            # It can never be stored; answering stops the gateway's resends.
            self.health.rejected += 1
            self.health.error(f"line {line}: SMS {recvid} rejected: {problem}")
            self.reply(f"RECEIVE {recvid} ERROR {problem}", addr)
            return
        except Exception as problem:
            # Unanswered: the gateway resends and the next try may find the database back.
            self.health.error(f"line {line}: SMS {recvid} not stored yet: {problem}")
            return
        self.health.port(line, phone=phone, last_contact=self.clock())
        self.reply(f"RECEIVE {recvid} OK", addr)


def build(table: Table, sink: Sink, clock: Clock) -> GoipDriver:
    return GoipDriver(GoipConfig.parse(table), sink, clock)
