"""[hardware.*] tables: a bad value stops start-up with the key's name; good ones build drivers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simgate import hardware
from simgate.cli import app
from simgate.config import SettingsError
from simgate.hardware import DISABLED_NOTE, NOTHING_NOTE
from simgate.hardware.gammu import GammuDriver
from simgate.http.intake import Intake
from simgate.services.sink import StoreSink
from simgate.storage.memory import MemoryStore
from tests.hardware.conftest import hardware_settings


def build(tmp_path: Path, toml: str) -> hardware.Drivers:
    settings = hardware_settings("sqlite:///unused.db", tmp_path / "simgate.toml", toml)
    return hardware.build_drivers(
        settings.hardware, StoreSink(MemoryStore(), time.time, lambda: None), time.time
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[hardware.goip]\npassword = "x"\nport = 70000\n', "hardware.goip.port: must be 1-65535"),
        ('[hardware.goip]\npassword = "x"\nprot = 4444\n', "hardware.goip.prot: unknown key"),
        ("[hardware.goip]\nport = 4444\n", "hardware.goip.password: required"),
        (
            '[hardware.goip]\npassword = "x"\n[hardware.goip.lines]\ngoip1 = "12"\n',
            "hardware.goip.lines.goip1:",
        ),
        ('[hardware.goipp]\npassword = "x"\n', "hardware.goipp: unknown driver"),
        ("[hardware.ejoin.devices.box1]\n", "hardware.ejoin.devices.box1.token: required"),
        (
            '[hardware.ejoin.devices.box1]\ntoken = "t"\nurl = "http://10.0.0.5"\n',
            "hardware.ejoin.devices.box1.username: required with url",
        ),
        (
            '[hardware.android.devices.p]\nsigning_key = "k"\n[hardware.android.devices.p.sims]\n1 = "abc"\n',
            "hardware.android.devices.p.sims.1: phone 'abc' must be digits",
        ),
        ("[hardware.modem]\nbaudrate = 9600\n", "hardware.modem.ports: list the serial ports"),
        (
            '[hardware.modem]\nports = ["/dev/ttyUSB0"]\nsweep_seconds = -1\n',
            "hardware.modem.sweep_seconds: must be a number of seconds",
        ),
        ('[hardware.gammu]\nurl = "ftp://x"\n', "hardware.gammu.url: must be"),
        (
            '[hardware.goip]\npassword = "x"\nenabled = "yes"\n',
            "hardware.goip.enabled: must be true or false",
        ),
    ],
)
def test_bad_tables_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        build(tmp_path, toml)
    assert str(caught.value).startswith(message)


def test_configured_drivers_give_routes_tasks_and_status(tmp_path: Path) -> None:
    drivers = build(
        tmp_path,
        """
[hardware.goip]
password = "x"
[hardware.goip.lines]
goip1 = "79281234560"
[hardware.ejoin.devices.box1]
token = "t"
[hardware.android.devices.pixel]
signing_key = "k"
phone = "+79281234561"
[hardware.modem]
enabled = false
ports = [{device = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0", phone = "79281234562"}]
""",
    )
    paths = {getattr(route, "path", "") for route in drivers.routes}
    assert paths == {"/intake/ejoin/{device}", "/intake/android/{device}"}
    assert len(drivers.background) == 2  # the GoIP listener and the Ejoin poller; the modem is off
    names = [entry.name for entry in drivers.status()]
    assert names == ["goip", "ejoin:box1", "android:pixel"]
    [goip] = [entry for entry in drivers.status() if entry.kind == "goip"]
    assert goip.ports[0].port == "goip1"
    assert goip.ports[0].phone == "79281234560"


def test_serve_refuses_to_start_on_a_bad_table(tmp_path: Path) -> None:
    config = tmp_path / "simgate.toml"
    config.write_text('[hardware.goip]\npassword = "x"\nport = 0\n')
    env = {
        "SIMGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "SIMGATE_ONLINESIM_KEY": "k",
    }
    result = CliRunner().invoke(app, ["--config", str(config), "serve", "--port", "1"], env=env)
    assert result.exit_code == 2
    assert "hardware.goip.port: must be 1-65535" in result.output


def test_only_sources_that_speak_on_their_own_can_be_silent(tmp_path: Path) -> None:
    drivers = build(
        tmp_path,
        """
[hardware.goip]
password = "x"
[hardware.android.devices.pixel]
signing_key = "k"
phone = "+79281234561"
""",
    )
    drivers.add(Intake(StoreSink(MemoryStore(), time.time, lambda: None), "token", time.time))
    assert [d.name for d in drivers.status()] == ["goip", "android:pixel", "http"]
    assert drivers.heard() == {"goip": None}, "a phone and /intake/sms wait for an SMS"


def test_tables_without_live_status_are_listed_with_the_reason(tmp_path: Path) -> None:
    drivers = build(
        tmp_path,
        """
[hardware.goip]
password = "x"
[hardware.gammu]
[hardware.modem]
enabled = false
ports = ["/dev/ttyUSB0"]
""",
    )
    drivers.configured.append(
        ("quiet", True, Intake(StoreSink(MemoryStore(), time.time, lambda: None), None, time.time))
    )
    assert [(u.name, u.enabled, u.note) for u in drivers.unwatched()] == [
        ("gammu", True, GammuDriver.idle_note),
        ("modem", False, DISABLED_NOTE),
        ("quiet", True, NOTHING_NOTE),
    ]
