"""Onlinesim's settings table: `[marketplaces.onlinesim]`, or the SIMGATE_ONLINESIM_* variables
and top-level `onlinesim_*` TOML keys that predate the table (CONTRACT.md, Settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from simgate import catalogue
from simgate.domain.types import ServiceName
from simgate.marketplaces.base import MarketplaceSettings


class OnlinesimSettings(MarketplaceSettings):
    push_url: str | None = None
    """Base URL of Onlinesim's server; the paths below are appended. Unset, SMS wait unpushed."""
    push_path: str = "/v1/PUSH_SMS"
    push_rent_path: str = "/v1/PUSH_SMS_RENT"
    services: str | None = None
    """Comma-separated catalogue names offered in GET_SERVICES; unset, the whole catalogue."""
    sms_id: Literal["operation", "message"] = "operation"
    """What PUSH_SMS sends as smsId: the activationId (Onlinesim's wording) or our SMS id."""

    @field_validator("push_path", "push_rent_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("services")
    @classmethod
    def _services(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(catalogue.services()))
        if unknown:
            raise ValueError(catalogue.not_in_catalogue(unknown))
        return ",".join(dict.fromkeys(names))

    @property
    def offered(self) -> tuple[ServiceName, ...]:
        if self.services is None:
            return catalogue.services()
        return tuple(ServiceName(name) for name in self.services.split(","))
