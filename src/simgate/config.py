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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simgate import catalogue
from simgate import marketplaces as registry
from simgate.domain import history, ledger
from simgate.domain.history import HistoryPolicy
from simgate.domain.ledger import ExclusionGroup, LedgerRules
from simgate.domain.messages import MAX_CLOCK_SKEW_SECONDS
from simgate.domain.types import CountryName, ServiceName
from simgate.settings_error import SettingsError as SettingsError
from simgate.storage.database_url import DatabaseUrl

PREFIX = "SIMGATE_"
MIN_OWNER_SECRET = 16
"""Tokens the owner chooses: 16 characters of `openssl rand -hex 16` is out of reach of guessing."""


class ExclusionGroupSettings(BaseModel):
    """One `[[exclusion_groups]]` table: services in simgate's catalogue names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    """Shown by `numbers why`; unset: the services joined by '+'."""
    services: list[str]
    countries: list[str] = Field(default_factory=list)
    """Only numbers of these countries; empty: every country."""

    @field_validator("services", "countries", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [item.strip().lower() if isinstance(item, str) else item for item in value]
        return value

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        if len(set(value)) < 2:
            raise ValueError("a group needs at least two different services")
        unknown = sorted(set(value) - set(catalogue.services()))
        if unknown:
            raise ValueError(catalogue.not_in_catalogue(unknown))
        return value

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(catalogue.countries()))
        if unknown:
            raise ValueError(f"not in the country catalogue: {', '.join(unknown)}")
        return value

    def group(self) -> ExclusionGroup:
        return ExclusionGroup(
            self.name or "+".join(sorted(set(self.services))),
            frozenset(ServiceName(s) for s in self.services),
            frozenset(CountryName(c) for c in self.countries),
        )


HEROSMS_GROUPS = tuple(
    ExclusionGroupSettings(name=g.name, services=sorted(g.services), countries=sorted(g.countries))
    for g in ledger.HEROSMS_GROUPS
)
"""The shipped groups (domain.ledger.HEROSMS_GROUPS) as settings: the default of exclusion_groups."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = "sqlite:///./simgate.db"
    postgres_pool_size: int = Field(default=10, ge=1, le=100)
    """PostgreSQL connections (and threads running units of work) per process; docs/deployment.md."""
    marketplaces: dict[str, Any] = Field(default_factory=dict)
    """Every registered marketplace's settings (a MarketplaceSettings each), from its
    `[marketplaces.NAME]` table and its SIMGATE_NAME_* variables; set even when disabled."""
    push_retry_seconds: float = Field(default=10.0, gt=0, le=3600)
    push_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    """Generous on purpose: a push the receiver answers after it is sent again (README)."""
    clock_skew_seconds: float = Field(default=MAX_CLOCK_SKEW_SECONDS, ge=0, le=86_400)
    """How far a device's received_at may be from simgate's clock and still be believed."""
    intake_token: SecretStr | None = None
    admin_token: SecretStr | None = None
    metrics_token: SecretStr | None = None
    """Bearer token for GET /metrics; unset, /metrics answers 503 (it shows earnings)."""
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
    # Lanes (README, "Several marketplaces"): how free SIMs move between marketplaces.
    lane_rebalance_seconds: float = Field(default=60.0, ge=1, le=86_400)
    lane_demand_seconds: float = Field(default=3600.0, ge=60, le=30 * 86_400)
    lane_stale_seconds: float = Field(default=600.0, ge=60, le=86_400)
    lane_moves: int = Field(default=20, ge=0, le=100_000)
    lane_min_share: float = Field(default=0.1, ge=0, le=1)
    lane_idle_seconds: float = Field(default=900.0, ge=0, le=30 * 86_400)
    """A free SIM neither issued nor moved this long rotates to another lane; 0: never."""
    lane_weights: str | None = None
    """`name=weight,...`, e.g. `smshub=2,onlinesim=1`; unnamed marketplaces weigh 1."""
    exclusion_groups: tuple[ExclusionGroupSettings, ...] = HEROSMS_GROUPS
    """TOML `[[exclusion_groups]]`; set, it replaces the shipped groups (README)."""
    history_days: float = Field(default=history.DEFAULT_DAYS, ge=0, le=36_500)
    """Days of operations, SMS, pushes and alert notices kept; 0: forever (README, "History
    and disk use"). Never shorter in effect than the longest resale window."""

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        DatabaseUrl.parse(value)  # raises ValueError naming the two shapes
        return value

    @model_validator(mode="before")
    @classmethod
    def _fold_marketplace_keys(cls, data: Any) -> Any:
        """`onlinesim_key = ...` (top level) is `[marketplaces.onlinesim] key = ...`: the flat
        spelling predates the tables and keeps working; it wins over the table."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        tables = data.get("marketplaces") or {}
        if not isinstance(tables, dict):
            return data  # the field's own validation names the problem
        tables = {name: dict(t) if isinstance(t, dict) else t for name, t in tables.items()}
        for flat in [key for key in data if isinstance(key, str)]:
            found = _marketplace_field(flat)
            if found is not None:
                name, field = found
                table = tables.setdefault(name, {})
                if isinstance(table, dict):
                    table[field] = data.pop(flat)
        data["marketplaces"] = tables
        return data

    @field_validator("marketplaces")
    @classmethod
    def _marketplaces(cls, tables: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        unknown = sorted(set(tables) - set(registry.names()))
        if unknown:
            known = ", ".join(registry.names())
            raise ValueError(f"unknown marketplace {', '.join(map(repr, unknown))} (known: {known})")
        built: dict[str, Any] = {}
        problems: list[str] = []
        for name in registry.names():
            model = registry.plugin(name).settings
            table = tables.get(name, {})
            if isinstance(table, model):
                built[name] = table  # already validated (a copy of these settings)
                continue
            if not isinstance(table, dict):
                problems.append(f"[marketplaces.{name}] must be a table")
                continue
            try:
                built[name] = model.model_validate(table)
            except ValidationError as error:
                problems.extend(_explain_marketplace(name, model.FLAT_ALIASES, error, info.context))
        if problems:
            raise ValueError("; ".join(problems))
        return built

    @field_validator("intake_token", "admin_token", "alert_telegram_token", "metrics_token")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty secret would start a server that refuses every caller: say so at start.
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

    @field_validator("intake_token", "admin_token", "metrics_token")
    @classmethod
    def _owner_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # The owner picks these: a short one is guessed (rate limits only slow that down).
        # Secrets others issue (a marketplace key, a device password) are taken as given.
        if value is not None and len(value.get_secret_value()) < MIN_OWNER_SECRET:
            raise ValueError(
                f"must be at least {MIN_OWNER_SECRET} characters (got {len(value.get_secret_value())}),"
                " e.g. the output of `openssl rand -hex 16`"
            )
        return value

    @field_validator("alert_webhook_url", "alert_telegram_api_url")
    @classmethod
    def _push_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("history_days")
    @classmethod
    def _history_days(cls, value: float) -> float:
        # Shorter would prune what the dashboard's 30-day earnings and the lanes' demand read.
        if 0 < value < history.MIN_DAYS:
            raise ValueError(f"must be 0 (keep history forever) or at least {history.MIN_DAYS} days")
        return value

    @field_validator("lane_weights")
    @classmethod
    def _lane_weights(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        for item in value.split(","):
            name, _, weight = item.partition("=")
            try:
                number = float(weight)
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not name=weight") from None
            if not name.strip() or not 0 <= number <= 1000:
                raise ValueError(f"{item.strip()!r}: a name and a weight from 0 to 1000")
            if name.strip().lower() not in registry.names():
                # A misspelt name would weigh nothing and leave the intended lane at 1.
                known = ", ".join(registry.names())
                raise ValueError(f"unknown marketplace {name.strip()!r} (known: {known})")
        return value

    @property
    def weights(self) -> dict[str, float]:
        """SIMGATE_LANE_WEIGHTS as a mapping (names lower-case)."""
        if self.lane_weights is None:
            return {}
        pairs = (item.partition("=") for item in self.lane_weights.split(","))
        return {name.strip().lower(): float(weight) for name, _, weight in pairs}

    @property
    def ledger(self) -> LedgerRules:
        """The resale windows every registered marketplace's terms set, and the groups."""
        resale = tuple(rule for name, table in self.marketplaces.items() for rule in table.resale_rules(name))
        return LedgerRules(resale=resale, groups=tuple(g.group() for g in self.exclusion_groups))

    @property
    def history(self) -> HistoryPolicy:
        """SIMGATE_HISTORY_DAYS with what it may never prune: the resale windows' sales and
        the finished operations a marketplace's rule counts (domain/history.py)."""
        windows = [rule.window_seconds for rule in self.ledger.resale]
        counted = frozenset(
            (name, status) for name, table in self.marketplaces.items() for status in table.counted_statuses()
        )
        return HistoryPolicy(self.history_days, max(windows, default=0.0), counted)

    @property
    def database(self) -> DatabaseUrl:
        return DatabaseUrl.parse(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database.is_sqlite


TABLES = {
    "marketplaces": "[marketplaces.NAME] tables, or the SIMGATE_NAME_* variables",
    "hardware": "[hardware.DRIVER] tables",
    "exclusion_groups": "[[exclusion_groups]] tables",
}
"""Settings that only TOML tables can hold: a variable of that name is an error saying so."""


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
    in_file = set(values)
    fields = set(Settings.model_fields) - set(TABLES)
    from_env: set[str] = set()
    for name, value in environ.items():
        key = name.removeprefix(PREFIX).lower()
        if name.startswith(PREFIX) and key in TABLES:
            raise SettingsError(f"{name}: {key} is set in the TOML file ({TABLES[key]}), not by a variable")
        if name.startswith(PREFIX) and (key in fields or _marketplace_field(key) is not None):
            values[key] = value
            from_env.add(key)
    context = {"from_env": from_env, "in_file": in_file, "path": path}
    try:
        return Settings.model_validate(values, context=context)
    except ValidationError as error:
        raise SettingsError(_explain(error, from_env, path)) from None


def known_variables() -> set[str]:
    """Every SIMGATE_* variable a setting reads, the marketplaces' included."""
    names = {PREFIX + name.upper() for name in Settings.model_fields}
    for market in registry.names():
        model = registry.plugin(market).settings
        spelled = {field: suffix for suffix, field in model.FLAT_ALIASES.items()}
        for field in model.model_fields:
            names.add(f"{PREFIX}{market.upper()}_{spelled.get(field, field).upper()}")
    return names


def _explain(error: ValidationError, from_env: set[str], path: str | Path | None) -> str:
    """Each problem under the name the owner wrote: SIMGATE_X for a variable, `x` in the file."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "?"
        message = problem["msg"].removeprefix("Value error, ")
        if field == "marketplaces":
            lines.append(message)  # already names each setting (_explain_marketplace)
            continue
        if problem["type"] == "extra_forbidden":
            message = "unknown setting"
        top = str(problem["loc"][0]) if problem["loc"] else "?"
        name = f"{PREFIX}{top.upper()}" if top in from_env or not path else f"{path}: {field}"
        lines.append(f"{name}: {message}")
    return "; ".join(lines)


def _marketplace_field(flat: str) -> tuple[str, str] | None:
    """('smshub', 'push_url') for `smshub_push_url`, if that names a marketplace's setting."""
    for name in registry.names():
        if flat.startswith(name + "_"):
            model = registry.plugin(name).settings
            suffix = flat[len(name) + 1 :]
            field = model.FLAT_ALIASES.get(suffix, suffix)
            if field in model.model_fields:
                return name, field
    return None


def _explain_marketplace(
    name: str, aliases: Mapping[str, str], error: ValidationError, context: Any
) -> list[str]:
    """Each problem under the name the owner wrote: SIMGATE_SMSHUB_PUSH_URL for a variable,
    `smshub_push_url` or `marketplaces.smshub.push_url` in the file."""
    context = context if isinstance(context, dict) else {}
    from_env, in_file = context.get("from_env", set()), context.get("in_file", set())
    path = context.get("path")
    spelled = {field: suffix for suffix, field in aliases.items()}
    lines = []
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"]]
        if not loc:  # a rule across fields of the table
            where = f"{path}: marketplaces.{name}" if path else f"[marketplaces.{name}]"
            lines.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
            continue
        suffix = spelled.get(loc[0], loc[0])
        flat = f"{name}_{suffix}"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown setting"
        if flat in from_env or not path:
            where = f" ({'.'.join(loc[1:])})" if len(loc) > 1 else ""
            lines.append(f"{PREFIX}{flat.upper()}{where}: {message}")
        elif flat in in_file:
            lines.append(f"{path}: {'.'.join([flat, *loc[1:]])}: {message}")
        else:
            lines.append(f"{path}: {'.'.join(['marketplaces', name, suffix, *loc[1:]])}: {message}")
    return lines
