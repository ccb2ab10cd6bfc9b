"""What an Ejoin / Skyline gateway posts, read strictly enough that nothing odd reaches the store.

The gateway writes ports as "1.01" or "1A", times as Unix seconds, and everything else as text
(some firmware writes numbers as JSON numbers). Anything else (an object where a sender
should be, a time past the year 9999, a 5,000-digit port) is not a gateway speaking: the
push gets a 400 naming the field and nothing of it is stored, where it used to be stored as
the Python text of a dict, or to raise deep in the driver (a 500).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass

from simgate.domain.messages import received_at_problem
from simgate.hardware.wire import Malformed, kind

PORT_LETTER = re.compile(r"^(\d+)([A-Za-z])$", re.ASCII)
PORT_DOTTED = re.compile(r"^(\d+)(?:\.(\d+))?$", re.ASCII)
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$", re.ASCII)
HEADER_END = "\r\n\r\n"
MAX_PORT = 16
"""'1.01', '32D': a longer port name is not one (and int() of 4,300 digits raises)."""
MAX_ID = 40
"""An ICCID has at most 22 characters, an IMSI 15: the Hardware page shows them whole."""
SMS_FIELDS = "[report, port, time, sender, recipient, text]"


def port_name(raw: object) -> str:
    """'1A', '1.1', '1.01' and '1' all name port 1 slot 1: '1.01'."""
    text = str(raw).strip()
    lettered = PORT_LETTER.match(text)
    if lettered:
        return f"{int(lettered[1])}.{ord(lettered[2].upper()) - ord('A') + 1:02d}"
    dotted = PORT_DOTTED.match(text)
    if dotted:
        return f"{int(dotted[1])}.{int(dotted[2] or 1):02d}"
    return text


def leading_code(raw: str) -> int | None:
    """`st` "3 Registered" -> 3; `sig` "25" -> 25. ASCII digits only: '²' is a digit to
    str.isdigit() and a ValueError to int()."""
    head = raw.split(" ", 1)[0]
    return int(head) if head.isascii() and head.isdigit() and len(head) <= 6 else None


def scalar(value: object, where: str) -> str:
    """A field the firmware writes as text or as a number: its text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Malformed(f"{where} must be text or a number, not {kind(value)}")
    return str(value).strip()


def optional(value: object, where: str) -> str:
    return "" if value is None else scalar(value, where)


def identifier(value: object, where: str) -> str | None:
    text = optional(value, where)
    if len(text) > MAX_ID:
        raise Malformed(f"{where} is longer than {MAX_ID} characters")
    return text or None


def port_field(value: object, where: str) -> str:
    text = scalar(value, where)
    if not text or len(text) > MAX_PORT:
        raise Malformed(f"{where} must be a port such as '1.01' or '1A'")
    return port_name(text)


def stamp_field(value: object, where: str) -> float | None:
    """Unix seconds, as a number or digits; a text that is no number (a firmware's date
    format) means no time, as before; a number no clock shows is malformed."""
    if value is None or (isinstance(value, str) and not NUMBER.match(value.strip())):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Malformed(f"{where} must be Unix seconds, not {kind(value)}")
    try:
        stamp = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits
        stamp = math.inf
    problem = received_at_problem(stamp)
    if problem is not None:
        raise Malformed(f"{where} {problem}")
    return stamp


@dataclass(frozen=True, slots=True)
class SmsRow:
    """One recv-sms entry."""

    report: bool
    """A delivery report for an SMS the gateway sent: not ours to store."""
    port: str
    stamp: float | None
    sender: str
    recipient: str
    text: str
    """As sent: base64 of the UTF-8 text, or plain text on some firmware (sms_text)."""


def sms_row(raw: object, where: str) -> SmsRow:
    if not isinstance(raw, list) or len(raw) < 6:
        raise Malformed(f"{where} must be an array of 6 fields {SMS_FIELDS}, not {kind(raw)}")
    if not isinstance(raw[5], str):
        raise Malformed(f"{where}[5] (text) must be text, not {kind(raw[5])}")
    return SmsRow(
        report=optional(raw[0], f"{where}[0] (report)") == "1",
        port=port_field(raw[1], f"{where}[1] (port)"),
        stamp=stamp_field(raw[2], f"{where}[2] (time)"),
        sender=scalar(raw[3], f"{where}[3] (sender)"),
        recipient=optional(raw[4], f"{where}[4] (recipient)"),
        text=raw[5],
    )


def sms_rows(raw: object) -> list[SmsRow]:
    """A push's `sms` array, every entry checked before any is stored."""
    if not isinstance(raw, list):
        raise Malformed(f"sms must be a list of {SMS_FIELDS} arrays, not {kind(raw)}")
    return [sms_row(row, f"sms[{i}]") for i, row in enumerate(raw)]


@dataclass(frozen=True, slots=True)
class PortState:
    """One port-status report (alone, or an entry of dev-status)."""

    port: str
    number: str
    """`sn`: the SIM's own number, when the gateway knows it."""
    registration: str
    """`st` as sent: "3 Registered", "0 No SIM", or just the code."""
    code: int | None
    active: bool
    signal: int | None
    iccid: str | None
    imsi: str | None


def port_state(raw: object, where: str) -> PortState:
    if not isinstance(raw, dict):
        raise Malformed(f"{where} must be an object, not {kind(raw)}")
    if "port" not in raw:
        raise Malformed(f"{where}.port is missing")
    registration = optional(raw.get("st"), f"{where}.st")
    return PortState(
        port=port_field(raw["port"], f"{where}.port"),
        number=optional(raw.get("sn"), f"{where}.sn"),
        registration=registration,
        code=leading_code(registration),
        active=optional(raw.get("active", 1), f"{where}.active") != "0",
        signal=leading_code(optional(raw.get("sig"), f"{where}.sig")),
        iccid=identifier(raw.get("iccid"), f"{where}.iccid"),
        imsi=identifier(raw.get("imsi"), f"{where}.imsi"),
    )


def port_states(payload: dict[str, object]) -> list[PortState]:
    """The states a port-status or dev-status push reports, every one checked first."""
    if payload.get("type") == "port-status":
        return [port_state(payload, "the report")]
    entries = payload.get("status")
    if not isinstance(entries, list):
        raise Malformed(f"status must be a list of port states, not {kind(entries)}")
    return [port_state(entry, f"status[{i}]") for i, entry in enumerate(entries)]


def _decoded(raw: str) -> str | None:
    try:
        return base64.b64decode(raw, validate=False).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None


def sms_text(raw: str) -> str:
    # None: firmware set to plain text instead of base64.
    text = _decoded(raw)
    text = raw if text is None else text
    if text.startswith("Sender:") and HEADER_END in text:
        text = text.split(HEADER_END, 1)[1]
    return text


def header_recipient(raw: str) -> str:
    """The number in a 'Receiver: "1.01" 79281234567' header line, if the text has one."""
    text = _decoded(raw) or ""
    for line in text.split(HEADER_END, 1)[0].splitlines():
        if line.startswith("Receiver:"):
            return line.rsplit(" ", 1)[-1].strip().strip('"')
    return ""
