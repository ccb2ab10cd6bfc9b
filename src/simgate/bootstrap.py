"""The one place that picks concrete classes and wires them, with explicit arguments."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from simgate import logsecrets
from simgate.config import Settings, SettingsError
from simgate.domain.types import Timestamp
from simgate.marketplaces import plugin
from simgate.storage import schema
from simgate.storage.ports import Store, StoreUnavailable
from simgate.storage.sqlite import SQLiteStore

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette

    from simgate.delivery.alerts import Channel
    from simgate.delivery.sender import WebhookSender
    from simgate.delivery.worker import DeliveryWorker
    from simgate.marketplaces.base import Marketplace
    from simgate.services.alerts import CallLog
    from simgate.services.history import HistoryPruner
    from simgate.services.lanes import LaneBalancer, LanePolicy

# The serving side (HTTP app, console, drivers, delivery, alerts) is imported by the functions
# that build it: the CLI's commands open a store and check its schema through this module, and
# each `simgate` run would otherwise pay about 0.2 s of CPU importing a server it never starts.

log = logging.getLogger("simgate.bootstrap")


def open_store(settings: Settings) -> Store:
    store: Store
    if settings.is_sqlite:
        store = SQLiteStore.from_url(settings.database_url, ledger=settings.ledger)
    else:
        from simgate.storage.postgres import PostgresStore

        store = PostgresStore(
            settings.database_url, max_size=settings.postgres_pool_size, ledger=settings.ledger
        )
    return store


def migrate_schema(settings: Settings) -> tuple[str | None, str]:
    """`simgate migrate`: apply pending migrations; the revisions before and after."""
    return schema.upgrade(settings.database_url)


def prepare_schema(settings: Settings, *, migrate: bool) -> str:
    """Apply pending migrations, or (with migrate=False) insist the schema is current."""
    if migrate:
        migrate_schema(settings)
    else:
        schema.check_current(settings.database_url)
    return schema.head_revision()


def ensure_schema(settings: Settings) -> None:
    """For CLI commands other than `migrate` and `serve`: refuse a database without the current
    schema. They never create one: run in the wrong directory, they would fill a stray file."""
    schema.check_current(settings.database_url)


def enabled_marketplaces(settings: Settings) -> list[str]:
    """Names of the marketplaces whose key is set, in registry order."""
    return [name for name, table in settings.marketplaces.items() if table.enabled]


def lane_policy(settings: Settings, marketplaces: Sequence[Marketplace] = ()) -> LanePolicy:
    from simgate.services.lanes import LanePolicy

    return LanePolicy(
        rebalance_seconds=settings.lane_rebalance_seconds,
        demand_seconds=settings.lane_demand_seconds,
        stale_seconds=settings.lane_stale_seconds,
        moves=settings.lane_moves,
        min_share=settings.lane_min_share,
        idle_seconds=settings.lane_idle_seconds,
        countries={m.name: m.countries for m in marketplaces if m.countries is not None},
    )


def register_lanes(
    settings: Settings, store: Store, clock: Callable[[], Timestamp], policy: LanePolicy
) -> None:
    """Tell storage which marketplaces sell now, placing SIMs whose lane changed; a database
    away at start leaves it to the first rebalancing round."""
    from simgate.services.lanes import register_marketplaces

    enabled, weights = enabled_marketplaces(settings), settings.weights
    try:
        store.run(lambda uow: register_marketplaces(uow, enabled, clock(), weights=weights, policy=policy))
    except StoreUnavailable as error:
        log.warning("marketplaces not registered yet (%s); the lane balancer will retry", error)


@asynccontextmanager
async def balancing(balancer: LaneBalancer) -> AsyncIterator[None]:
    task = asyncio.create_task(balancer.run())
    try:
        yield
    finally:
        balancer.stop()
        await task


@asynccontextmanager
async def pruning(pruner: HistoryPruner) -> AsyncIterator[None]:
    task = asyncio.create_task(pruner.run())
    try:
        yield
    finally:
        pruner.stop()
        await task


def require_serving(settings: Settings) -> None:
    """What `serve` cannot run without, checked before anything else happens."""
    if not enabled_marketplaces(settings):
        keys = " or ".join(f"SIMGATE_{name.upper()}_KEY" for name in settings.marketplaces)
        raise SettingsError(f"no marketplace is enabled: set {keys} (a key enables its marketplace)")
    alert_channels(settings)  # half a Telegram setting would silently send no alert


def push_warnings(settings: Settings) -> list[str]:
    """One sentence per enabled marketplace with nowhere to push its SMS to."""
    return [
        f"SIMGATE_{name.upper()}_PUSH_URL is not set: SMS sold on {name} are stored, not pushed"
        for name in enabled_marketplaces(settings)
        if settings.marketplaces[name].push_url is None
    ]


def build_marketplaces(
    settings: Settings, store: Store, clock: Callable[[], Timestamp] = time.time
) -> list[Marketplace]:
    """Every enabled marketplace, built by its plug-in from its own settings."""
    return [
        plugin(name).build(settings.marketplaces[name], store, clock)
        for name in enabled_marketplaces(settings)
    ]


def protect_logs(settings: Settings) -> None:
    """Redact every secret from the logs and say which issued ones are short: once per process."""
    logsecrets.install(logsecrets.secrets_of(settings))
    logsecrets.warn_short_secrets(settings)


def build_worker(
    settings: Settings,
    store: Store,
    *,
    clock: Callable[[], Timestamp] = time.time,
    registry: CollectorRegistry | None = None,
    marketplaces: list[Marketplace] | None = None,
) -> tuple[DeliveryWorker, WebhookSender] | None:
    """The delivery worker and its sender, or None when there is nowhere to push to.

    The caller has protected the logs (protect_logs): build_app does, and so does `simgate worker`.
    """
    from simgate.delivery.retry import RetryPolicy
    from simgate.delivery.sender import WebhookSender
    from simgate.delivery.worker import DeliveryWorker

    if marketplaces is None:
        marketplaces = build_marketplaces(settings, store, clock)
    for warning in push_warnings(settings):
        log.warning("%s", warning)
    adapters = {market.name: market.push for market in marketplaces if market.push is not None}
    if not adapters:
        return None
    sender = WebhookSender(timeout=settings.push_timeout_seconds)
    horizons = {market.name: market.horizon for market in marketplaces if market.horizon is not None}
    worker = DeliveryWorker(
        store,
        adapters,
        sender,
        RetryPolicy(delay=settings.push_retry_seconds, horizons=horizons),
        clock,
        registry=registry,
    )
    return worker, sender


@asynccontextmanager
async def running(worker: DeliveryWorker, sender: WebhookSender) -> AsyncIterator[None]:
    async with sender:
        task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            await worker.stop()
            await task


ALERT_TIMEOUT = 10.0


def alert_channels(settings: Settings) -> list[Channel]:
    from simgate.delivery.alerts import TelegramChannel, WebhookChannel

    channels: list[Channel] = []
    if settings.alert_webhook_url is not None:
        channels.append(WebhookChannel(settings.alert_webhook_url))
    token, chat = settings.alert_telegram_token, settings.alert_telegram_chat_id
    if (token is None) != (not chat):
        raise SettingsError(
            "SIMGATE_ALERT_TELEGRAM_TOKEN and SIMGATE_ALERT_TELEGRAM_CHAT_ID: set both or neither"
        )
    if token is not None and chat:
        api = settings.alert_telegram_api_url or "https://api.telegram.org"
        channels.append(TelegramChannel(api, token.get_secret_value(), chat))
    return channels


def build_alerts(
    settings: Settings,
    store: Store,
    clock: Callable[[], Timestamp],
    calls: CallLog,
    gateways: Callable[[], dict[str, Timestamp | None]],
) -> Callable[[], AbstractAsyncContextManager[None]]:
    """The alert loop as a background task; with no channel configured it keeps the open
    alerts and each marketplace's last call, and sends nothing (AlertMonitor.check)."""
    from simgate.delivery.alerts import AlertMonitor
    from simgate.delivery.sender import WebhookSender
    from simgate.domain.alerts import AlertRules

    channels = alert_channels(settings)
    rules = AlertRules(
        pending_push_minutes=settings.alert_push_pending_minutes,
        gateway_silent_minutes=settings.alert_gateway_silent_minutes,
        marketplace_silent_minutes=settings.alert_marketplace_silent_minutes,
        sim_failures=settings.alert_sim_failures,
    )

    @asynccontextmanager
    async def watching() -> AsyncIterator[None]:
        # A short timeout: a hung receiver must not hold the next check or a shutdown.
        async with WebhookSender(timeout=ALERT_TIMEOUT, connections=4) as sender:
            monitor = AlertMonitor(
                store, rules, channels, sender, clock, calls, gateways, settings.alert_check_seconds
            )
            task = asyncio.create_task(monitor.run())
            try:
                yield
            finally:
                monitor.stop()
                await task

    return watching


def build_app(
    settings: Settings,
    store: Store,
    *,
    revision: str | None,
    worker: bool = True,
    clock: Callable[[], Timestamp] = time.time,
) -> Starlette:
    from prometheus_client import CollectorRegistry

    from simgate.dashboard import build_console
    from simgate.hardware import build_drivers
    from simgate.http.app import AppDeps, create_app
    from simgate.http.intake import Intake
    from simgate.services.alerts import CallLog
    from simgate.services.history import HistoryPruner
    from simgate.services.lanes import LaneBalancer
    from simgate.services.sink import StoreSink

    protect_logs(settings)
    registry = CollectorRegistry()
    background: list[Callable[[], AbstractAsyncContextManager[None]]] = []
    wake: Callable[[], None] = lambda: None  # noqa: E731
    marketplaces = build_marketplaces(settings, store, clock)
    for market in marketplaces:
        background.extend(market.background)  # their own health checks
    if worker:
        built = build_worker(settings, store, clock=clock, registry=registry, marketplaces=marketplaces)
        if built is not None:
            delivery, sender = built
            background.append(lambda: running(delivery, sender))
            wake = delivery.wake
    if settings.intake_token is None:
        log.warning("SIMGATE_INTAKE_TOKEN is not set: POST /intake/sms answers 503")
    sink = StoreSink(store, clock, wake, max_skew=settings.clock_skew_seconds)
    drivers = build_drivers(settings.hardware, sink, clock)
    token = settings.intake_token
    intake = Intake(sink, None if token is None else token.get_secret_value(), clock)
    drivers.add(intake)
    background.extend(drivers.background)
    calls = CallLog(clock)
    background.append(build_alerts(settings, store, clock, calls, drivers.heard))
    policy = lane_policy(settings, marketplaces)
    register_lanes(settings, store, clock, policy)
    balancer = LaneBalancer(
        store, clock, policy, enabled=enabled_marketplaces(settings), weights=settings.weights
    )
    background.append(lambda: balancing(balancer))
    if settings.history.horizon is not None:
        pruner = HistoryPruner(store, settings.history, clock)
        background.append(lambda: pruning(pruner))
    deps = AppDeps(
        store=store,
        marketplaces=marketplaces,
        intake=intake,
        expected_revision=revision,
        calls=calls,
        max_body_bytes=settings.max_body_bytes,
        metrics_token=None if settings.metrics_token is None else settings.metrics_token.get_secret_value(),
        registry=registry,
        background=background,
        extra_routes=[
            *drivers.routes,
            *build_console(
                None if settings.admin_token is None else settings.admin_token.get_secret_value(),
                store,
                registry,
                clock,
                hardware=drivers,
                health={m.name: m.health for m in marketplaces if m.health is not None},
            ),
        ],
    )
    return create_app(deps)
