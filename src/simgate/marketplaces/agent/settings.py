"""An agent-protocol marketplace's settings table, `[marketplaces.NAME]` and SIMGATE_NAME_*.

A marketplace of the family subclasses it with its defaults: push URL and shipped name maps.
The maps go from simgate's catalogue names (left) to the marketplace's (right); a TOML table
adds to or overrides the shipped one, and "" removes a shipped name.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from simgate import __version__, catalogue
from simgate.domain.model import FinishPolicy
from simgate.domain.types import ServiceName
from simgate.marketplaces.base import MarketplaceSettings, http_url

OperatorMode = Literal["auto", "named", "any"]

FINISH = FinishPolicy(refuse_statuses=frozenset({1}), retry_budget_status=4, retry_budget=3)
"""Status 1: never this number for this service again; 4: at most 3 more offers of it for
that service on that marketplace; 3 sold; 5 refunded (spec 5.3, CONTRACT.md). Here, beside
the settings, so config learns what a rule counts without loading the protocol
(AgentSettings.counted_statuses)."""


class AgentSettings(MarketplaceSettings):
    FLAT_ALIASES: ClassVar[dict[str, str]] = {"services": "offer"}
    """SIMGATE_NAME_SERVICES (a list of names to sell) sets `offer`: in the table, `services`
    is the name map, as CONTRACT.md writes it."""
    SHIPPED_SERVICES: ClassVar[dict[str, str]] = {}
    SHIPPED_COUNTRIES: ClassVar[dict[str, str]] = {}
    SHIPPED_OPERATORS: ClassVar[dict[str, str]] = {}

    services: dict[str, str] = Field(default_factory=dict)
    countries: dict[str, str] = Field(default_factory=dict)
    operators: dict[str, str] = Field(default_factory=dict)
    operator_mode: dict[str, OperatorMode] = Field(default_factory=dict)
    """Per simgate country: `named` operators, or everything under `any` (never both in one
    country, spec 5.1). `auto` (the default): `any` only when a number of that country has
    an operator the marketplace has no name for."""
    offer: str | None = None
    """simgate service names to sell there (comma-separated or a list); unset: every service
    with a name on that marketplace."""
    error_status: Literal["4xx", "200"] = "4xx"
    """HTTP status of an ERROR answer: a 4xx naming the problem (our rule for bad input), or
    always 200 (the spec's guess); the body is the protocol's ERROR either way."""
    user_agent: str = f"simgate/{__version__}"
    """Sent on every request to the marketplace; Grizzly requires one (spec grizzly 2)."""
    ping_url: str | None = None
    """GET health check; unset: next to the push URL (.../agent/api/ping, spec herosms 5.5)."""
    ping_seconds: float = 0.0
    """How often to ping; 0: never (HeroSMS's plug-in turns it on)."""

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty (the marketplace requires a User-Agent)")
        return value.strip()

    @field_validator("ping_seconds")
    @classmethod
    def _ping_seconds(cls, value: float) -> float:
        # Checked here, not by Field bounds: a plug-in that changes the default keeps them.
        if not 0 <= value <= 86400:
            raise ValueError("must be 0 (off) to 86400 seconds")
        return value

    @field_validator("ping_url")
    @classmethod
    def _ping_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @model_validator(mode="before")
    @classmethod
    def _services_list_in_table(cls, data: Any) -> Any:
        # `services = "vkcom,ok"` in the table is the list to sell, not a map.
        if isinstance(data, dict) and isinstance(data.get("services"), str | list):
            data = dict(data)
            data["offer"] = data.pop("services")
        return data

    @field_validator("offer", mode="before")
    @classmethod
    def _offer(cls, value: str | list[str] | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        names = value.split(",") if isinstance(value, str) else value
        names = [name.strip().lower() for name in names if name.strip()]
        if not names:
            return None
        unknown = sorted(set(names) - set(catalogue.services()))
        if unknown:
            raise ValueError(catalogue.not_in_catalogue(unknown))
        named = _merge(cls.SHIPPED_SERVICES, info.data.get("services", {}))
        unnamed = [name for name in names if name not in named]
        if unnamed:
            listed = ", ".join(unnamed)
            raise ValueError(f"no name on this marketplace for {listed} (add it to the services table)")
        return ",".join(dict.fromkeys(names))

    @field_validator("services", "countries", "operators", "operator_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                str(k).strip().lower(): v.strip().lower() if isinstance(v, str) else v
                for k, v in value.items()
            }
        return value

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(catalogue.services()))
        if unknown:
            raise ValueError(catalogue.not_in_catalogue(unknown))
        return value

    @field_validator("countries", "operator_mode")
    @classmethod
    def _country_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(catalogue.countries()))
        if unknown:
            raise ValueError(f"not in the country catalogue: {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _one_to_one(self) -> AgentSettings:
        # Two simgate names under one marketplace name would add their counts together and
        # make GET_NUMBER unable to tell which was ordered.
        for label, merged in (
            ("services", self.service_map),
            ("countries", self.country_map),
            ("operators", self.operator_map),
        ):
            seen: dict[str, str] = {}
            for ours, theirs in merged.items():
                if theirs in seen:
                    raise ValueError(f"{label}: {seen[theirs]} and {ours} both map to {theirs!r}")
                seen[theirs] = ours
        if "any" in self.operator_map.values():
            raise ValueError("operators: 'any' is the protocol's word for an unknown operator")
        return self

    @property
    def service_map(self) -> dict[str, str]:
        return _merge(self.SHIPPED_SERVICES, self.services)

    @property
    def country_map(self) -> dict[str, str]:
        return _merge(self.SHIPPED_COUNTRIES, self.countries)

    @property
    def operator_map(self) -> dict[str, str]:
        return _merge(self.SHIPPED_OPERATORS, self.operators)

    @property
    def offered(self) -> tuple[ServiceName, ...]:
        """Services sold there: named on that marketplace, and in `offer` when it is set."""
        named = self.service_map
        wanted = catalogue.services() if self.offer is None else self.offer.split(",")
        return tuple(ServiceName(name) for name in wanted if name in named)

    def counted_statuses(self) -> frozenset[int]:
        # The status-4 budget is counted from the finished operations themselves.
        status = FINISH.retry_budget_status
        return frozenset() if status is None else frozenset({status})


def _merge(shipped: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    merged = {**shipped, **overrides}
    return {ours: theirs for ours, theirs in merged.items() if theirs}
