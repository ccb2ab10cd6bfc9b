"""Onlinesim as a plug-in: its settings, routes, error envelope and push adapter."""

from __future__ import annotations

from collections.abc import Callable

from simgate.domain.types import Timestamp
from simgate.marketplaces.base import Marketplace, Payload, Plugin
from simgate.marketplaces.onlinesim import MARKETPLACE
from simgate.marketplaces.onlinesim.handlers import Onlinesim
from simgate.marketplaces.onlinesim.push import OnlinesimPush
from simgate.marketplaces.onlinesim.settings import OnlinesimSettings
from simgate.marketplaces.onlinesim.wire import error
from simgate.storage.ports import Store


def envelope(status: int, message: str) -> tuple[int, Payload]:
    return status, error(message)


def build(settings: OnlinesimSettings, store: Store, clock: Callable[[], Timestamp]) -> Marketplace:
    key = settings.key_value
    handlers = Onlinesim(store=store, key=key, services=settings.offered, clock=clock)
    push = None
    if settings.push_url is not None:
        push = OnlinesimPush(
            base_url=settings.push_url,
            key=key,
            path=settings.push_path,
            rent_path=settings.push_rent_path,
            sms_id=settings.sms_id,
        )
    return Marketplace(
        name=MARKETPLACE,
        handle=handlers.handle,
        envelope=envelope,
        paths=("/onlinesim", "/onlinesim/{endpoint}"),
        push=push,
        secrets=tuple(settings.secrets()),
    )


PLUGIN = Plugin(name=MARKETPLACE, settings=OnlinesimSettings, build=build)
