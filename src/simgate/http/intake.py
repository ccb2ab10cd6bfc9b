"""POST /intake/sms (CONTRACT.md): store the SMS durably, then answer."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import msgspec

from simgate.domain.errors import DomainError
from simgate.domain.messages import IncomingMessage
from simgate.domain.types import Timestamp
from simgate.hardware.base import Background, Sink
from simgate.hardware.feed import Feed
from simgate.hardware.health import Health
from simgate.hardware.status import DriverStatus
from simgate.services.explain import plain
from simgate.services.intake import UnknownNumber
from simgate.services.phones import normalise_phone, shown

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


class IntakeBody(msgspec.Struct, kw_only=True):
    # A negative number was stored: its '-' reads as a separator in "7928-123-4567".
    phone: str | Annotated[int, msgspec.Meta(ge=0)]
    sender: str
    text: str
    received_at: str | float | None = None
    message_id: str | int | None = None


_decode = msgspec.json.Decoder(IntakeBody).decode

Reply = tuple[int, dict[str, object]]
REFUSED = "wrong or missing bearer token (Authorization: Bearer $SIMGATE_INTAKE_TOKEN)"
"""Says where the token goes: a script that puts it in the query or the body learns why."""


def parse_time(value: str | float | None) -> Timestamp | None:
    """ISO 8601 (a missing offset means UTC) or seconds since the epoch."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise DomainError(f"received_at {shown(value)!r} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Intake:
    """POST /intake/sms as one more SMS source: `http` on the Hardware page.

    It feeds the same Sink as the hardware drivers. The app mounts the route itself (the
    body limit is the app's), so `routes()` is empty; the source shows only while the intake
    token is set, since without it every request is refused.
    """

    def __init__(self, sink: Sink, token: str | None, clock: Callable[[], Timestamp]) -> None:
        self.token = token
        # gammu-smsd and scripts post only when an SMS arrives: silence is no fault here.
        self.health = Health("http", "http", clock, reports_on_its_own=False)
        self.feed = Feed(sink, self.health)

    def routes(self) -> list[BaseRoute]:
        return []

    def background(self) -> list[Background]:
        return []

    def status(self) -> list[DriverStatus]:
        return [self.health.snapshot()] if self.token else []

    def authorised(self, supplied: str | None) -> bool:
        return bool(self.token and supplied) and hmac.compare_digest(
            (supplied or "").encode(), (self.token or "").encode()
        )

    async def handle(self, body: bytes, bearer: str | None) -> Reply:
        if not self.token:
            return 503, {"error": "SMS intake is off: SIMGATE_INTAKE_TOKEN is not set"}
        if not self.authorised(bearer):
            self.health.error("wrong or missing bearer token")
            return 401, {"error": REFUSED}
        try:
            request = _decode(body)
        except msgspec.DecodeError as problem:
            return 400, {"error": f"malformed request: {plain(problem)}"}
        try:
            incoming = IncomingMessage(
                phone=normalise_phone(str(request.phone)),
                sender=request.sender,
                text=request.text,
                source="http",
                message_key=None if request.message_id is None else str(request.message_id),
                received_at=parse_time(request.received_at),
            )
            accepted = await self.feed.accept(incoming)
        except DomainError as problem:
            self.health.rejected += 1
            self.health.error(f"SMS rejected: {problem}")
            return 422 if isinstance(problem, UnknownNumber) else 400, {"error": str(problem)}
        message = accepted.message
        answer = {"id": message.id, "operation_id": message.operation_id}
        if accepted.duplicate:
            return 200, {**answer, "duplicate": True}
        return 202, {**answer, "duplicate": False}
