"""Settings (CONTRACT.md): environment first, then a TOML file; a bad value stops start-up.

Every error names the setting as the operator wrote it (SIMGATE_PUSH_RETRY_SECONDS), so a
typo in a unit file is found at start, not when the first SMS fails to push.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from simgate import catalogue
from simgate.domain.messages import MAX_CLOCK_SKEW_SECONDS
from simgate.domain.types import ServiceName

PREFIX = "SIMGATE_"


class SettingsError(ValueError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = "sqlite:///./simgate.db"
    onlinesim_key: SecretStr | None = None
    onlinesim_push_url: str | None = None
    onlinesim_push_path: str = "/v1/PUSH_SMS"
    onlinesim_push_rent_path: str = "/v1/PUSH_SMS_RENT"
    onlinesim_services: str | None = None
    onlinesim_sms_id: Literal["operation", "message"] = "operation"
    """What PUSH_SMS sends as smsId: the activationId (Onlinesim's wording) or our SMS id."""
    push_retry_seconds: float = Field(default=10.0, gt=0, le=3600)
    push_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    """Generous on purpose: a push the receiver answers after it is sent again (README)."""
    clock_skew_seconds: float = Field(default=MAX_CLOCK_SKEW_SECONDS, ge=0, le=86_400)
    """How far a device's received_at may be from simgate's clock and still be believed."""
    intake_token: SecretStr | None = None
    admin_token: SecretStr | None = None
    log_format: Literal["text", "json"] = "text"
    hardware: dict[str, Any] = Field(default_factory=dict)
    """Per-driver tables from the TOML file ([hardware.goip], ...); see simgate.hardware."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    """Largest request body accepted (after gzip decompression); larger ones get 413."""
    alert_webhook_url: str | None = None
    alert_telegram_token: SecretStr | None = None
    alert_telegram_chat_id: str | None = None
    alert_telegram_api_url: str = "https://api.telegram.org"
    alert_check_seconds: float = Field(default=30.0, ge=1, le=3600)
    alert_push_pending_minutes: float = Field(default=10.0, ge=0, le=10080)
    alert_gateway_silent_minutes: float = Field(default=15.0, ge=0, le=10080)
    alert_marketplace_silent_minutes: float = Field(default=30.0, ge=0, le=10080)
    alert_sim_failures: int = Field(default=3, ge=0, le=1000)
    """0 turns a rule off (README "Alerts")."""

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if value.startswith(("postgresql://", "postgres://")):
            return value
        raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST/DB")

    @field_validator("onlinesim_key", "intake_token", "admin_token", "alert_telegram_token")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty secret would start a server that refuses every caller (or, for a
        # marketplace key compared loosely, one that accepts anyone): say so at start.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it instead)")
        return value

    @field_validator("alert_sim_failures")
    @classmethod
    def _sim_failures(cls, value: int) -> int:
        # Failing SIMs are found through the SIM table's "losing" flag (3 activations).
        if 0 < value < 3:
            raise ValueError("must be 0 (off) or at least 3")
        return value

    @field_validator("onlinesim_push_url", "alert_webhook_url", "alert_telegram_api_url")
    @classmethod
    def _push_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("onlinesim_push_path", "onlinesim_push_rent_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("onlinesim_services")
    @classmethod
    def _services(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(catalogue.services()))
        if unknown:
            raise ValueError(f"not in the service catalogue: {', '.join(unknown)}")
        return ",".join(dict.fromkeys(names))

    @property
    def services(self) -> tuple[ServiceName, ...]:
        if self.onlinesim_services is None:
            return catalogue.services()
        return tuple(ServiceName(name) for name in self.onlinesim_services.split(","))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Merge the TOML file (keys lower-case, no prefix) with SIMGATE_* variables, env winning."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    path = config_file or environ.get("SIMGATE_CONFIG")
    # Blame what the owner typed: the --config option, or the variable.
    origin = "--config" if config_file else "SIMGATE_CONFIG"
    if path:
        try:
            with open(path, "rb") as handle:
                values.update(tomllib.load(handle))
        except OSError as error:
            raise SettingsError(f"{origin}: cannot read {path}: {error.strerror}") from error
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"{path} is not valid TOML: {error}") from error
    fields = set(Settings.model_fields)
    from_env: set[str] = set()
    for name, value in environ.items():
        key = name.removeprefix(PREFIX).lower()
        if name.startswith(PREFIX) and key in fields:
            values[key] = value
            from_env.add(key)
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise SettingsError(_explain(error, from_env, path)) from None


def _explain(error: ValidationError, from_env: set[str], path: str | Path | None) -> str:
    """Each problem under the name the owner wrote: SIMGATE_X for a variable, `x` in the file."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "?"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown setting"
        top = str(problem["loc"][0]) if problem["loc"] else "?"
        name = f"{PREFIX}{top.upper()}" if top in from_env or not path else f"{path}: {field}"
        lines.append(f"{name}: {message}")
    return "; ".join(lines)
