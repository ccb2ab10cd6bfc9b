"""Alerts end to end: the monitor against local webhook and Telegram receivers on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from simgate.bootstrap import alert_channels, require_serving
from simgate.config import SettingsError
from simgate.delivery.alerts import AlertMonitor, TelegramChannel, WebhookChannel
from simgate.delivery.sender import WebhookSender
from simgate.domain.alerts import AlertRules
from simgate.domain.types import Timestamp
from simgate.services.alerts import CallLog
from simgate.storage import schema
from simgate.storage.memory import MemoryStore
from simgate.storage.ports import Store
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import KEY, LiveServer
from tests.conftest import test_settings as settings_for
from tests.contract.test_outbox_contract import queue_one

TOKEN = "123:secret-bot-token"
T0 = 1_800_000_100.0  # after the operations queue_one opens


@dataclass
class Receiver:
    """A webhook and a Telegram bot API on one loopback port; both record what they got."""

    url: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    telegram: list[dict[str, Any]] = field(default_factory=list)
    hook_status: int = 200

    async def hook(self, request: web.Request) -> web.Response:
        if self.hook_status != 200:
            return web.Response(status=self.hook_status)
        self.hooks.append(await request.json())
        return web.json_response({"ok": True})

    async def bot(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "description": "Unauthorized"}, status=401)
        self.telegram.append(await request.json())
        return web.json_response({"ok": True, "result": {}})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.hook)
    app.router.add_post("/bot{token}/sendMessage", found.bot)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield found
    await runner.cleanup()


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> Timestamp:
        return self.now


@dataclass
class Farm:
    store: Store
    receiver: Receiver
    clock: Clock = field(default_factory=Clock)
    gateways: dict[str, Timestamp | None] = field(default_factory=dict)
    calls: CallLog = field(init=False)

    def __post_init__(self) -> None:
        self.calls = CallLog(self.clock)

    def monitor(self, sender: WebhookSender, rules: AlertRules = AlertRules()) -> AlertMonitor:
        channels = [
            WebhookChannel(f"{self.receiver.url}/hook"),
            TelegramChannel(self.receiver.url, TOKEN, "-100777"),
        ]
        return AlertMonitor(
            self.store, rules, channels, sender, self.clock, self.calls, lambda: dict(self.gateways)
        )


def sqlite(tmp_path: Path) -> SQLiteStore:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    schema.upgrade(url)
    return SQLiteStore.from_url(url)


async def test_a_silent_gateway_fires_once_resolves_once_and_a_restart_sends_nothing_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    store = sqlite(tmp_path)
    farm = Farm(store, receiver, gateways={"goip": T0})
    try:
        async with WebhookSender(timeout=5) as sender:
            monitor = farm.monitor(sender)
            assert await monitor.check() == []
            farm.clock.now += 16 * 60
            [fired] = await monitor.check()
            assert (fired.key, fired.event) == ("gateway_silent:goip", "firing")
            farm.clock.now += 60
            assert await monitor.check() == []  # still silent: nothing new to say
        assert [(h["alert"], h["event"], h["rule"]) for h in receiver.hooks] == [
            ("gateway_silent:goip", "firing", "gateway_silent")
        ]
        assert receiver.hooks[0]["text"] == "Gateway goip silent for 16 min"
        assert receiver.telegram == [
            {"chat_id": "-100777", "text": "🔴 simgate: Gateway goip silent for 16 min"}
        ]
        # A restart (a new monitor on the same database) neither re-sends nor forgets.
        async with WebhookSender(timeout=5) as sender:
            restarted = farm.monitor(sender)
            farm.clock.now += 60
            assert await restarted.check() == []
            farm.gateways["goip"] = farm.clock.now
            [resolved] = await restarted.check()
            assert resolved.event == "resolved"
            assert await restarted.check() == []
        assert [h["event"] for h in receiver.hooks] == ["firing", "resolved"]
        assert receiver.telegram[-1]["text"] == "✅ simgate: Resolved: gateway goip speaks again"
        assert len(receiver.telegram) == 2
    finally:
        store.close()


async def test_two_instances_on_one_database_announce_each_change_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    store = sqlite(tmp_path)
    farm = Farm(store, receiver, gateways={"goip": T0})
    try:
        async with WebhookSender(timeout=5) as sender:
            first, second = farm.monitor(sender), farm.monitor(sender)
            farm.clock.now += 16 * 60
            await asyncio.gather(first.check(), second.check(), first.check(), second.check())
            farm.gateways["goip"] = farm.clock.now
            await asyncio.gather(first.check(), second.check(), first.check(), second.check())
    finally:
        store.close()
    assert [(h["alert"], h["event"]) for h in receiver.hooks] == [
        ("gateway_silent:goip", "firing"),
        ("gateway_silent:goip", "resolved"),
    ]
    assert len(receiver.telegram) == 2


async def test_a_notice_the_receiver_refused_is_sent_at_a_later_check_exactly_once(
    receiver: Receiver,
) -> None:
    store = MemoryStore()
    farm = Farm(store, receiver)
    receiver.hook_status = 502
    async with WebhookSender(timeout=5) as sender:
        monitor = farm.monitor(sender)
        farm.calls.saw("smshub")
        await monitor.check()
        farm.clock.now += 31 * 60
        [fired] = await monitor.check()
        assert fired.key == "marketplace_silent:smshub"
        assert receiver.hooks == []
        assert len(receiver.telegram) == 1
        [waiting] = store.run(lambda uow: uow.alerts.unsent(10, 100))
        assert (waiting.channel, waiting.attempts, waiting.last_error) == ("webhook", 1, "HTTP 502")
        receiver.hook_status = 200
        await monitor.check()
        await monitor.check()
    assert [(h["alert"], h["event"]) for h in receiver.hooks] == [("marketplace_silent:smshub", "firing")]
    assert len(receiver.telegram) == 1


async def test_pending_pushes_and_a_database_refusing_writes(receiver: Receiver) -> None:
    store = MemoryStore()
    farm = Farm(store, receiver)
    queue_one(store, now=T0)
    async with WebhookSender(timeout=5) as sender:
        monitor = farm.monitor(sender)
        farm.clock.now = T0 + 11 * 60
        assert [c.key for c in await monitor.check()] == ["push_pending"]
        store.write_error = "database or disk is full"
        [down] = await monitor.check()
        assert (down.key, down.event) == ("database_writes", "firing")
        assert await monitor.check() == []
        store.write_error = None
        [up] = await monitor.check()
        assert (up.key, up.event) == ("database_writes", "resolved")
    assert [(h["alert"], h["event"]) for h in receiver.hooks] == [
        ("push_pending", "firing"),
        ("database_writes", "firing"),
        ("database_writes", "resolved"),
    ]
    assert "database or disk is full" in receiver.hooks[1]["text"]


async def test_a_rule_set_to_zero_stays_quiet(receiver: Receiver) -> None:
    farm = Farm(MemoryStore(), receiver, gateways={"goip": None})
    async with WebhookSender(timeout=5) as sender:
        monitor = farm.monitor(sender, AlertRules(gateway_silent_minutes=0))
        farm.clock.now += 86400
        assert await monitor.check() == []
    assert receiver.hooks == []


def test_telegram_needs_both_its_token_and_its_chat(sqlite_url: str) -> None:
    with pytest.raises(SettingsError, match="SIMGATE_ALERT_TELEGRAM_CHAT_ID"):
        alert_channels(settings_for(sqlite_url, alert_telegram_token=TOKEN))
    with pytest.raises(SettingsError, match="SIMGATE_ALERT_TELEGRAM_TOKEN"):
        require_serving(settings_for(sqlite_url, alert_telegram_chat_id="-100777"))
    assert alert_channels(settings_for(sqlite_url)) == []
    with pytest.raises(SettingsError, match="SIMGATE_ALERT_SIM_FAILURES: must be 0"):
        settings_for(sqlite_url, alert_sim_failures="2")


async def test_the_server_watches_marketplace_calls_and_sends_to_the_webhook(
    sqlite_url: str, receiver: Receiver
) -> None:
    settings = settings_for(
        sqlite_url,
        alert_webhook_url=f"{receiver.url}/hook",
        alert_check_seconds="1",
        alert_marketplace_silent_minutes="0.02",
    )
    server = LiveServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            answer = await client.post("/onlinesim/getServices", json={"key": KEY, "action": "GET_SERVICES"})
            assert answer.status_code == 200
        for _ in range(200):  # generous: the check runs every second
            if receiver.hooks:
                break
            await asyncio.sleep(0.1)
    finally:
        server.stop()
    assert [(h["alert"], h["event"]) for h in receiver.hooks][:1] == [
        ("marketplace_silent:onlinesim", "firing")
    ]
    assert json.dumps(receiver.hooks).count("firing") == 1


async def test_the_loop_survives_a_failing_round(receiver: Receiver) -> None:
    farm = Farm(MemoryStore(), receiver)
    rounds: list[int] = []

    def gateways() -> dict[str, Timestamp | None]:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("driver status broke")
        return {"goip": None}

    async with WebhookSender(timeout=5) as sender:
        monitor = farm.monitor(sender)
        monitor.gateways, monitor.interval = gateways, 0.05
        farm.clock.now += 16 * 60
        task = asyncio.create_task(monitor.run())
        for _ in range(200):  # generous: a round every 50 ms
            if receiver.hooks:
                break
            await asyncio.sleep(0.05)
        monitor.stop()
        await task
    assert [(h["alert"], h["event"]) for h in receiver.hooks] == [("gateway_silent:goip", "firing")]


async def test_without_a_channel_alerts_are_kept_and_a_channel_added_later_announces_them_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    """No channel: the alert is still opened (the dashboard lists it) and each marketplace's
    last call kept, nothing is sent; the first start with a channel announces what is open
    by then, once, and a restart does not announce it again."""
    store = sqlite(tmp_path)
    farm = Farm(store, receiver, gateways={"goip": T0})
    try:
        async with WebhookSender(timeout=5) as sender:
            quiet = AlertMonitor(
                store, AlertRules(), [], sender, farm.clock, farm.calls, lambda: dict(farm.gateways)
            )
            farm.calls.saw("smshub")
            farm.clock.now += 16 * 60
            [opened] = await quiet.check()
            assert (opened.key, opened.event) == ("gateway_silent:goip", "firing")
            assert await quiet.check() == []
        assert store.run(lambda uow: (uow.alerts.last_calls(), uow.alerts.open_alerts())) == (
            {"smshub": T0},
            {"gateway_silent:goip": "gateway_silent"},
        )
        assert receiver.hooks == []
        assert receiver.telegram == []
        async with WebhookSender(timeout=5) as sender:
            farm.clock.now += 60
            [late] = await farm.monitor(sender).check()  # the owner set a channel and restarted
            assert (late.key, late.event) == ("gateway_silent:goip", "firing")
            assert await farm.monitor(sender).check() == []  # another restart: nothing again
            farm.gateways["goip"] = farm.clock.now
            [resolved] = await farm.monitor(sender).check()
            assert resolved.event == "resolved"
    finally:
        store.close()
    assert [(h["alert"], h["event"]) for h in receiver.hooks] == [
        ("gateway_silent:goip", "firing"),
        ("gateway_silent:goip", "resolved"),
    ]
    assert receiver.hooks[0]["text"] == "Gateway goip silent for 16 min"
    assert len(receiver.telegram) == 2
