"""One driver's settings table ([hardware.NAME]): typed getters whose errors name the key as written.

A typo in [hardware.goip] must stop `simgate serve` at start with "hardware.goip.prot: unknown
key", not leave a gateway silently unheard while its SMS expire unsold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simgate.domain.errors import InvalidNumber
from simgate.domain.types import PhoneNumber
from simgate.services.phones import normalise_phone
from simgate.settings_error import SettingsError


class Table:
    """One TOML table; every getter records the key, and `done()` rejects the unread ones."""

    def __init__(self, path: str, raw: object) -> None:
        if not isinstance(raw, Mapping):
            raise SettingsError(f"{path}: must be a table")
        self.path = path
        self.raw: Mapping[str, Any] = raw
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}"

    def fail(self, name: str, message: str) -> SettingsError:
        return SettingsError(f"{self.key(name)}: {message}")

    def has(self, name: str) -> bool:
        return name in self.raw

    def value(self, name: str) -> Any:
        """The raw value (None if absent), marked as read."""
        self.read.add(name)
        return self.raw.get(name)

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.value(name)
        if value is None:
            if required:
                raise self.fail(name, "required")
            return default
        if not isinstance(value, str):
            raise self.fail(name, "must be a string")
        if required and not value.strip():
            raise self.fail(name, "must not be empty")
        return value

    def required_string(self, name: str) -> str:
        value = self.string(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.value(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"must be {low}-{high}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.value(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(name, f"must be a number of seconds from {low:g} to {high:g}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.value(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def phone(self, name: str) -> PhoneNumber | None:
        value = self.value(name)
        if value is None:
            return None
        return phone_value(self.key(name), value)

    def table(self, name: str) -> Table:
        value = self.value(name)
        return Table(self.key(name), {} if value is None else value)

    def tables(self, name: str) -> dict[str, Table]:
        """A table of named sub-tables, e.g. [hardware.ejoin.devices.box1]."""
        outer = self.table(name)
        outer.read.update(outer.raw)
        return {str(key): Table(outer.key(str(key)), value) for key, value in outer.raw.items()}

    def phones(self, name: str) -> dict[str, PhoneNumber]:
        """A table of port/line/slot -> phone number."""
        outer = self.table(name)
        outer.read.update(outer.raw)
        return {str(key): phone_value(outer.key(str(key)), value) for key, value in outer.raw.items()}

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.read)
        if unknown:
            raise self.fail(unknown[0], "unknown key")


def phone_value(key: str, value: object) -> PhoneNumber:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SettingsError(f"{key}: must be a phone number (digits with the country code)")
    try:
        return normalise_phone(str(value))
    except InvalidNumber as problem:
        raise SettingsError(f"{key}: {problem}") from None
