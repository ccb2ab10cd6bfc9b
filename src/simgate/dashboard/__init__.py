"""The operator's console: the dashboard at /, the admin API at /api/, farm gauges for /metrics.

`build_console` is the one entry point bootstrap calls; it returns the routes to mount and
registers the farm collector on the app's Prometheus registry. It receives what it needs (the
admin token, the store, the drivers' status as `hardware`), never the whole Settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from simgate.dashboard.api import AdminApi
from simgate.dashboard.auth import ConsoleAuth
from simgate.dashboard.farm_gauges import FarmCollector
from simgate.dashboard.hardware import HardwareReport, HardwareSource
from simgate.dashboard.views import dashboard_routes
from simgate.domain.types import Timestamp
from simgate.marketplaces.base import Health
from simgate.storage.ports import Store

log = logging.getLogger("simgate.console")


def build_console(
    admin_token: str | None,
    store: Store,
    registry: CollectorRegistry,
    clock: Callable[[], Timestamp],
    *,
    hardware: HardwareSource,
    health: Mapping[str, Callable[[], Health]] | None = None,
) -> list[BaseRoute]:
    """`admin_token` is SIMGATE_ADMIN_TOKEN's value; None leaves the console closed (503)."""
    if admin_token is None:
        log.warning("SIMGATE_ADMIN_TOKEN is not set: the dashboard and /api/ answer 503")
    auth = ConsoleAuth(admin_token, clock, store)
    registry.register(FarmCollector(store, clock))
    report = HardwareReport(hardware, clock, started=clock(), health=health or {})
    return [*AdminApi(store, auth, clock, report).routes(), *dashboard_routes(auth)]
