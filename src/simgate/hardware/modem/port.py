"""One modem: a task that opens its port, reads its SIM's SMS and reopens it when it fails.

The order that makes a crash harmless: list (AT+CMGL) -> decode -> assemble -> commit to the
database -> delete from the SIM (AT+CMGD). Killed anywhere before the delete, the SMS is still
on the SIM; the next sweep reads the same PDUs, gets the same key, and accept_sms answers
"already stored", so it is deleted without a second push.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from types import MappingProxyType

from simgate.domain.errors import DomainError
from simgate.domain.messages import IncomingMessage
from simgate.domain.types import PhoneNumber
from simgate.hardware.base import Clock
from simgate.hardware.feed import Feed
from simgate.hardware.health import Health
from simgate.hardware.modem.assembly import Assembled, Assembler
from simgate.hardware.modem.at import Channel, ModemError, ModemGone, ModemTimeout, open_channel
from simgate.hardware.modem.pdu import PduError, decode, parse_listing
from simgate.services.intake import UnknownNumber
from simgate.services.phones import normalise_phone

log = logging.getLogger("simgate.hardware.modem")

CNUM = re.compile(r'^\+CNUM:\s*(?:"[^"]*"|[^,]*)\s*,\s*"?(\+?\d{6,20})"?')
ICCID = re.compile(r"(\d{18,20})")
CREG = re.compile(r"^\+CREG:\s*\d+\s*,\s*(\d+)")
CSQ = re.compile(r"^\+CSQ:\s*(\d+)\s*,")
REGISTRATION = MappingProxyType(
    {0: "not registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}
)
REGISTERED = frozenset({1, 5})
UNREADABLE_SWEEPS = 3
"""After this many sweeps failing on one PDU it is deleted (and logged whole): a SIM whose
storage is full receives nothing, which costs more than one unreadable slot."""


@dataclass(frozen=True, slots=True)
class PortConfig:
    device: str
    """A stable name: /dev/serial/by-path/..., which survives re-plugging, unlike ttyUSB3."""
    phone: PhoneNumber | None = None


@dataclass(frozen=True, slots=True)
class ModemConfig:
    ports: tuple[PortConfig, ...]
    baudrate: int = 115200
    sweep_seconds: float = 30.0
    status_seconds: float = 60.0
    command_timeout: float = 5.0
    list_timeout: float = 20.0
    multipart_timeout: float = 300.0
    reopen_seconds: float = 1.0
    max_backoff: float = 60.0
    storage: str | None = None
    use_device_time: bool = True


class ModemPort:
    def __init__(
        self, config: ModemConfig, port: PortConfig, sink: Feed, health: Health, clock: Clock
    ) -> None:
        self.config, self.port, self.sink, self.health, self.clock = config, port, sink, health, clock
        self.name = port.device
        self.phone: PhoneNumber | None = port.phone
        self.assembler = Assembler(config.multipart_timeout)
        self.unreadable: dict[str, int] = {}
        self.held: set[str] = set()
        """Keys of SMS held on the SIM because the number is not sellable (reported once)."""
        self.health.port(self.name, phone=self.phone)

    async def run_forever(self) -> None:
        delay = self.config.reopen_seconds
        while True:
            try:
                async with open_channel(
                    self.name, self.config.baudrate, self.config.command_timeout
                ) as channel:
                    await self.start(channel)
                    delay = self.config.reopen_seconds
                    await self.serve(channel)
            except asyncio.CancelledError:
                raise
            except (ModemGone, ModemTimeout, ModemError) as problem:
                self.trouble(f"{problem}; reopening in {delay:g} s")
            except Exception as problem:  # a bug here must not end the port's task for good
                log.exception("%s: unexpected failure", self.name)
                self.trouble(f"{type(problem).__name__}: {problem}; reopening in {delay:g} s")
            await self.mark(False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.max_backoff)

    def trouble(self, message: str) -> None:
        self.health.error(f"{self.name}: {message}")
        self.health.port(self.name, last_error=message)

    # -- start-up ----------------------------------------------------------------------------

    async def start(self, channel: Channel) -> None:
        for attempt in range(3):
            # A modem may still be booting or printing noise: the first ATs may go unanswered.
            try:
                await channel.command("AT", seconds=min(2.0, self.config.command_timeout))
                break
            except (ModemTimeout, ModemError):
                if attempt == 2:
                    raise
        await channel.command("ATE0")
        with suppress(ModemError):
            await channel.command("AT+CMEE=1")
        await channel.command("AT+CMGF=0")
        if self.config.storage:
            name = self.config.storage
            await channel.command(f'AT+CPMS="{name}","{name}","{name}"')
        for setting in ("AT+CNMI=2,1,0,0,0", "AT+CNMI=1,1,0,0,0"):
            try:
                await channel.command(setting)
                break
            except ModemError:
                continue  # without +CMTI the periodic sweep still finds every SMS
        await self.identify(channel)
        await self.check_status(channel)

    async def identify(self, channel: Channel) -> None:
        if self.phone is None:
            with suppress(ModemError):
                for line in await channel.command("AT+CNUM"):
                    found = CNUM.match(line)
                    if found:
                        with suppress(DomainError):
                            self.phone = normalise_phone(found[1])
                            break
        iccid = None
        for command in ("AT+CCID", "AT+ICCID", "AT+QCCID", "AT^ICCID?"):
            try:
                found = ICCID.search(" ".join(await channel.command(command)))
            except ModemError:
                continue
            if found:
                iccid = found[1]
                break
        imsi = None
        with suppress(ModemError):
            imsi = next((line for line in await channel.command("AT+CIMI") if line.isdigit()), None)
        self.health.port(self.name, phone=self.phone, iccid=iccid, imsi=imsi)
        if self.phone is None:
            self.trouble("own number unknown (AT+CNUM gave none): set phone in [[hardware.modem.ports]]")

    async def check_status(self, channel: Channel) -> None:
        state = None
        for line in await channel.command("AT+CREG?"):
            found = CREG.match(line)
            if found:
                state = int(found[1])
        signal = None
        with suppress(ModemError):
            for line in await channel.command("AT+CSQ"):
                found = CSQ.match(line)
                if found:
                    signal = int(found[1])
        online = state in REGISTERED
        self.health.contact()
        self.health.port(
            self.name,
            online=online,
            signal=signal,
            registration=REGISTRATION.get(state or 0, str(state)),
            last_contact=self.clock(),
        )
        await self.mark(online)

    async def mark(self, online: bool) -> None:
        self.health.port(self.name, online=online)
        if self.phone is None:
            return
        try:
            if not await self.sink.set_online(self.phone, online):
                self.health.port(self.name, last_error=f"{self.phone} is not in the inventory")
        except Exception as problem:
            self.health.error(f"{self.name}: cannot record online={online}: {problem}")

    # -- the loop ----------------------------------------------------------------------------

    async def serve(self, channel: Channel) -> None:
        loop = asyncio.get_running_loop()
        next_sweep, next_status = 0.0, loop.time() + self.config.status_seconds
        while True:
            if loop.time() >= next_status:
                await self.check_status(channel)
                next_status = loop.time() + self.config.status_seconds
            if loop.time() >= next_sweep:
                waiting = await self.sweep(channel)
                pause = self.config.sweep_seconds
                if waiting:
                    pause = min(pause, max(0.5, self.config.multipart_timeout / 4))
                next_sweep = loop.time() + pause
            urcs = await channel.wait_urcs(min(next_sweep, next_status) - loop.time())
            if any(urc.startswith(("+CMTI:", "+CDSI:")) for urc in urcs):
                await asyncio.sleep(0.2)  # the parts of a long SMS arrive back to back
                next_sweep = 0.0

    async def sweep(self, channel: Channel) -> bool:
        """Store what the SIM holds; True while parts of a long SMS wait for the rest."""
        listing = parse_listing(await channel.command("AT+CMGL=4", seconds=self.config.list_timeout))
        self.health.contact()
        self.health.port(self.name, last_contact=self.clock())
        parts = []
        for stored in listing:
            try:
                part = decode(stored)
            except PduError as problem:
                failures = self.unreadable[stored.pdu] = self.unreadable.get(stored.pdu, 0) + 1
                self.trouble(str(problem))
                if failures >= UNREADABLE_SWEEPS:
                    log.error("%s: deleting unreadable slot %s, PDU %s", self.name, stored.index, stored.pdu)
                    await self.delete(channel, (stored.index,))
                    self.unreadable.pop(stored.pdu, None)
                continue
            if part is None:
                await self.delete(channel, (stored.index,))  # a status report: nothing to sell
                continue
            parts.append(part)
        for message in self.assembler.ready(parts, self.clock()):
            await self.store(channel, message)
        return bool(self.assembler.first_seen)

    async def store(self, channel: Channel, message: Assembled) -> None:
        if self.phone is None:
            self.trouble(f"SMS from {message.sender} held on the SIM: own number unknown")
            return
        incoming = IncomingMessage(
            phone=self.phone,
            sender=message.sender,
            text=message.text,
            source=f"modem:{self.phone}",
            message_key=message.key,
            received_at=message.sent_at if self.config.use_device_time else None,
        )
        try:
            await self.sink.accept(incoming)
        except UnknownNumber as problem:
            if message.key not in self.held:
                self.held.add(message.key)
                self.health.rejected += 1
                self.trouble(f"SMS from {message.sender} held on the SIM: {problem}")
            return
        except DomainError as problem:
            # It can never be stored (empty 8-bit SMS, ...): free the slot.
            self.health.rejected += 1
            self.trouble(f"SMS from {message.sender} dropped: {problem}")
        except Exception as problem:
            self.trouble(f"SMS from {message.sender} not stored yet, kept on the SIM: {problem}")
            return
        self.held.discard(message.key)
        await self.delete(channel, message.indices)

    async def delete(self, channel: Channel, indices: tuple[int, ...]) -> None:
        for index in indices:
            try:
                await channel.command(f"AT+CMGD={index}")
            except ModemError as problem:
                self.trouble(f"cannot delete slot {index}: {problem}")
