"""The simulated marketplace's PUSH_SMS endpoints, on loopback (spec 5.4, 6.4).

Each push is validated strictly (what a partner must send), matched to the operation it
belongs to, checked for duplicates and for closed or unknown operations, and answered the
way Onlinesim answers: SUCCESS for the service's SMS, IGNORED for another service's,
BAD_SERVICE for a bank's SMS on a rent, NO_OPERATION when we hold no operation; now and
then a 500 on purpose, so the partner must retry that push (and only that one).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from simgate.simulator import texts
from simgate.simulator.ledger import Ledger, MarketOp, Push
from simgate.simulator.market_config import MarketplaceConfig
from simgate.simulator.report import Report

FINAL_ANSWERS = frozenset({"SUCCESS", "NO_OPERATION", "IGNORED", "BAD_SERVICE"})
"""Push answers after which a partner must never send the same SMS again (spec 5.4)."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class PushReceiver:
    """`await receiver.start()`, then simgate pushes to `receiver.url`; `await receiver.stop()`."""

    def __init__(self, config: MarketplaceConfig, ledger: Ledger, report: Report, rng: random.Random) -> None:
        self.config = config
        self.ledger = ledger
        self.report = report
        self.rng = rng
        self.event = asyncio.Event()
        """Set on every push received (for whoever waits for pushes to settle)."""
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=1_048_576)
        app.router.add_post("/v1/PUSH_SMS", self._push_activation)
        app.router.add_post("/v1/PUSH_SMS_RENT", self._push_rent)
        app.router.add_post("/pushSmsRent", self._push_rent)
        app.router.add_route("*", "/{tail:.*}", self._push_elsewhere)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.push_host, self.config.push_port)
        await site.start()
        addresses = self._runner.addresses
        self._port = int(addresses[0][1]) if addresses else self.config.push_port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        """What simgate needs as SIMGATE_ONLINESIM_PUSH_URL."""
        return f"http://{self.config.push_host}:{self._port}"

    async def _push_activation(self, request: web.Request) -> web.Response:
        return await self._push(request, rent_path=False)

    async def _push_rent(self, request: web.Request) -> web.Response:
        return await self._push(request, rent_path=True)

    async def _push_elsewhere(self, request: web.Request) -> web.Response:
        self.report.check("pushes_well_formed").fail(f"{request.method} {request.path}: not a push endpoint")
        return _answer(404, "ERROR", "no such endpoint")

    async def _push(self, request: web.Request, *, rent_path: bool) -> web.Response:
        arrived = time.monotonic()
        counts = self.report.counts
        counts["push.received"] += 1
        raw = await request.read()
        payload, problems = validate_push(raw, request.headers, self.config.key, rent_path=rent_path)
        well_formed = self.report.check("pushes_well_formed")
        if payload is None or problems:
            well_formed.fail(f"{'rent ' if rent_path else ''}push: {'; '.join(problems)} | {raw[:160]!r}")
            counts["push.malformed"] += 1
            return _answer(400, "ERROR", "; ".join(problems))
        phone, text, sender = str(payload["phone"]), str(payload["text"]), str(payload["phoneFrom"])
        sms_id = payload.get("smsId")
        op = self._operation_for(sms_id, phone)
        if op is not None and (op.kind == "rent") != rent_path:
            well_formed.fail(
                f"push for {op.kind} {op.id} sent to the {'rent' if rent_path else 'activation'} URL"
            )
            return _answer(400, "ERROR", "wrong endpoint for this operation")
        well_formed.ok()
        key: tuple[object, str] = (op.id if op is not None else phone, text)
        duplicate = self.report.check("no_duplicate_push")
        first = self.ledger.final_answers.get(key)
        if first is not None:
            duplicate.fail(f"{op.id if op else phone}: {text[:40]!r} pushed again after {first}")
            answer = first
        else:
            duplicate.ok()
            answer = self._answer_for(op, sender, text)
            if answer == "RETRY":
                counts["push.failed_on_purpose"] += 1
            else:
                self.ledger.final_answers[key] = answer
        stray = self.report.check("no_push_for_closed_or_unknown")
        if op is None:
            stray.fail(f"push for {phone} (smsId {sms_id}): no operation of ours")
        elif first is None:
            stray.ok()
        if op is not None:
            op.pushes += 1
            if answer == "SUCCESS" and op.code_at is None:
                op.code_at = arrived
                op.code_event.set()
        if len(self.ledger.pushes) < self.config.max_pushes_kept:
            self.ledger.pushes.append(
                Push(arrived, rent_path, op.id if op else None, sms_id, phone, sender, text, answer)
            )
        if answer != "RETRY":
            counts[f"push.{answer.lower()}"] += 1
        self.event.set()
        if answer == "RETRY":
            return _answer(500, "ERROR", "temporarily unavailable")
        return _answer(200, answer)

    def _operation_for(self, sms_id: object, phone: str) -> MarketOp | None:
        # Onlinesim's smsId is the operation's id (spec 5.4).
        if type(sms_id) is int:
            op = self.ledger.ops.get(sms_id)
            if op is not None and op.phone == phone:
                return op
        return self.ledger.last_on(phone)

    def _answer_for(self, op: MarketOp | None, sender: str, text: str) -> str:
        if op is None or not op.held:
            return "NO_OPERATION"
        if self.rng.random() < self.config.p_push_failure:
            return "RETRY"
        if op.kind == "rent":
            return "BAD_SERVICE" if sender.strip().lower() in texts.BLOCKED_SENDERS else "SUCCESS"
        assert op.service is not None
        return "SUCCESS" if texts.belongs_to(op.service, sender, text) else "IGNORED"


def _answer(status: int, word: str, error: str | None = None) -> web.Response:
    body: dict[str, str] = {"status": word}
    if error:
        body["error"] = error
    return web.Response(status=status, body=_encode(body), content_type="application/json", charset="utf-8")


def validate_push(
    raw: bytes, headers: Mapping[str, str], key: str, *, rent_path: bool
) -> tuple[dict[str, Any] | None, list[str]]:
    """The PUSH_SMS payload of spec 5.4/6.4, strictly: what a partner must send."""
    problems: list[str] = []
    content_type = str(headers.get("Content-Type", ""))
    if "application/json" not in content_type.lower():
        problems.append(f"Content-Type {content_type!r}")
    if not headers.get("User-Agent"):
        problems.append("no User-Agent")
    authorization = headers.get("Authorization")
    if authorization is not None and authorization != f"Bearer {key}":
        problems.append("wrong Authorization header")
    try:
        payload = _decode(raw)
    except msgspec.DecodeError:
        return None, [*problems, "body is not JSON"]
    if not isinstance(payload, dict):
        return None, [*problems, "body is not a JSON object"]
    if payload.get("action") != "PUSH_SMS":
        problems.append(f"action {payload.get('action')!r}")
    if payload.get("key") != key:
        problems.append("wrong key" if "key" in payload else "missing key")
    sms_id = payload.get("smsId")
    if type(sms_id) is not int or sms_id < 1:
        problems.append(f"smsId {sms_id!r} is not an integer >= 1")
    phone = payload.get("phone")
    if not isinstance(phone, str):
        problems.append(f"phone {phone!r} is not a string" if "phone" in payload else "missing phone")
    elif not (phone.isascii() and phone.isdigit() and 8 <= len(phone) <= 15):
        problems.append(f"phone {phone!r} is not digits with the country code")
    for name in ("phoneFrom", "text"):
        value = payload.get(name)
        if not isinstance(value, str) or not value:
            problems.append(
                f"{name} {value!r} is not a non-empty string" if name in payload else f"missing {name}"
            )
    service = payload.get("service")
    is_rent = isinstance(service, str) and service.lower() == "rent"
    if rent_path and not is_rent:
        problems.append(f"service {service!r} on the rent URL (want 'rent')")
    if not rent_path and is_rent:
        problems.append("a rent push on the activation URL")
    return payload, problems
