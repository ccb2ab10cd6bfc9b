"""A request body the decoder refused, in words an owner (or a gateway's vendor) understands.

msgspec says ``Expected `float | null`, got `str` - at `$.sum` `` or "Input data was
truncated"; the answer and the log say "sum must be a number or null, not text" and "the body
ends early: it is not complete JSON". Pure: it reads the decoder's message, nothing else.
"""

from __future__ import annotations

import re

KINDS = {
    "int": "a whole number", "float": "a number", "str": "text", "bool": "true or false",
    "null": "null", "object": "a JSON object", "array": "a list", "bytes": "text",
    "datetime": "a date and time", "uuid": "a UUID",
}  # fmt: skip
_EXPECTED = re.compile(
    r"^Expected `(?P<want>[^`]+)`(?P<rule>[^,]*?)(?:, got `(?P<got>[^`]+)`)?(?: - at `(?P<at>[^`]+)`)?$"
)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`(?: - at `(?P<at>[^`]+)`)?$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`(?: - at `(?P<at>[^`]+)`)?$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+?)(?: - at `(?P<at>[^`]+)`)?$")
_BYTE = re.compile(r" [(](byte \d+)[)]$")
_AT = re.compile(r" - at `(?P<at>[^`]+)`$")


def _kinds(spec: str) -> str:
    words = [KINDS.get(part.strip(), part.strip()) for part in spec.split("|")]
    return " or ".join(dict.fromkeys(words))


def _field(at: str | None) -> str:
    """`$.sum` -> "sum"; `$` (the body itself) -> "the body"."""
    path = (at or "$").removeprefix("$").removeprefix(".")
    return path or "the body"


def plain(problem: object) -> str:
    text = str(problem).strip()
    if "truncated" in text:
        return "the body ends early: it is not complete JSON"
    if text.startswith("JSON is malformed"):
        detail = _BYTE.sub(r" at \1", _AT.sub("", text).split(": ", 1)[-1])
        return f"the body is not valid JSON: {detail}"
    if match := _ENUM.match(text):
        return f"{_field(match['at'])}: {match['value']} is not one of the accepted values"
    if match := _EXPECTED.match(text):
        got = f", not {_kinds(match['got'])}" if match["got"] else ""
        rule = match["rule"].strip()
        return f"{_field(match['at'])} must be {_kinds(match['want'])}{' ' + rule if rule else ''}{got}"
    if match := _MISSING.match(text):
        inside = "" if match["at"] in (None, "$") else f" in {_field(match['at'])}"
        return f"{match['name']} is missing{inside}"
    if match := _UNKNOWN.match(text):
        return f"{match['name']} is not a field this endpoint knows"
    return _AT.sub(lambda m: f" (at {_field(m['at'])})", text)
