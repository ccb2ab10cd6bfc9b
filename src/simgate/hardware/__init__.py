"""SMS sources: one driver per kind of hardware, all feeding services.intake.accept_sms.

`build_drivers` is the one entry point bootstrap calls: it reads `settings.hardware` (the
TOML tables [hardware.goip], [hardware.ejoin], [hardware.android], [hardware.gammu],
[hardware.modem]) and returns the HTTP routes and background tasks of every configured
driver. A table with `enabled = false` is checked but not started. `status()` gives the
dashboard each driver's last contact, last error and per-SIM state.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simgate.config import Settings, SettingsError
from simgate.domain.types import Timestamp
from simgate.hardware.status import DriverStatus, PortStatus

if TYPE_CHECKING:  # the CLI imports this package on every start; keep that cheap
    from starlette.routing import BaseRoute

    from simgate.hardware.tables import Table
    from simgate.storage.ports import Store

__all__ = ["DRIVERS", "DriverStatus", "Drivers", "PortStatus", "build_drivers", "status"]

DRIVERS = ("goip", "ejoin", "android", "gammu", "modem")


@dataclass
class Drivers:
    routes: list[BaseRoute] = field(default_factory=list)
    background: list[Callable[[], AbstractAsyncContextManager[None]]] = field(default_factory=list)
    monitors: list[Callable[[], list[DriverStatus]]] = field(default_factory=list)

    def status(self) -> list[DriverStatus]:
        return [snapshot for monitor in self.monitors for snapshot in monitor()]


_current = Drivers()


def status() -> list[DriverStatus]:
    """The drivers of the app built last in this process (the one `simgate serve` runs)."""
    return _current.status()


def build_drivers(
    settings: Settings, store: Store, clock: Callable[[], Timestamp], wake: Callable[[], None]
) -> Drivers:
    """HTTP intake (/intake/sms) is always there; the tables add the hardware drivers.

    Raises SettingsError naming the key (hardware.goip.port: must be 1-65535) for a bad table.
    """
    from simgate.hardware.tables import Table

    global _current
    drivers = Drivers()
    for name, raw in settings.hardware.items():
        if name not in DRIVERS:
            raise SettingsError(f"hardware.{name}: unknown driver (known: {', '.join(DRIVERS)})")
        table = Table(f"hardware.{name}", raw)
        enabled = table.boolean("enabled", True)
        _add(drivers, name, table, store, clock, wake, enabled)
    _current = drivers
    return drivers


def _add(
    drivers: Drivers,
    name: str,
    table: Table,
    store: Store,
    clock: Callable[[], Timestamp],
    wake: Callable[[], None],
    enabled: bool,
) -> None:
    # Imported here: `simgate intake gammu` runs for every SMS and should not load aiohttp,
    # pyserial and the PDU decoder it never uses.
    if name == "goip":
        from simgate.hardware import goip

        goip_driver = goip.build(table, store, clock, wake)
        if enabled:
            drivers.background.append(goip_driver.running)
            drivers.monitors.append(lambda: [goip_driver.health.snapshot()])
    elif name == "ejoin":
        from simgate.hardware import ejoin

        ejoin_driver = ejoin.build(table, store, clock, wake)
        if enabled:
            drivers.routes.extend(ejoin_driver.routes())
            drivers.background.append(ejoin_driver.polling)
            drivers.monitors.append(lambda: [h.snapshot() for h in ejoin_driver.health.values()])
    elif name == "android":
        from simgate.hardware import android

        android_driver = android.build(table, store, clock, wake)
        if enabled:
            drivers.routes.extend(android_driver.routes())
            drivers.monitors.append(lambda: [h.snapshot() for h in android_driver.health.values()])
    elif name == "gammu":
        from simgate.hardware.gammu import GammuConfig

        GammuConfig.parse(table)  # used by `simgate intake gammu`; checked here so serve fails early
    elif name == "modem":
        from simgate.hardware import modem

        modem_driver = modem.build(table, store, clock, wake)
        if enabled:
            drivers.background.append(modem_driver.running)
            drivers.monitors.append(lambda: [modem_driver.health.snapshot()])
