"""PUSH_SMS on the agent protocol (spec 5.4): one push per SMS, delivered only on a body
SUCCESS, retried on anything else, with no final codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from simgate.domain.messages import DueDelivery, Horizon, PushReply, PushRequest, Verdict

HORIZON = Horizon(activation_window=24 * 3600.0, rent_window=24 * 3600.0)
"""The protocol never says stop and states no activation lifetime (HUB alone closes it), so
a failing push is retried for a day, or until 2 minutes after HUB's FINISH (spec 5.4)."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Any).decode


@dataclass(frozen=True)
class AgentPush:
    url: str
    key: str
    user_agent: str

    def request(self, item: DueDelivery) -> PushRequest:
        payload = {
            "action": "PUSH_SMS",
            "key": self.key,
            # The SMS's own id, the same on every retry: HUB deduplicates on it, and several
            # SMS of one activation get different ids (spec 5.4, unlike Onlinesim's).
            "smsId": item.message_id,
            "phone": int(item.phone),
            "phoneFrom": item.sender,
            "text": item.text,
        }
        return PushRequest(
            url=self.url,
            body=_encode(payload),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": self.user_agent,
                "Accept-Encoding": "gzip",
            },
        )

    def verdict(self, reply: PushReply) -> tuple[Verdict, str | None]:
        """Delivered only when the body says SUCCESS; a timeout, an error page, ERROR or
        anything else is tried again (a push sent again after SUCCESS fails test 2)."""
        if reply.error is not None:
            return Verdict.RETRY, None
        try:
            answer = _decode(reply.body)
        except msgspec.DecodeError:
            return Verdict.RETRY, None
        if isinstance(answer, dict) and answer.get("status") == "SUCCESS":
            return Verdict.DELIVERED, None
        return Verdict.RETRY, None
