"""Alert channels (a JSON webhook, Telegram's bot API) and the loop that checks and sends.

Notices wait in the store until their channel accepts them, so a receiver that is down for
a while gets the message late rather than never, and a restart does not send it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from simgate.delivery.worker import Sender
from simgate.domain.alerts import (
    DATABASE_WRITES,
    AlertRules,
    Change,
    Notice,
    Observation,
    changes,
    conditions,
)
from simgate.domain.messages import PushReply, PushRequest
from simgate.domain.types import Timestamp
from simgate.services.alerts import CallLog, check_alerts, observe
from simgate.storage.ports import Store, StoreUnavailable

log = logging.getLogger("simgate.alerts")

MAX_ATTEMPTS = 60
"""A notice is tried at every check (30 s by default) for about half an hour, then left in
the table: a receiver gone that long is a configuration problem, logged at each failure."""
BATCH = 50
JSON_HEADERS = {"Content-Type": "application/json"}


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def request(self, notice: Notice) -> PushRequest: ...

    def problem(self, reply: PushReply) -> str | None:
        """None when the receiver took the message, else why not."""
        ...


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    url: str
    name: str = "webhook"

    def request(self, notice: Notice) -> PushRequest:
        body = {
            "alert": notice.key, "rule": notice.rule, "event": notice.event,
            "text": notice.text, "at": notice.created_at,
        }  # fmt: skip
        return PushRequest(self.url, json.dumps(body).encode(), JSON_HEADERS)

    def problem(self, reply: PushReply) -> str | None:
        if reply.error is not None:
            return reply.error
        return None if reply.status is not None and 200 <= reply.status < 300 else f"HTTP {reply.status}"


@dataclass(frozen=True, slots=True)
class TelegramChannel:
    api_url: str
    token: str
    chat_id: str
    name: str = "telegram"

    def request(self, notice: Notice) -> PushRequest:
        mark = "🔴" if notice.event == "firing" else "✅"
        body = {"chat_id": self.chat_id, "text": f"{mark} simgate: {notice.text}"}
        url = f"{self.api_url}/bot{self.token}/sendMessage"
        return PushRequest(url, json.dumps(body, ensure_ascii=False).encode(), JSON_HEADERS)

    def problem(self, reply: PushReply) -> str | None:
        if reply.error is not None:
            return reply.error
        try:
            answer = json.loads(reply.body)
        except ValueError:
            answer = {}
        if reply.status == 200 and isinstance(answer, dict) and answer.get("ok") is True:
            return None
        described = answer.get("description") if isinstance(answer, dict) else None
        return f"HTTP {reply.status}" + (f": {described}" if described else "")


class AlertMonitor:
    def __init__(
        self,
        store: Store,
        rules: AlertRules,
        channels: Sequence[Channel],
        sender: Sender,
        clock: Callable[[], Timestamp],
        calls: CallLog,
        gateways: Callable[[], Mapping[str, Timestamp | None]],
        interval: float = 30.0,
    ) -> None:
        self.store, self.rules, self.channels, self.sender = store, rules, channels, sender
        self.clock, self.calls, self.gateways, self.interval = clock, calls, gateways, interval
        self.started = clock()
        self._stop = asyncio.Event()
        self._database_open: dict[str, str] = {}
        self._database_unsent: list[Notice] = []

    async def check(self) -> list[Change]:
        """One round: decide what changed, then send what waits. Never raises for a
        database or receiver problem: the next round tries again.

        With no channel set the alerts are still kept (the dashboard and `simgate status`
        list the open ones, each marketplace's last call is noted) and nothing is sent; a
        channel added later announces the alerts open by then, once."""
        now = self.clock()
        seen = Observation(now=now, gateways=self.gateways(), watching_since=self.started)
        database = await self._check_database(now)
        done = list(database)
        if not self._database_open:
            try:
                looked = await self.store.report(lambda r: observe(r, self.rules, seen))
                done += await self.store.transact(
                    lambda uow: check_alerts(
                        uow, self.rules, looked, self.calls.snapshot(), [c.name for c in self.channels]
                    )
                )
                await self._send_stored()
            except StoreUnavailable as problem:  # a failing database is this loop's own alarm
                log.warning("alert check failed: %s", problem)
                done += await self._check_database(now, str(problem))
            except Exception:
                log.exception("alert check failed")
        await self._send_database()
        return done

    async def _check_database(self, now: Timestamp, error: str | None = None) -> list[Change]:
        # While writes fail the alert cannot be stored, so it lives in memory (a restart
        # during the outage announces it again, once).
        error = error or self.store.write_error
        seen = Observation(now=now, write_error=error)
        present = [c for c in conditions(self.rules, seen) if c.rule == DATABASE_WRITES]
        found = changes(self._database_open, present)
        for change in found:
            if change.event == "firing":
                self._database_open[change.key] = change.rule
            else:
                self._database_open.pop(change.key, None)
            self._database_unsent += [
                Notice(0, change.key, change.rule, change.event, c.name, change.text, now)
                for c in self.channels
            ]
        return found

    async def _send_database(self) -> None:
        waiting, self._database_unsent = self._database_unsent, []
        for notice in waiting:
            if await self._deliver(notice) is not None and notice.attempts + 1 < MAX_ATTEMPTS:
                self._database_unsent.append(replace(notice, attempts=notice.attempts + 1))

    async def _send_stored(self) -> None:
        waiting = await self.store.read(lambda uow: uow.alerts.unsent(BATCH, MAX_ATTEMPTS))
        for notice in waiting:
            if self._stop.is_set():
                return  # shutting down: the rest waits in the table for the next start
            if await self._claim(notice):  # else another instance is sending it
                await self._record(notice.id, await self._deliver(notice))

    async def _claim(self, notice: Notice) -> bool:
        now = self.clock()
        return await self.store.transact(lambda uow: uow.alerts.claim(notice.id, notice.attempts, now))

    async def _record(self, notice_id: int, error: str | None) -> None:
        now = self.clock()
        await self.store.transact(lambda uow: uow.alerts.record_send(notice_id, now, error))

    async def _deliver(self, notice: Notice) -> str | None:
        channel = next((c for c in self.channels if c.name == notice.channel), None)
        if channel is None:
            return None  # the channel was removed from the settings: nothing to send to
        error = channel.problem(await self.sender.send(channel.request(notice)))
        if error is None:
            log.info("alert %s %s sent to %s", notice.key, notice.event, channel.name)
        else:
            log.warning("alert %s %s not sent to %s: %s", notice.key, notice.event, channel.name, error)
        return error

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.check()
            except Exception:  # a bug in one round must not end the alerts for good
                log.exception("alert check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    def stop(self) -> None:
        self._stop.set()
