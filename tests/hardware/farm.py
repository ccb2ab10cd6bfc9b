"""A live app with real drivers and a clock the test can move, for the Hardware page and its API.

Silence is judged in minutes; rather than wait them out, the test moves the clock the whole app
(drivers and console alike) reads, and the GoIP watchdog sees the same jump a real unplugged
gateway would cause.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from simgate.bootstrap import build_app
from simgate.domain.types import PhoneNumber
from simgate.storage import schema
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import LiveServer, PromptServer
from tests.hardware.conftest import PHONES, hardware_settings, seed
from tests.hardware.test_goip import Gateway, free_udp_port, keepalive

EJOIN_TOKEN = "ej-console-token"
ANDROID_KEY = "android-console-key"
STRANGER = PhoneNumber("79990000000")
"""Mapped to a GoIP line but not in the inventory: that line shows an error."""

FARM_TOML = """
[hardware.goip]
host = "127.0.0.1"
port = {port}
password = "s3cret"
offline_after = 5
[hardware.goip.lines]
goip1 = "{goip1}"
goip2 = "{stranger}"

[hardware.ejoin.devices.box1]
token = "{ejoin_token}"
[hardware.ejoin.devices.box1.ports]
"1.01" = "{ejoin1}"

[hardware.android.devices.pixel]
signing_key = "{android_key}"
phone = "{android}"

[hardware.gammu]

[hardware.modem]
enabled = false
ports = [{{device = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0", phone = "{modem}"}}]
"""


@dataclass
class MovableClock:
    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class ClockedServer(LiveServer):
    """LiveServer whose app (drivers, console, sessions) reads `clock` instead of time.time."""

    clock: MovableClock = field(default_factory=MovableClock)

    def start(self) -> ClockedServer:
        self.store = SQLiteStore.from_url(self.settings.database_url, ledger=self.settings.ledger)
        app = build_app(self.settings, self.store, revision=schema.head_revision(), clock=self.clock)
        self._server = PromptServer(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self


@dataclass
class HardwareFarm:
    server: ClockedServer
    gateway: Gateway

    def close(self) -> None:
        self.gateway.close()
        self.server.stop()

    def ejoin_status(self, st: str = "3 Registered", sig: int = 25) -> None:
        payload = {
            "type": "port-status",
            "port": "1.01",
            "st": st,
            "sig": sig,
            "iccid": "8970199000000000011",
        }
        with self.server.client() as client:
            answer = client.post(f"/intake/ejoin/box1?token={EJOIN_TOKEN}", json=payload)
        assert answer.is_success, answer.text

    def goip_keepalives(self, count: int) -> None:
        """goip1 (a SIM of the farm), goip2 (a number simgate does not sell) and an intruder."""
        assert self.gateway.ask(keepalive(count)) == f"reg:{count};status:200;"
        assert self.gateway.ask(keepalive(count, line="goip2")) == f"reg:{count};status:200;"
        assert self.gateway.ask(keepalive(count, password="guess"), timeout=0.3) is None


def start_farm(tmp_path: Path) -> HardwareFarm:
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    schema.upgrade(url)
    seeding = SQLiteStore.from_url(url)
    try:
        seed(seeding, *PHONES)
    finally:
        seeding.close()
    port = free_udp_port()
    toml = FARM_TOML.format(
        port=port, goip1=PHONES[0], stranger=STRANGER, ejoin_token=EJOIN_TOKEN, ejoin1=PHONES[1],
        android_key=ANDROID_KEY, android=PHONES[2], modem=PHONES[3],
    )  # fmt: skip
    settings = hardware_settings(url, tmp_path / "farm.toml", toml)
    server = ClockedServer(settings).start()
    return HardwareFarm(server, Gateway(port))
