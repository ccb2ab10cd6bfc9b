"""Ejoin / Skyline multi-SIM gateways: their HTTP push, and their SMS query API as a catch-up.

The gateway POSTs JSON to the URL set in its web UI (SMS settings "SMS forward URL", status
"report URL"). Point both at `/intake/ejoin/<device>?token=<token>`:

    {"type": "recv-sms", "sms_num": 1,
     "sms": [[0, "1.01", 1717171717, "VK", "79281234567", "<base64 of the UTF-8 text>"]]}
        [0] 1 for a delivery report (ignored), [1] port.slot, [2] epoch seconds,
        [3] sender, [4] recipient (may be empty), [5] text; some firmware prefixes the text
        with "Sender: ...\\r\\nReceiver: ...\\r\\n...\\r\\n\\r\\n", which is taken off.
    {"type": "port-status", "port": "1.01", "st": "3 ...", "sn": "...", "iccid": "...", ...}
    {"type": "dev-status", "status": [<port-status fields>, ...]}
        st 3 (registered) or 4 (in call) is online; anything else takes the SIM off sale.

The answer is 200 only once every SMS of the batch is stored; otherwise 503 and the gateway's
cache sends the batch again. A push lost on the way is caught up by polling
GET /goip_get_sms.html?sms_id=<cursor> on the gateway (the cursor restarts when its `ssrc`
changes, i.e. after a reboot); the same SMS pushed and polled is stored once, by its key
(port, gateway time, sender and text).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import aiohttp
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simgate.domain.errors import DomainError
from simgate.domain.messages import IncomingMessage
from simgate.domain.types import PhoneNumber
from simgate.hardware.base import Background, Clock, Sink
from simgate.hardware.ejoin_wire import (
    PortState,
    SmsRow,
    header_recipient,
    port_name,
    port_states,
    sms_row,
    sms_rows,
    sms_text,
)
from simgate.hardware.feed import Feed
from simgate.hardware.health import Health
from simgate.hardware.settings_table import Table
from simgate.hardware.status import DriverStatus
from simgate.hardware.wire import Malformed
from simgate.http.body import BodyError, read_body
from simgate.services.phones import normalise_phone

__all__ = ["EjoinDevice", "EjoinDriver", "build", "port_name"]

log = logging.getLogger("simgate.hardware.ejoin")

MAX_BODY = 4 * 1_048_576
ONLINE_STATES = frozenset({3, 4})
"""Registered, and in a call: the SIM can receive. No SIM, registering, locked, no balance
and the rest cannot, and selling such a number costs a refund."""


@dataclass(frozen=True, slots=True)
class EjoinDevice:
    name: str
    token: str
    ports: dict[str, PhoneNumber]
    url: str | None = None
    username: str = ""
    password: str = ""
    pull_seconds: float = 0.0
    pull_batch: int = 50
    pull_pages: int = 20
    pull_max_age: float = 86400.0
    use_device_time: bool = True

    @classmethod
    def parse(cls, name: str, table: Table) -> EjoinDevice:
        token = table.required_string("token")
        ports = {port_name(port): phone for port, phone in table.phones("ports").items()}
        url = table.string("url")
        if url is not None and not url.startswith(("http://", "https://")):
            raise table.fail("url", "must be the gateway's http:// or https:// address")
        username = table.string("username", "") or ""
        password = table.string("password", "") or ""
        if url is not None and not (username and password):
            raise table.fail("username" if not username else "password", "required with url")
        device = cls(
            name=name,
            token=token,
            ports=ports,
            url=None if url is None else url.rstrip("/"),
            username=username,
            password=password,
            pull_seconds=table.number("pull_seconds", 60.0 if url else 0.0, 0.0, 86400.0),
            pull_batch=table.integer("pull_batch", 50, 1, 1000),
            pull_pages=table.integer("pull_pages", 20, 1, 1000),
            pull_max_age=table.number("pull_max_age", 86400.0, 60.0, 90 * 86400.0),
            use_device_time=table.boolean("use_device_time", True),
        )
        table.done()
        return device


@dataclass
class Cursor:
    ssrc: str | None = None
    next_id: int = 1


@dataclass
class Outcome:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)


class Transient(Exception):
    """The SMS could not be stored now; the gateway must send it again."""


class EjoinDriver:
    def __init__(self, devices: dict[str, EjoinDevice], sink: Sink, clock: Clock) -> None:
        self.devices = devices
        self.clock = clock
        self.health = {name: Health(f"ejoin:{name}", "ejoin", clock) for name in devices}
        self.sinks = {name: Feed(sink, self.health[name]) for name in devices}
        self.learnt: dict[tuple[str, str], PhoneNumber] = {}
        """(device, port) -> SIM number the gateway reported (`sn`), for unmapped ports."""
        self.cursors = {name: Cursor() for name in devices}
        for name, device in devices.items():
            for port, phone in device.ports.items():
                self.health[name].port(port, phone=phone)

    # -- HTTP push ---------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [Route("/intake/ejoin/{device}", self.endpoint, methods=["POST"])]

    def background(self) -> list[Background]:
        return [self.polling]

    def status(self) -> list[DriverStatus]:
        return [health.snapshot() for health in self.health.values()]

    async def endpoint(self, request: Request) -> Response:
        device = self.devices.get(request.path_params["device"])
        if device is None:
            return answer(404, "unknown device")
        health = self.health[device.name]
        if len(request.query_params.getlist("token")) > 1:
            health.error("push with the token given more than once")
            return answer(400, "token given more than once")
        supplied = request.query_params.get("token") or _bearer(request) or ""
        if not hmac.compare_digest(supplied.encode(), device.token.encode()):
            health.error("push with a wrong or missing token")
            return answer(401, "wrong or missing token (?token=TOKEN in the push URL)")
        try:
            body = await read_body(request, MAX_BODY)
        except BodyError as problem:
            return answer(problem.status, str(problem))
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError as problem:
            health.error(f"push is not JSON: {problem}")
            return answer(400, f"not JSON: {problem}")
        kind = payload.get("type") if isinstance(payload, dict) else None
        try:
            if not isinstance(payload, dict):
                raise Malformed("expected a JSON object")
            if not isinstance(kind, str):
                raise Malformed("type must be text: recv-sms, port-status or dev-status")
            rows = sms_rows(payload.get("sms")) if kind == "recv-sms" else []
            states = port_states(payload) if kind in ("port-status", "dev-status") else []
        except Malformed as problem:
            # Checked whole before anything is stored or applied: a 400 changes nothing.
            health.error(f"push refused: {problem}")
            return answer(400, str(problem))
        health.contact()
        if kind == "recv-sms":
            outcome = await self.store_parsed(device, rows, max_age=None)
            failed = outcome.failed > 0
            return JSONResponse(
                {
                    "code": 503 if failed else 0,
                    "reason": "; ".join(outcome.problems) if failed else "OK",
                    "stored": outcome.stored,
                    "duplicates": outcome.duplicates,
                    "rejected": outcome.rejected,
                },
                status_code=503 if failed else 200,
            )
        await self.port_states(device, states)
        return answer(200, "OK")

    def phone_for(self, device: EjoinDevice, port: str, recipient: str) -> PhoneNumber | None:
        phone = device.ports.get(port) or self.learnt.get((device.name, port))
        if phone is not None:
            return phone
        try:
            return normalise_phone(recipient) if recipient else None
        except DomainError:
            return None

    async def store_rows(self, device: EjoinDevice, rows: object, max_age: float | None) -> Outcome:
        """Store what the gateway's SMS list holds: a malformed entry is skipped (rejected),
        since the cursor must move past it; a push is checked whole instead (endpoint)."""
        parsed: list[SmsRow] = []
        rejected = 0
        for i, row in enumerate(rows if isinstance(rows, list) else []):
            try:
                parsed.append(sms_row(row, f"data[{i}]"))
            except Malformed as problem:
                self.health[device.name].error(f"SMS list entry skipped: {problem}")
                rejected += 1
        outcome = await self.store_parsed(device, parsed, max_age)
        outcome.rejected += rejected
        return outcome

    async def store_parsed(self, device: EjoinDevice, rows: list[SmsRow], max_age: float | None) -> Outcome:
        outcome = Outcome()
        health = self.health[device.name]
        now = self.clock()
        for row in rows:
            if row.report:
                continue  # a delivery report for an SMS the gateway sent
            if max_age is not None and row.stamp is not None and row.stamp < now - max_age:
                continue
            try:
                duplicate = await self.store_one(device, row)
            except Transient as problem:
                outcome.failed += 1
                outcome.problems.append(str(problem))
            except DomainError as problem:
                outcome.rejected += 1
                health.rejected += 1
                health.error(f"port {row.port}: SMS rejected: {problem}")
            else:
                if duplicate:
                    outcome.duplicates += 1
                else:
                    outcome.stored += 1
        return outcome

    async def store_one(self, device: EjoinDevice, row: SmsRow) -> bool:
        """Store one recv-sms entry; True if it was a resend."""
        port, stamp, sender, text = row.port, row.stamp, row.sender, sms_text(row.text)
        phone = self.phone_for(device, port, row.recipient or header_recipient(row.text))
        if phone is None:
            raise DomainError(
                f"no phone for port {port}: map it in [hardware.ejoin.devices.{device.name}.ports]"
            )
        digest = hashlib.sha256(f"{sender}\x1f{text}".encode()).hexdigest()[:20]
        incoming = IncomingMessage(
            phone=phone,
            sender=sender,
            text=text,
            source=f"ejoin:{device.name}",
            message_key=f"{port}/{'' if stamp is None else int(stamp)}/{digest}",
            received_at=stamp if device.use_device_time else None,
        )
        try:
            accepted = await self.sinks[device.name].accept(incoming)
        except DomainError:
            raise
        except Exception as problem:
            self.health[device.name].error(f"port {port}: SMS not stored yet: {problem}")
            raise Transient(f"port {port}: {problem}") from problem
        self.health[device.name].port(port, phone=phone, last_contact=self.clock())
        return accepted.duplicate

    async def port_states(self, device: EjoinDevice, states: list[PortState]) -> None:
        health = self.health[device.name]
        for state in states:
            port = state.port
            if state.number and port not in device.ports:
                with suppress(DomainError):
                    self.learnt[(device.name, port)] = normalise_phone(state.number)
            online = state.code in ONLINE_STATES and state.active
            phone = self.phone_for(device, port, "")
            health.port(
                port,
                phone=phone,
                online=online,
                signal=state.signal,
                registration=state.registration or None,
                iccid=state.iccid,
                imsi=state.imsi,
                last_contact=self.clock(),
            )
            if phone is None:
                continue
            try:
                if not await self.sinks[device.name].set_online(phone, online):
                    health.port(port, last_error=f"{phone} is not in the inventory")
            except Exception as problem:
                health.error(f"port {port}: cannot record online={online}: {problem}")

    # -- pull cursor -------------------------------------------------------------------------

    @asynccontextmanager
    async def polling(self) -> AsyncIterator[None]:
        pulled = [device for device in self.devices.values() if device.url and device.pull_seconds > 0]
        if not pulled:
            yield
            return
        timeout = aiohttp.ClientTimeout(total=15, connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks = [asyncio.create_task(self.poll_forever(session, device)) for device in pulled]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def poll_forever(self, session: aiohttp.ClientSession, device: EjoinDevice) -> None:
        while True:
            try:
                await self.poll(session, device)
            except asyncio.CancelledError:
                raise
            except Exception as problem:
                self.health[device.name].error(f"SMS query failed: {type(problem).__name__}: {problem}")
            await asyncio.sleep(device.pull_seconds)

    async def poll(self, session: aiohttp.ClientSession, device: EjoinDevice) -> int:
        """Read what the gateway holds past the cursor; returns how many SMS were stored.

        The cursor only moves past a page once all of it is stored, so a database outage
        makes the next poll read the same page again.
        """
        assert device.url is not None
        cursor, stored = self.cursors[device.name], 0
        for _ in range(device.pull_pages):
            params = {
                "username": device.username,
                "password": device.password,
                "sms_id": str(cursor.next_id),
                "sms_num": str(device.pull_batch),
                "sms_del": "0",  # never: the gateway keeps its copy until we hold ours
            }
            async with session.get(f"{device.url}/goip_get_sms.html", params=params) as reply:
                reply.raise_for_status()
                answer = msgspec.json.decode(await reply.read())
            if not isinstance(answer, dict) or answer.get("code") not in (0, 200, "0", "200"):
                reason = answer.get("reason") if isinstance(answer, dict) else answer
                raise RuntimeError(f"gateway answered {reason!r}")
            self.health[device.name].contact()
            ssrc = str(answer.get("ssrc", ""))
            if cursor.ssrc != ssrc:
                rebooted = cursor.ssrc is not None
                cursor.ssrc = ssrc
                if rebooted and cursor.next_id != 1:
                    cursor.next_id = 1  # its numbering restarted with the reboot
                    continue
            rows = answer.get("data")
            outcome = await self.store_rows(device, rows, max_age=device.pull_max_age)
            if outcome.failed:
                raise RuntimeError("; ".join(outcome.problems))
            stored += outcome.stored
            following = answer.get("next_sms")
            if not isinstance(rows, list) or not rows or not isinstance(following, int):
                break
            if following <= cursor.next_id:
                break
            cursor.next_id = following
        return stored


def answer(status: int, reason: str) -> Response:
    """The gateway's own envelope: `code` 0 for OK, else the HTTP status."""
    return JSONResponse({"code": 0 if status == 200 else status, "reason": reason}, status_code=status)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def build(table: Table, sink: Sink, clock: Clock) -> EjoinDriver:
    devices = {name: EjoinDevice.parse(name, sub) for name, sub in table.tables("devices").items()}
    table.done()
    if not devices:
        raise table.fail("devices", "configure at least one [hardware.ejoin.devices.<name>] table")
    return EjoinDriver(devices, sink, clock)
