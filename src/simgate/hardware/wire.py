"""What the HTTP drivers share when they read a device's JSON: the refusal and its words."""

from __future__ import annotations


class Malformed(ValueError):
    """Not what the device sends: answered 400, nothing of the request stored or applied."""


def kind(value: object) -> str:
    """A JSON value's type in an error message (never the value: it may be megabytes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "text" if isinstance(value, str) else "a number"


def optional_text(value: object, where: str) -> str | None:
    """A field that is text when present."""
    if value is None or isinstance(value, str):
        return value
    raise Malformed(f"{where} must be text, not {kind(value)}")
