"""SMS sources: one driver per kind of hardware, all feeding one Sink (services/sink.py).

`DRIVERS` is the registry: the [hardware.NAME] table names the module that reads it, and that
module is imported only when its table is there (`simgate intake gammu` runs for every SMS
and should not load aiohttp, pyserial and the PDU decoder it never uses). A new driver is one
module with `build(table, sink, clock) -> Driver` (base.py) plus one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from simgate.domain.types import Timestamp
from simgate.hardware.status import DriverStatus, PortStatus, Unwatched
from simgate.settings_error import SettingsError

if TYPE_CHECKING:  # the CLI imports this package on every start; keep that cheap
    from starlette.routing import BaseRoute

    from simgate.domain.types import PhoneNumber
    from simgate.hardware.base import Background, Build, Clock, Driver, Sink

__all__ = ["DRIVERS", "DriverStatus", "Drivers", "PortStatus", "Unwatched", "build_drivers"]

DRIVERS: Mapping[str, str] = MappingProxyType(
    {
        "goip": "simgate.hardware.goip",
        "ejoin": "simgate.hardware.ejoin",
        "android": "simgate.hardware.android",
        "gammu": "simgate.hardware.gammu",
        "modem": "simgate.hardware.modem",
    }
)

DISABLED_NOTE = "enabled = false: the table is checked at start, the driver does not run"
NOTHING_NOTE = "configured, but it lists no device to watch"


@dataclass
class Drivers:
    """The running drivers, in settings-file order: what they give the app."""

    running: list[Driver] = field(default_factory=list)
    configured: list[tuple[str, bool, Driver]] = field(default_factory=list)
    """Every [hardware.NAME] table: its name, whether it is enabled, its driver."""

    def add(self, driver: Driver) -> None:
        self.running.append(driver)

    @property
    def routes(self) -> list[BaseRoute]:
        return [route for driver in self.running for route in driver.routes()]

    @property
    def background(self) -> list[Background]:
        return [task for driver in self.running for task in driver.background()]

    def status(self) -> list[DriverStatus]:
        return [snapshot for driver in self.running for snapshot in driver.status()]

    def unwatched(self) -> list[Unwatched]:
        """The tables that give no live status (disabled, or nothing to watch), and why."""
        quiet = []
        for name, enabled, driver in self.configured:
            if not enabled:
                quiet.append(Unwatched(name, False, DISABLED_NOTE))
            elif not driver.status():
                quiet.append(Unwatched(name, True, getattr(driver, "idle_note", NOTHING_NOTE)))
        return quiet

    def heard(self) -> dict[str, Timestamp | None]:
        """When each source that speaks on its own last did (what the silent-gateway alert
        watches); an Android phone or /intake/sms is quiet until an SMS arrives."""
        return {d.name: d.last_contact for d in self.status() if d.reports_on_its_own}


def build_drivers(tables: Mapping[str, object], sink: Sink, clock: Clock) -> Drivers:
    """The drivers of the [hardware.NAME] tables (settings.hardware), all fed into `sink`.

    A table with `enabled = false` is checked but not started. Raises SettingsError naming
    the key (hardware.goip.port: must be 1-65535) for a bad table.
    """
    from simgate.hardware.settings_table import Table

    drivers = Drivers()
    for name, raw in tables.items():
        if name not in DRIVERS:
            raise SettingsError(f"hardware.{name}: unknown driver (known: {', '.join(DRIVERS)})")
        table = Table(f"hardware.{name}", raw)
        enabled = table.boolean("enabled", True)
        build: Build = importlib.import_module(DRIVERS[name]).build
        driver = build(table, sink, clock)
        drivers.configured.append((name, enabled, driver))
        if enabled:
            drivers.add(driver)
    for driver in drivers.running:
        # A driver that learns numbers at run time (GoIP's unmapped lines) must not take one
        # another driver holds: that would let it take the SIM offline or inject SMS into it.
        tell = getattr(driver, "set_owned_elsewhere", None)
        if tell is not None:
            tell(lambda me=driver: _numbers_held(drivers, me))
    return drivers


def _numbers_held(drivers: Drivers, besides: Driver) -> list[PhoneNumber]:
    return [
        port.phone
        for driver in drivers.running
        if driver is not besides
        for snapshot in driver.status()
        for port in snapshot.ports
        if port.phone
    ]
