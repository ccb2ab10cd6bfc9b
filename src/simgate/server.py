"""`simgate serve`: migrations, the store, the app, uvicorn; SIGTERM stops it cleanly."""

from __future__ import annotations

import gc
import logging
import signal
import socket
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from simgate import logs
from simgate.bootstrap import build_app, open_store, prepare_schema, require_serving
from simgate.config import Settings, SettingsError
from simgate.http.guard import Limits, guarded_protocol

log = logging.getLogger("simgate.server")


def uvicorn_config(
    app: ASGIApp, *, host: str, port: int, limits: Limits | None = None, **extra: object
) -> uvicorn.Config:
    """uvicorn with simgate's connection limits (http/guard.py); tests serve through it too."""
    limits = limits or Limits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        access_log=False,
        **extra,  # type: ignore[arg-type]
    )


class PortUnavailable(RuntimeError):
    pass


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts: a busy port must fail before the
    log says "serving on" and before a worker pushes anything. SO_REUSEADDR as uvicorn does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise PortUnavailable(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


# The youngest generation is collected after 10,000 net allocations instead of CPython's 700.
# A pair (GET_NUMBER + FINISH) allocates a few hundred container objects that reference
# counting frees at once, so at 700 the collector ran every pair or two and walked what was in
# flight (requests, rows, futures) each time: 6 % of the server's CPU per pair and a p99 some
# milliseconds higher in alternating A/B runs (docs/benchmarks.md). Cycles (exceptions holding
# their frames, mostly) now wait at most ~10,000 allocations, a few hundred kilobytes.
SERVING_GC_THRESHOLD = (10_000, 10, 10)


def settle_garbage_collector() -> None:
    """Leave what start-up built (modules, settings, the app) out of every later collection.

    ~100,000 objects outlive start-up; each full collection walked them all again, a pause of
    tens of milliseconds that landed on whichever requests were in flight (the p99 of
    GET_NUMBER + FINISH; docs/benchmarks.md). Frozen objects are still freed by reference
    counting; only cycles among them would wait, and start-up builds none that it drops.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLD)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_server(settings: Settings, *, host: str, port: int, worker: bool, migrate: bool) -> None:
    logs.configure(settings.log_format, queued=True)
    # uvicorn catches SIGTERM while it serves, shuts down, then raises it again for the handler
    # it found. The default one killed the process there: the log thread's last lines (the
    # shutdown's, requests finished meanwhile) never written, the store never closed. This
    # one unwinds instead (the `finally`s below, then logging's own close at exit), and a
    # SIGTERM before uvicorn starts (during migrations) stops the process as before.
    signal.signal(signal.SIGTERM, _stop)
    require_serving(settings)  # before touching the database: a missing key changes nothing
    sock = listen(host, port)
    try:
        revision = prepare_schema(settings, migrate=migrate)
        store = open_store(settings)
        try:
            app = build_app(settings, store, revision=revision, worker=worker)
            config = uvicorn_config(app, host=host, port=port, log_config=None, lifespan="on")
            log.info("serving on http://%s:%s (schema %s)", host, port, revision)
            settle_garbage_collector()
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            store.close()
    finally:
        sock.close()


def run_worker(settings: Settings) -> None:
    """`simgate worker`: only the delivery loop, until SIGTERM or SIGINT."""
    import asyncio
    import signal

    from simgate.bootstrap import build_worker, ensure_schema, protect_logs, running

    logs.configure(settings.log_format)
    ensure_schema(settings)
    protect_logs(settings)
    store = open_store(settings)
    built = build_worker(settings, store)
    if built is None:
        store.close()
        raise SettingsError("no enabled marketplace has a push URL: nothing for a worker to do")
    worker, sender = built

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            worker.halt()  # no claim may start after the signal, not even one loop turn later
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        async with running(worker, sender):
            await stop.wait()

    try:
        asyncio.run(main())
    finally:
        store.close()
