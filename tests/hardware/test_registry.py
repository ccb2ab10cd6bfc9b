"""The driver registry: lazy, one line per driver, and no state kept between apps."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

import simgate.hardware
from simgate import hardware
from simgate.hardware.status import DriverStatus
from simgate.services.sink import StoreSink
from simgate.storage.memory import MemoryStore

HEAVY = ("aiohttp", "serial", "serial_asyncio_fast", "smspdudecoder", "starlette", "simgate.storage")


def test_the_gammu_command_path_loads_no_driver_and_nothing_heavy() -> None:
    """`simgate intake gammu` runs for every SMS gammu-smsd receives: it must start fast."""
    probe = (
        "import sys, simgate.hardware, simgate.commands.intake, simgate.hardware.gammu;"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = loaded.stdout.split()
    drivers = [m for m in hardware.DRIVERS.values() if m != "simgate.hardware.gammu"]
    assert [m for m in modules if m in drivers] == []
    assert [m for m in modules if m.startswith(HEAVY)] == []


class Loopback:
    """A driver in one small module: what a new kind of hardware has to provide."""

    def __init__(self, sink: object) -> None:
        self.sink = sink

    def routes(self) -> Sequence[object]:
        return []

    def background(self) -> Sequence[object]:
        return []

    def status(self) -> list[DriverStatus]:
        return [DriverStatus("loopback", "loopback", None, None, None, 0, 0, 0)]


def test_a_new_driver_is_one_module_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    module = ModuleType("tests_loopback_driver")
    module.build = lambda table, sink, clock: (table.done(), Loopback(sink))[1]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(hardware, "DRIVERS", {**hardware.DRIVERS, "loopback": module.__name__})
    sink = StoreSink(MemoryStore(), time.time, lambda: None)
    drivers = hardware.build_drivers({"loopback": {}}, sink, time.time)
    assert [d.name for d in drivers.status()] == ["loopback"]
    assert drivers.heard() == {"loopback": None}


def test_no_hardware_module_keeps_mutable_state_at_module_level() -> None:
    """Two apps in one process (tests, a restart in place) must not share a driver's state."""
    folder = Path(simgate.hardware.__file__).parent
    names = [
        "simgate.hardware." + ".".join(p.relative_to(folder).with_suffix("").parts)
        for p in folder.rglob("*.py")
    ]
    for name in names:
        module = importlib.import_module(name.removesuffix(".__init__"))
        for attribute, value in vars(module).items():
            if not attribute.startswith("__"):
                assert not isinstance(value, dict | list | set | bytearray), f"{name}.{attribute}"
