"""The simulated marketplace's PUSH_SMS endpoint, on loopback.

Each push is validated strictly (what a partner must send), matched to the operation it
belongs to, checked for duplicates and for closed or unknown operations, and answered:

- Onlinesim (spec 5.4, 6.4): SUCCESS for the service's SMS, IGNORED for another service's,
  BAD_SERVICE for a bank's SMS on a rent, NO_OPERATION when we hold no operation.
- The agent protocol (spec smshub-agent 5.4): SUCCESS for every SMS (the marketplace filters
  on its side); `smsId` names the SMS, so it must be the same on every retry and never come
  again once answered SUCCESS.

Now and then a push is refused on purpose (a 500, or an agent-protocol ERROR), so the
partner must retry it, and only it.
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
from simgate.simulator.findings import Report
from simgate.simulator.ledger import Ledger, MarketOp, Push
from simgate.simulator.market_config import MarketplaceConfig

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
        self.agent = config.protocol == "agent"
        self.event = asyncio.Event()
        """Set on every push received (for whoever waits for pushes to settle)."""
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=1_048_576)
        if self.agent:
            app.router.add_post(self.config.push_path, self._push_activation)
            if self.config.ping_path is not None:
                app.router.add_get(self.config.ping_path, self._ping)
        else:
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
        """What simgate needs as the push URL: Onlinesim's base URL, or the agent
        protocol's full URL (SIMGATE_SMSHUB_PUSH_URL)."""
        base = f"http://{self.config.push_host}:{self._port}"
        return base + self.config.push_path if self.agent else base

    async def _push_activation(self, request: web.Request) -> web.Response:
        return await self._push(request, rent_path=False)

    async def _push_rent(self, request: web.Request) -> web.Response:
        return await self._push(request, rent_path=True)

    async def _ping(self, request: web.Request) -> web.Response:
        """HeroSMS's health check (spec herosms 5.5): a GET with no body and no key, and the
        User-Agent every request to the marketplace carries."""
        self.report.counts["ping.received"] += 1
        check = self.report.check("pings_well_formed")
        problems = [] if request.headers.get("User-Agent") else ["no User-Agent"]
        if await request.read():
            problems.append("a body")
        if problems:
            check.fail(f"ping: {'; '.join(problems)}")
        else:
            check.ok()
        return _answer(200, "SUCCESS")

    async def _push_elsewhere(self, request: web.Request) -> web.Response:
        self.report.check("pushes_well_formed").fail(f"{request.method} {request.path}: not a push endpoint")
        return _answer(404, "ERROR", "no such endpoint")

    async def _push(self, request: web.Request, *, rent_path: bool) -> web.Response:
        arrived = time.monotonic()
        counts = self.report.counts
        counts["push.received"] += 1
        raw = await request.read()
        if self.agent:
            payload, problems = validate_agent_push(raw, request.headers, self.config.key)
        else:
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
        if self.agent:
            self._judge_sms_id(sms_id, key)
            if first is None and sms_id in self.ledger.acknowledged:
                first = "SUCCESS"
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
                if self.agent:
                    self.ledger.acknowledged.add(sms_id)
        stray = self.report.check("no_push_for_closed_or_unknown")
        if op is None:
            stray.fail(f"push for {phone} (smsId {sms_id}): no operation of ours")
        elif first is None:
            stray.ok()
        if op is not None:
            op.pushes += 1
            if answer == "SUCCESS" and op.code_at is None and self._is_code(op, sender, text):
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
            # The agent protocol retries on anything but a body SUCCESS: try both failures.
            if self.agent and self.rng.random() < 0.5:
                return _answer(200, "ERROR", "temporarily unavailable")
            return _answer(500, "ERROR", "temporarily unavailable")
        return _answer(200, answer)

    def _judge_sms_id(self, sms_id: object, key: tuple[object, str]) -> None:
        """Agent protocol: one smsId per SMS, the same on every retry (spec smshub-agent 5.4)."""
        check = self.report.check("sms_id_stable")
        ledger = self.ledger
        before = ledger.first_sms_id.setdefault(key, sms_id)
        owner = ledger.sms_ids.setdefault(sms_id, key)
        if before != sms_id:
            check.fail(f"{key[0]}: {key[1][:30]!r} came again with smsId {sms_id}, first {before}")
        elif owner != key:
            check.fail(f"smsId {sms_id} used for {key[1][:30]!r} and before for {owner[1][:30]!r}")
        else:
            check.ok()

    def _is_code(self, op: MarketOp, sender: str, text: str) -> bool:
        """On the agent protocol every SMS is acknowledged; the buyer still waits for its own."""
        if not self.agent or op.kind == "rent":
            return True
        return texts.belongs_to(op.canonical or op.service or "", sender, text)

    def _operation_for(self, sms_id: object, phone: str) -> MarketOp | None:
        # Onlinesim's smsId is the operation's id (spec 5.4); the agent protocol's names the SMS.
        if type(sms_id) is int and not self.agent:
            op = self.ledger.ops.get(sms_id)
            if op is not None and op.phone == phone:
                return op
        return self.ledger.last_on(phone)

    def _answer_for(self, op: MarketOp | None, sender: str, text: str) -> str:
        if op is None or not op.held:
            # The agent protocol has no word for this (spec smshub-agent 10.9); SUCCESS ends
            # the partner's retries, and the push is judged a stray all the same.
            return "SUCCESS" if self.agent else "NO_OPERATION"
        if self.rng.random() < self.config.p_push_failure:
            return "RETRY"
        if self.agent:
            return "SUCCESS"
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
    payload, problems = _validate_common(raw, headers, key)
    if payload is None:
        return None, problems
    phone = payload.get("phone")
    if not isinstance(phone, str):
        problems.append(f"phone {phone!r} is not a string" if "phone" in payload else "missing phone")
    elif not (phone.isascii() and phone.isdigit() and 8 <= len(phone) <= 15):
        problems.append(f"phone {phone!r} is not digits with the country code")
    service = payload.get("service")
    is_rent = isinstance(service, str) and service.lower() == "rent"
    if rent_path and not is_rent:
        problems.append(f"service {service!r} on the rent URL (want 'rent')")
    if not rent_path and is_rent:
        problems.append("a rent push on the activation URL")
    return payload, problems


def validate_agent_push(
    raw: bytes, headers: Mapping[str, str], key: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """The agent protocol's PUSH_SMS (spec smshub-agent 5.4): `phone` a JSON number with the
    country code, `smsId` a JSON number (acceptance tests 3 and 4), a User-Agent."""
    payload, problems = _validate_common(raw, headers, key)
    if payload is None:
        return None, problems
    phone = payload.get("phone")
    if type(phone) is not int:
        problems.append(f"phone {phone!r} is not a JSON number" if "phone" in payload else "missing phone")
    elif not 8 <= len(str(phone)) <= 15:
        problems.append(f"phone {phone} is not a number with the country code")
    return payload, problems


def _validate_common(
    raw: bytes, headers: Mapping[str, str], key: str
) -> tuple[dict[str, Any] | None, list[str]]:
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
    for name in ("phoneFrom", "text"):
        value = payload.get(name)
        if not isinstance(value, str) or not value:
            problems.append(
                f"{name} {value!r} is not a non-empty string" if name in payload else f"missing {name}"
            )
    return payload, problems
