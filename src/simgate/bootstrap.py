"""The one place that picks concrete classes and wires them, with explicit arguments."""

from __future__ import annotations

import time

from starlette.applications import Starlette

from simgate.config import Settings, SettingsError
from simgate.http.app import AppDeps, create_app
from simgate.marketplaces.onlinesim.handlers import Onlinesim
from simgate.storage import schema
from simgate.storage.ports import Store
from simgate.storage.sqlite import SQLiteStore


def open_store(settings: Settings) -> Store:
    if settings.is_sqlite:
        return SQLiteStore.from_url(settings.database_url)
    raise SettingsError("SIMGATE_DATABASE_URL: PostgreSQL is not supported by this build yet")


def prepare_schema(settings: Settings, *, migrate: bool) -> str:
    """Apply pending migrations, or (with migrate=False) insist the schema is current."""
    if migrate:
        schema.upgrade(settings.database_url)
    else:
        schema.check_current(settings.database_url)
    return schema.head_revision()


def ensure_schema(settings: Settings) -> None:
    """For CLI commands: create the schema on an empty database, refuse an outdated one."""
    if schema.current_revision(settings.database_url) is None:
        schema.upgrade(settings.database_url)
    schema.check_current(settings.database_url)


def build_app(settings: Settings, store: Store, *, revision: str | None) -> Starlette:
    if settings.onlinesim_key is None:
        raise SettingsError("SIMGATE_ONLINESIM_KEY: required to serve Onlinesim")
    onlinesim = Onlinesim(
        store=store,
        key=settings.onlinesim_key.get_secret_value(),
        services=settings.services,
        clock=time.time,
    )
    deps = AppDeps(
        store=store,
        onlinesim=onlinesim,
        expected_revision=revision,
        max_body_bytes=settings.max_body_bytes,
    )
    return create_app(deps)
