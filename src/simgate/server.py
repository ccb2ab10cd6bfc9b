"""`simgate serve`: migrations, the store, the app, uvicorn; SIGTERM stops it cleanly."""

from __future__ import annotations

import logging

import uvicorn

from simgate import logs
from simgate.bootstrap import build_app, open_store, prepare_schema
from simgate.config import Settings

log = logging.getLogger("simgate.server")


def run_server(settings: Settings, *, host: str, port: int, worker: bool, migrate: bool) -> None:
    logs.configure(settings.log_format)
    revision = prepare_schema(settings, migrate=migrate)
    store = open_store(settings)
    try:
        app = build_app(settings, store, revision=revision)
        config = uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None, lifespan="on")
        log.info("serving on http://%s:%s (schema %s)", host, port, revision)
        uvicorn.Server(config).run()
    finally:
        store.close()
