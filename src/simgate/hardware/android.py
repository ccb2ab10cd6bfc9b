"""Android phones running capcom6's "SMS Gateway for Android", through its signed webhooks.

Register the webhook on the phone (or its cloud) for the event `sms:received` with the URL
`https://<simgate>/intake/android/<device>`. Each request carries

    X-Timestamp: 1717171717                       (Unix seconds)
    X-Signature: hex(HMAC-SHA256(signing key, raw body + X-Timestamp))

    {"deviceId": "...", "event": "sms:received", "id": "Ey6ECgOkVVFjz3CL48B8C",
     "payload": {"messageId": "abc123", "message": "Your code 1234",
                 "sender": "+79001112233", "recipient": "+79281234567",   (newer apps)
                 "phoneNumber": "+79001112233",                            (older apps)
                 "simNumber": 1, "receivedAt": "2024-06-22T15:46:11.000+07:00"},
     "webhookId": "..."}

A request whose signature does not verify, or whose timestamp is more than `max_skew`
seconds away from our clock (a replay), gets 401 and nothing is stored. The app retries any
non-2xx answer with a growing delay, so 503 (database unavailable) loses nothing; its retries
carry the same event `id`, which is the SMS's key here (the app's `messageId` is derived from
the content and two different SMS may share it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simgate.domain.errors import DomainError
from simgate.domain.messages import IncomingMessage, received_at_problem
from simgate.domain.types import PhoneNumber, Timestamp
from simgate.hardware.base import Background, Clock, Sink
from simgate.hardware.feed import Feed
from simgate.hardware.health import Health
from simgate.hardware.settings_table import Table
from simgate.hardware.status import DriverStatus
from simgate.hardware.wire import Malformed, kind, optional_text
from simgate.http.body import BodyError, read_body
from simgate.services.phones import normalise_phone

log = logging.getLogger("simgate.hardware.android")

MAX_BODY = 1_048_576
MAX_STAMP_DIGITS = 12
"""Unix seconds have 10 digits until 2286; int() of 4,300 digits raises (a 500 it was)."""


@dataclass(frozen=True, slots=True)
class AndroidDevice:
    name: str
    signing_key: str
    sims: dict[str, PhoneNumber]
    """simNumber (1, 2, ...) -> the number of the SIM in that slot."""
    phone: PhoneNumber | None = None
    """The number for every slot the `sims` table does not name (single-SIM phones)."""
    device_id: str | None = None
    max_skew: float = 300.0
    use_device_time: bool = True

    @classmethod
    def parse(cls, name: str, table: Table) -> AndroidDevice:
        device = cls(
            name=name,
            signing_key=table.required_string("signing_key"),
            sims=table.phones("sims"),
            phone=table.phone("phone"),
            device_id=table.string("device_id"),
            max_skew=table.number("max_skew", 300.0, 5.0, 86400.0),
            use_device_time=table.boolean("use_device_time", True),
        )
        table.done()
        return device


def signature(key: str, body: bytes, timestamp: str) -> str:
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def parse_time(value: object) -> Timestamp | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        # The app stamps the phone's local time; without its offset the instant is unknown.
        return None
    # timestamp(), not astimezone(UTC): year 1 at +23:59 is before year 1 in UTC (OverflowError).
    stamp = moment.timestamp()
    # Year 1 with an offset: a time, but not one a phone's clock says; as unknown as no time.
    return stamp if received_at_problem(stamp) is None else None


class AndroidDriver:
    def __init__(self, devices: dict[str, AndroidDevice], sink: Sink, clock: Clock) -> None:
        self.devices = devices
        self.clock = clock
        # A phone posts a webhook only when an SMS arrives: a quiet night is not a fault.
        self.health = {
            name: Health(f"android:{name}", "android", clock, reports_on_its_own=False) for name in devices
        }
        self.sinks = {name: Feed(sink, self.health[name]) for name in devices}
        for name, device in devices.items():
            for slot, phone in device.sims.items():
                self.health[name].port(f"sim{slot}", phone=phone)

    def routes(self) -> list[BaseRoute]:
        return [Route("/intake/android/{device}", self.endpoint, methods=["POST"])]

    def background(self) -> list[Background]:
        return []  # the phone calls us; there is nothing to poll

    def status(self) -> list[DriverStatus]:
        return [health.snapshot() for health in self.health.values()]

    def verify(self, device: AndroidDevice, request: Request, body: bytes) -> str | None:
        """None if the request is signed with the device's key and fresh; else the reason."""
        stamp = request.headers.get("x-timestamp", "").strip()
        supplied = request.headers.get("x-signature", "").strip().lower()
        if not stamp or not supplied:
            return "X-Signature and X-Timestamp are required"
        # ASCII only: '²' (a latin-1 header byte) is a digit to isdigit() and not to int().
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_STAMP_DIGITS):
            return "X-Timestamp must be Unix seconds"
        if abs(self.clock() - int(stamp)) > device.max_skew:
            return f"X-Timestamp is more than {device.max_skew:g} s away from our clock"
        if not hmac.compare_digest(supplied.encode(), signature(device.signing_key, body, stamp).encode()):
            return "signature does not match"
        return None

    async def endpoint(self, request: Request) -> Response:
        device = self.devices.get(request.path_params["device"])
        if device is None:
            return JSONResponse({"error": "unknown device"}, status_code=404)
        health = self.health[device.name]
        try:
            body = await read_body(request, MAX_BODY)
        except BodyError as unreadable:
            return JSONResponse({"error": str(unreadable)}, status_code=unreadable.status)
        problem = self.verify(device, request, body)
        if problem is not None:
            health.error(f"webhook refused: {problem}")
            return JSONResponse({"error": problem}, status_code=401)
        try:
            envelope = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            return JSONResponse({"error": f"not JSON: {error}"}, status_code=400)
        if not isinstance(envelope, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        if device.device_id and envelope.get("deviceId") != device.device_id:
            sent = str(envelope.get("deviceId"))[:40]
            health.error(f"webhook from device {sent!r}, expected {device.device_id!r}")
            return JSONResponse({"error": "deviceId does not match"}, status_code=403)
        try:
            event = optional_text(envelope.get("event"), "event")
            sms = None if event != "sms:received" else received_sms(envelope)
        except Malformed as problem:
            health.error(f"webhook refused: {problem}")
            return JSONResponse({"error": str(problem)}, status_code=400)
        health.contact()
        if sms is None:
            return JSONResponse({"status": "ignored", "event": event})
        return await self.receive(device, sms)

    def phone_for(self, device: AndroidDevice, sms: ReceivedSms) -> PhoneNumber | None:
        if sms.slot is not None and sms.slot in device.sims:
            return device.sims[sms.slot]
        if device.phone is not None:
            return device.phone
        if sms.recipient:
            try:
                return normalise_phone(sms.recipient)
            except DomainError:
                return None  # masked or local-format: the config must name the slot
        return None

    async def receive(self, device: AndroidDevice, sms: ReceivedSms) -> Response:
        health = self.health[device.name]
        slot = f"sim{sms.slot or 1}"
        phone = self.phone_for(device, sms)
        if phone is None:
            health.rejected += 1
            health.error(f"{slot}: no phone number; set [hardware.android.devices.{device.name}.sims]")
            return JSONResponse({"error": f"no phone number configured for {slot}"}, status_code=422)
        received_at = parse_time(sms.received_at)
        if sms.event_id:
            key = f"event:{sms.event_id}"
        elif sms.message_id:
            key = f"message:{sms.message_id}:{sms.received_at or ''}"
        else:
            key = None
        incoming = IncomingMessage(
            phone=phone,
            sender=sms.sender,
            text=sms.text,
            source=f"android:{device.name}",
            message_key=key,
            received_at=received_at if device.use_device_time else None,
        )
        try:
            accepted = await self.sinks[device.name].accept(incoming)
        except DomainError as problem:
            health.rejected += 1
            health.error(f"{slot}: SMS rejected: {problem}")
            return JSONResponse({"error": str(problem)}, status_code=422)
        except Exception as problem:
            health.error(f"{slot}: SMS not stored yet: {problem}")
            return JSONResponse({"error": "not stored, send again"}, status_code=503)
        health.port(slot, phone=phone, online=True, last_contact=self.clock())
        message = accepted.message
        return JSONResponse(
            {"id": message.id, "operation_id": message.operation_id, "duplicate": accepted.duplicate},
            status_code=200 if accepted.duplicate else 202,
        )


@dataclass(frozen=True, slots=True)
class ReceivedSms:
    """An sms:received event's fields, each of the type the app sends."""

    event_id: str | None
    message_id: str | None
    text: str
    sender: str
    recipient: str | None
    slot: str | None
    """simNumber as text ("1", "2"): the keys of the `sims` table."""
    received_at: str | None


def identifier(value: object, where: str) -> str | None:
    """An id the app writes as text (a number is taken too): never an object made into text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return optional_text(value, where)


def sim_slot(value: object) -> str | None:
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 2):
        raise Malformed(f"payload.simNumber must be a SIM slot number (1, 2, ...), not {kind(value)}")
    return str(int(text))


def received_sms(envelope: dict[str, Any]) -> ReceivedSms:
    """The SMS an sms:received event carries, every field checked before anything is stored:
    an object where the text should be was stored as its Python text."""
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise Malformed(f"payload must be an object, not {kind(payload)}")
    text = optional_text(payload.get("message"), "payload.message")
    if text is None and isinstance(payload.get("textMessage"), dict):
        text = optional_text(payload["textMessage"].get("text"), "payload.textMessage.text")
    sender = optional_text(payload.get("sender"), "payload.sender")
    old_sender = optional_text(payload.get("phoneNumber"), "payload.phoneNumber")
    return ReceivedSms(
        event_id=identifier(envelope.get("id"), "id"),
        message_id=identifier(payload.get("messageId"), "payload.messageId"),
        text=text or "",
        sender=sender or old_sender or "",
        recipient=optional_text(payload.get("recipient"), "payload.recipient"),
        slot=sim_slot(payload.get("simNumber")),
        received_at=optional_text(payload.get("receivedAt"), "payload.receivedAt"),
    )


def build(table: Table, sink: Sink, clock: Clock) -> AndroidDriver:
    devices = {name: AndroidDevice.parse(name, sub) for name, sub in table.tables("devices").items()}
    table.done()
    if not devices:
        raise table.fail("devices", "configure at least one [hardware.android.devices.<name>] table")
    return AndroidDriver(devices, sink, clock)
