"""A fake partner that speaks the agent protocol (spec smshub-agent), for the simulator's tests.

Small and honest by default: it counts its free numbers per operator, issues one, refuses
excluded prefixes, answers FINISH (repeats included) and pushes a code SMS for every number
it issues, retrying until SUCCESS. Each `Sabotage` flag breaks one rule, so a test can show
the simulator's check for that rule catches it. Not simgate: the simulator's own tests must
not depend on the server it judges.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from simgate.simulator import texts
from simgate.simulator.farm import SimCard
from simgate.simulator.protocol import AGENT_NAMES


@dataclass
class Sabotage:
    phone_as_string: bool = False
    new_sms_id_on_retry: bool = False
    push_again_after_success: bool = False
    any_beside_named: bool = False
    over_report: int = 0


@dataclass
class AgentPartner:
    cards: list[SimCard]
    key: str
    push_url: str = ""
    sabotage: Sabotage = field(default_factory=Sabotage)
    services: tuple[str, ...] = ("tg", "wa", "vk")
    orders: list[dict[str, Any]] = field(default_factory=list)
    finishes: list[dict[str, Any]] = field(default_factory=list)
    busy: dict[str, int] = field(default_factory=dict)
    ops: dict[int, tuple[str, str]] = field(default_factory=dict)
    gone: set[tuple[str, str]] = field(default_factory=set)
    cancels: Counter[tuple[str, str]] = field(default_factory=Counter)
    _next_id: int = 100
    _next_sms: int = 1
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/smshub", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("key") != self.key:
            return web.json_response({"status": "ERROR", "error": "bad key"})
        action = body.get("action")
        if action == "GET_SERVICES":
            return web.json_response({"status": "SUCCESS", "countryList": self._count()})
        if action == "GET_NUMBER":
            self.orders.append(body)
            return web.json_response(self._issue(body))
        if action == "FINISH_ACTIVATION":
            self.finishes.append(body)
            op = self.ops.get(body.get("activationId", 0))
            if op is None:
                return web.json_response({"status": "ERROR", "error": "unknown activation"})
            if self.busy.get(op[0]) == body["activationId"]:
                del self.busy[op[0]]
                if body["status"] in (1, 3):
                    self.gone.add(op)
                elif body["status"] == 4:
                    self.cancels[op] += 1
            return web.json_response({"status": "SUCCESS"})
        return web.json_response({"status": "ERROR", "error": f"unknown action {action}"})

    def _count(self) -> list[dict[str, Any]]:
        countries: dict[str, dict[str, dict[str, int]]] = {}
        for card in self.cards:
            if card.phone in self.busy or not card.operator:
                continue
            operators = countries.setdefault(card.country, {})
            counts = operators.setdefault(card.operator, dict.fromkeys(self.services, 0))
            for service in self.services:
                counts[service] += self._sellable(card.phone, service)
        for operators in countries.values():
            for counts in operators.values():
                for service in counts:
                    counts[service] += self.sabotage.over_report
            if self.sabotage.any_beside_named:
                operators["any"] = dict.fromkeys(self.services, 1)
        return [{"country": c, "operatorMap": ops} for c, ops in countries.items()]

    def _sellable(self, phone: str, service: str) -> bool:
        return (phone, service) not in self.gone and self.cancels[(phone, service)] < 4

    def _issue(self, order: dict[str, Any]) -> dict[str, Any]:
        prefixes = [str(p) for p in order.get("exceptionPhoneSet") or ()]
        for card in self.cards:
            if card.phone in self.busy or card.country != order["country"] or not card.operator:
                continue
            if order["operator"] not in ("any", card.operator):
                continue
            if not self._sellable(card.phone, order["service"]):
                continue
            if any(card.phone.startswith(p) for p in prefixes):
                continue
            self._next_id += 1
            self.busy[card.phone] = self._next_id
            self.ops[self._next_id] = (card.phone, order["service"])
            task = asyncio.create_task(self._push_code(card.phone, order["service"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return {"status": "SUCCESS", "number": int(card.phone), "activationId": self._next_id}
        return {"status": "NO_NUMBERS"}

    async def _push_code(self, phone: str, service: str) -> None:
        await asyncio.sleep(0.05)
        sender, text = texts.verification(random.Random(phone), AGENT_NAMES.service(service), long_text=0)
        sms_id = self._next_sms
        self._next_sms += 1
        async with aiohttp.ClientSession() as session:
            for _ in range(20):
                payload = {
                    "action": "PUSH_SMS", "key": self.key, "smsId": sms_id,
                    "phone": phone if self.sabotage.phone_as_string else int(phone),
                    "phoneFrom": sender, "text": text,
                }  # fmt: skip
                headers = {"User-Agent": "fake-partner/1"}
                async with session.post(self.push_url, json=payload, headers=headers) as answer:
                    word = (await answer.json(content_type=None)).get("status")
                if word == "SUCCESS":
                    if self.sabotage.push_again_after_success:
                        async with session.post(self.push_url, json=payload, headers=headers) as again:
                            await again.read()
                    return
                if self.sabotage.new_sms_id_on_retry:
                    sms_id = self._next_sms
                    self._next_sms += 1
                await asyncio.sleep(0.02)
