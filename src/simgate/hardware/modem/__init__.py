"""AT-command modem pools: one task per serial port, PDU mode, +CMTI plus periodic sweeps."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from simgate.hardware.base import Background, Clock, Sink
from simgate.hardware.feed import Feed
from simgate.hardware.health import Health
from simgate.hardware.modem.port import ModemConfig, ModemPort, PortConfig
from simgate.hardware.settings_table import Table
from simgate.hardware.status import DriverStatus
from simgate.settings_error import SettingsError

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

STORAGE = re.compile(r"^(SM|ME|MT|SR|BM|TA)$")


def parse(table: Table) -> ModemConfig:
    raw_ports = table.value("ports")
    if not isinstance(raw_ports, list) or not raw_ports:
        raise table.fail("ports", 'list the serial ports: ports = [{device = "/dev/serial/by-path/..."}]')
    ports: list[PortConfig] = []
    for position, entry in enumerate(raw_ports):
        key = f"ports[{position}]"
        if isinstance(entry, str):
            entry = {"device": entry}
        sub = Table(table.key(key), entry)
        device = sub.required_string("device")
        ports.append(PortConfig(device=device, phone=sub.phone("phone")))
        sub.done()
    devices = [port.device for port in ports]
    if len(set(devices)) != len(devices):
        raise table.fail("ports", "a device is listed twice")
    storage = table.string("storage")
    if storage is not None and not STORAGE.match(storage):
        raise table.fail("storage", "must be SM (SIM), ME (modem) or MT (both)")
    config = ModemConfig(
        ports=tuple(ports),
        baudrate=table.integer("baudrate", 115200, 300, 4_000_000),
        sweep_seconds=table.number("sweep_seconds", 30.0, 0.2, 3600.0),
        status_seconds=table.number("status_seconds", 60.0, 0.2, 3600.0),
        command_timeout=table.number("command_timeout", 5.0, 0.1, 120.0),
        list_timeout=table.number("list_timeout", 20.0, 0.1, 300.0),
        multipart_timeout=table.number("multipart_timeout", 300.0, 1.0, 86400.0),
        reopen_seconds=table.number("reopen_seconds", 1.0, 0.05, 600.0),
        max_backoff=table.number("max_backoff", 60.0, 0.05, 3600.0),
        storage=storage,
        use_device_time=table.boolean("use_device_time", True),
    )
    table.done()
    if config.max_backoff < config.reopen_seconds:
        raise SettingsError(f"{table.key('max_backoff')}: must be at least reopen_seconds")
    return config


log = logging.getLogger("simgate.modem")
STOP_SECONDS = 5.0
"""How long a port task may take to stop before shutdown goes on without it."""


class ModemDriver:
    def __init__(self, config: ModemConfig, sink: Sink, clock: Clock) -> None:
        self.config = config
        self.health = Health("modem", "modem", clock)
        self.sink = Feed(sink, self.health)
        self.ports = [ModemPort(config, port, self.sink, self.health, clock) for port in config.ports]

    def routes(self) -> list[BaseRoute]:
        return []

    def background(self) -> list[Background]:
        return [self.running]

    def status(self) -> list[DriverStatus]:
        return [self.health.snapshot()]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(port.run_forever(), name=f"modem {port.name}") for port in self.ports]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            # A serial port can hang while it closes (a wedged USB modem): shutdown must not
            # wait for it forever, or SIGTERM never ends `serve`.
            if tasks:
                _, stuck = await asyncio.wait(tasks, timeout=STOP_SECONDS)
                for task in stuck:
                    log.error("%s did not stop within %g s; abandoned", task.get_name(), STOP_SECONDS)


def build(table: Table, sink: Sink, clock: Clock) -> ModemDriver:
    return ModemDriver(parse(table), sink, clock)
