"""PUSH_SMS to Onlinesim (spec 5.4 and 6.4): the payload, and what the answer means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from simgate import __version__
from simgate.domain.messages import DueDelivery, PushReply, PushRequest, Verdict
from simgate.domain.model import OperationKind

FINAL_CODES = frozenset({"NO_OPERATION", "NO_OP", "BAD_SERVICE", "IGNORED", "SERVICE_BAN"})
"""Answers that resending cannot change. The spec excludes NO_OPERATION and BAD_SERVICE
from retries; IGNORED (OS judged and discarded the SMS) and SERVICE_BAN (our own blacklist)
are final for the same reason, though the spec is silent on them."""

SmsIdMode = Literal["operation", "message"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(frozen=True)
class OnlinesimPush:
    base_url: str
    key: str
    path: str = "/v1/PUSH_SMS"
    rent_path: str = "/v1/PUSH_SMS_RENT"
    sms_id: SmsIdMode = "operation"
    """Onlinesim labels smsId 'operation ID assigned by your server' (spec 5.4), so by
    default every SMS of one operation carries its activationId; 'message' sends our SMS
    id instead, as SMSHUB does (spec open question 9)."""

    def request(self, item: DueDelivery) -> PushRequest:
        rent = item.kind is OperationKind.RENT
        payload: dict[str, Any] = {
            "action": "PUSH_SMS",
            "key": self.key,
            "smsId": item.operation_id if self.sms_id == "operation" else item.message_id,
            # A string: the current OpenAPI page types `phone` as string (legacy: integer).
            "phone": item.phone,
            "phoneFrom": item.sender,
            "text": item.text,
        }
        if rent:
            payload["service"] = "rent"
        return PushRequest(
            url=self.base_url + (self.rent_path if rent else self.path),
            body=_encode(payload),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Authorization": f"Bearer {self.key}",
                "User-Agent": f"simgate/{__version__}",
            },
        )

    def verdict(self, reply: PushReply) -> tuple[Verdict, str | None]:
        """Delivered on HTTP 200 unless the body says otherwise; final codes are never retried."""
        if reply.error is not None or reply.status is None:
            return Verdict.RETRY, None
        code = answer_code(reply.body)
        if code in FINAL_CODES:
            return Verdict.REJECTED, code
        if reply.status == 200 and code in (None, "SUCCESS"):
            return Verdict.DELIVERED, None
        return Verdict.RETRY, None


def answer_code(body: bytes) -> str | None:
    """The status word of an answer, wherever a variant of the docs puts it.

    A final code wins over a generic one: the v1 error envelope
    `{"status":"ERROR","error":"NO_OPERATION"}` is a NO_OPERATION, not a retryable ERROR.
    """
    try:
        data = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    words = [
        value.strip().upper()
        for field in ("status", "response", "error", "code")
        if isinstance(value := data.get(field), str) and value.strip()
    ]
    return next((word for word in words if word in FINAL_CODES), words[0] if words else None)
