"""POST /intake/sms (CONTRACT.md): store the SMS durably, then answer."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from simgate.domain.errors import DomainError
from simgate.domain.messages import MAX_CLOCK_SKEW_SECONDS, IncomingMessage
from simgate.domain.types import Timestamp
from simgate.services.intake import Accepted, UnknownNumber, accept_sms
from simgate.services.phones import normalise_phone
from simgate.storage.ports import Store


class IntakeBody(msgspec.Struct, kw_only=True):
    phone: str | int
    sender: str
    text: str
    received_at: str | float | None = None
    message_id: str | int | None = None


_decode = msgspec.json.Decoder(IntakeBody).decode

Reply = tuple[int, dict[str, object]]


def parse_time(value: str | float | None) -> Timestamp | None:
    """ISO 8601 (a missing offset means UTC) or seconds since the epoch."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise DomainError(f"received_at {value!r} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Intake:
    def __init__(
        self,
        store: Store,
        token: str | None,
        clock: Callable[[], Timestamp],
        on_accepted: Callable[[], None] = lambda: None,
        max_skew: float = MAX_CLOCK_SKEW_SECONDS,
    ) -> None:
        self.store, self.token, self.clock = store, token, clock
        self.on_accepted = on_accepted
        self.max_skew = max_skew

    def authorised(self, supplied: str | None) -> bool:
        return bool(self.token and supplied) and hmac.compare_digest(
            (supplied or "").encode(), (self.token or "").encode()
        )

    async def handle(self, body: bytes, bearer: str | None) -> Reply:
        if not self.token:
            return 503, {"error": "SMS intake is off: SIMGATE_INTAKE_TOKEN is not set"}
        if not self.authorised(bearer):
            return 401, {"error": "wrong or missing bearer token"}
        try:
            request = _decode(body)
        except msgspec.DecodeError as problem:
            return 400, {"error": f"malformed request: {problem}"}
        try:
            incoming = IncomingMessage(
                phone=normalise_phone(str(request.phone)),
                sender=request.sender,
                text=request.text,
                source="http",
                message_key=None if request.message_id is None else str(request.message_id),
                received_at=parse_time(request.received_at),
            )
            now = self.clock()
            skew = self.max_skew
            accepted: Accepted = await self.store.transact(lambda uow: accept_sms(uow, incoming, now, skew))
        except UnknownNumber as problem:
            return 422, {"error": str(problem)}
        except DomainError as problem:
            return 400, {"error": str(problem)}
        message = accepted.message
        answer = {"id": message.id, "operation_id": message.operation_id}
        if accepted.duplicate:
            return 200, {**answer, "duplicate": True}
        if message.operation_id is not None:
            self.on_accepted()
        return 202, {**answer, "duplicate": False}
