"""What a driver is to the rest of simgate: the `Driver` and `Sink` protocols.

A driver turns one kind of SMS hardware into calls on a `Sink` (accept an SMS, set a SIM
online); bootstrap hands every driver the one sink backed by accept_sms, so no driver touches
the database. In return a driver offers its HTTP routes, its background tasks (started and
stopped with the app) and its status for the Hardware page. A new driver is one module with
`build(table, sink, clock) -> Driver` plus one line in `hardware.DRIVERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from simgate.domain.messages import IncomingMessage
from simgate.domain.types import PhoneNumber, Timestamp
from simgate.hardware.status import DriverStatus

if TYPE_CHECKING:  # `simgate intake gammu` imports the package for every SMS: keep it light
    from starlette.routing import BaseRoute

    from simgate.hardware.settings_table import Table
    from simgate.services.intake import Accepted

Clock = Callable[[], Timestamp]
Background = Callable[[], AbstractAsyncContextManager[None]]
"""A task that runs while the app serves: entered at start-up, exited at shutdown."""


class Sink(Protocol):
    """Where a driver hands what the hardware said; the device is acknowledged only after."""

    async def accept(self, incoming: IncomingMessage) -> Accepted:
        """Store the SMS and queue its push in one commit (a resend finds the first one).

        DomainError means it can never be stored; any other error is transient.
        """
        ...

    async def set_online(self, phone: PhoneNumber, online: bool) -> bool:
        """Record the SIM's state; False if the phone is not in the inventory."""
        ...


class Driver(Protocol):
    """One configured [hardware.NAME] table at work.

    Two optional members: a driver with nothing to watch (an empty `status()`) may say why
    in a str attribute `idle_note`, shown on the Hardware page under "Configured, not
    watched"; a driver that learns numbers at run time (GoIP's unmapped lines) may define
    `set_owned_elsewhere(numbers)`, and build_drivers hands it the numbers the others hold.
    """

    def routes(self) -> Sequence[BaseRoute]:
        """Endpoints the hardware calls (webhooks), mounted on the app."""
        ...

    def background(self) -> Sequence[Background]:
        """Listeners and pollers to run while the app serves."""
        ...

    def status(self) -> Sequence[DriverStatus]:
        """One snapshot per source (a gateway, a phone) for the Hardware page."""
        ...


class Build(Protocol):
    """A driver module's `build`: check its [hardware.NAME] table and make the driver.

    Raises SettingsError naming the key for a bad table.
    """

    def __call__(self, table: Table, sink: Sink, clock: Clock) -> Driver: ...
