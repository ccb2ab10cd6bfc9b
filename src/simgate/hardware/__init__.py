"""SMS sources: one driver per kind of hardware, all feeding services.intake.accept_sms.

`build_drivers` is the one entry point bootstrap calls: it reads `settings.hardware` (the
TOML tables [hardware.<driver>]) and returns the HTTP routes and background tasks of every
configured driver.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from starlette.routing import BaseRoute

from simgate.config import Settings
from simgate.domain.types import Timestamp
from simgate.storage.ports import Store


@dataclass
class Drivers:
    routes: list[BaseRoute] = field(default_factory=list)
    background: list[Callable[[], AbstractAsyncContextManager[None]]] = field(default_factory=list)


def build_drivers(
    settings: Settings, store: Store, clock: Callable[[], Timestamp], wake: Callable[[], None]
) -> Drivers:
    """No driver is configured by default: HTTP intake (/intake/sms) is always there."""
    return Drivers()
