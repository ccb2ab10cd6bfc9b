"""What a marketplace plug-in is: its settings table, and what bootstrap builds from it.

A plug-in is one folder under marketplaces/ exposing `PLUGIN`, plus one line in the registry
(marketplaces/__init__.py). http/, bootstrap and config only ever see the shapes below, so
they never name a marketplace (DESIGN.md, "Plug-ins").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from simgate import catalogue
from simgate.domain.ledger import DAY, ResaleRule, ResaleScope
from simgate.domain.messages import DueDelivery, Horizon, PushReply, PushRequest, Verdict
from simgate.domain.types import ServiceName, Timestamp
from simgate.storage.ports import Store

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """One answered call: HTTP status, JSON payload, and what the request log needs."""

    status: int
    payload: Payload
    call: str
    """Metric and log label: a bounded set per marketplace (an endpoint or an action)."""
    request: object | None = None
    """The decoded request (a msgspec Struct) or None: logged without decoding again."""


Background = Callable[[], AbstractAsyncContextManager[None]]
"""A task that runs while the app serves: entered at start-up, exited at shutdown."""


@dataclass(frozen=True, slots=True)
class Health:
    """The last result of a marketplace's own health check (HeroSMS's ping), for the console."""

    check: str
    """What is checked, e.g. "ping"."""
    url: str
    every_seconds: float
    ok: bool | None = None
    """None: not checked yet."""
    at: Timestamp | None = None
    latency_ms: float | None = None
    error: str | None = None
    failures: int = 0
    """Failed checks in a row."""


Handler = Callable[[str, bytes, Sequence[str | None]], Awaitable[Answer]]
"""(endpoint under the marketplace's path, raw body, credentials from headers and query)."""


class PushAdapter(Protocol):
    def request(self, item: DueDelivery) -> PushRequest: ...

    def verdict(self, reply: PushReply) -> tuple[Verdict, str | None]: ...


@dataclass(frozen=True)
class Marketplace:
    """A plug-in built from its settings: everything the HTTP face and the worker need."""

    name: str
    handle: Handler
    envelope: Callable[[int, str], tuple[int, Payload]]
    """(HTTP status, message) -> the status and body this marketplace wants for an error the
    HTTP layer produced on its paths (413, 404, 503, 500...)."""
    paths: tuple[str, ...]
    """Starlette route paths; `{endpoint}` in a path becomes the handler's endpoint."""
    push: PushAdapter | None = None
    """None: nowhere to push to (its SMS are stored and wait)."""
    horizon: Horizon | None = None
    """How long to keep retrying a push, when it differs from the default."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    countries: frozenset[str] | None = None
    """simgate's countries it has a name for; None: every one. Lanes keep other SIMs away."""
    background: tuple[Background, ...] = ()
    """Tasks bootstrap runs while the app serves (a periodic health check)."""
    health: Callable[[], Health] | None = None
    """The last health check's result, when the marketplace has one."""


class MarketplaceSettings(BaseModel):
    """The `[marketplaces.NAME]` table; `SIMGATE_NAME_FIELD` variables set the same fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    FLAT_ALIASES: ClassVar[dict[str, str]] = {}
    """Variable (and top-level TOML) suffixes that set a differently named field."""

    key: SecretStr | None = None
    """The marketplace's key; set, it enables the marketplace."""
    push_url: str | None = None
    """Where PUSH_SMS goes; unset (and no default), its SMS are stored and wait."""

    @field_validator("push_url")
    @classmethod
    def _push_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("key")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty key would start a marketplace that refuses every caller: say so at start.
        # Its length is the marketplace's choice, not ours (CONTRACT.md, Settings).
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it instead)")
        return value

    @property
    def enabled(self) -> bool:
        return self.key is not None

    @property
    def key_value(self) -> str:
        assert self.key is not None, "only an enabled marketplace is built"
        return self.key.get_secret_value()

    @property
    def offered(self) -> tuple[ServiceName, ...]:
        """simgate service names this marketplace sells (the whole catalogue by default)."""
        return catalogue.services()

    def secrets(self) -> list[str]:
        return [] if self.key is None else [self.key.get_secret_value()]

    def resale_rules(self, name: str) -> tuple[ResaleRule, ...]:
        """This marketplace's anti-resale terms as ledger entries (domain/ledger.py); none by
        default. Asked of every registered marketplace, enabled or not: a number sold there
        last month stays bound after its key is unset."""
        return ()

    def counted_statuses(self) -> frozenset[int]:
        """FINISH statuses whose finished operations a rule of this marketplace counts (its
        FinishPolicy's budget): pruning keeps those (domain/history.py). Asked of every
        registered marketplace, like resale_rules."""
        return frozenset()


class ResaleWindowSettings(MarketplaceSettings):
    """Mixed into a plug-in's settings whose marketplace fines resale across platforms
    (HeroSMS: `SIMGATE_HEROSMS_RESALE_DAYS`, `SIMGATE_HEROSMS_RESALE_SCOPE`)."""

    resale_days: float = Field(default=60, ge=0, le=3650)
    """A number sold there is offered nowhere else, and a number sold elsewhere is not
    offered there, for this many days (0: no window)."""
    resale_scope: Literal["number", "service"] = "number"
    """`number`: the window binds every service of the number (the terms' literal reading);
    `service`: only the service sold (a rent still binds them all)."""

    def resale_rules(self, name: str) -> tuple[ResaleRule, ...]:
        if self.resale_days <= 0:
            return ()
        return (ResaleRule(name, self.resale_days * DAY, ResaleScope(self.resale_scope)),)


def http_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


@dataclass(frozen=True)
class Plugin:
    """What the registry loads: the settings model and how to build the marketplace."""

    name: str
    settings: type[MarketplaceSettings]
    build: Callable[[Any, Store, Callable[[], Timestamp]], Marketplace]
    """(its settings, the store, the clock) -> the marketplace; called only when enabled."""
