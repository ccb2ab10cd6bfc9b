"""Stored SMS as the modem lists them (AT+CMGL in PDU mode), decoded with smspdudecoder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from io import StringIO
from typing import Any

from smspdudecoder.fields import SMSC, PDUHeader, SMSDeliver

from simgate.domain.types import Timestamp

LISTED = re.compile(r"^\+CMGL:\s*(\d+)\s*,\s*(\d+)\s*(?:,[^,]*)?,\s*(\d+)\s*$")
"""'+CMGL: 3,0,,24' (27.005), and the '+CMGL: 3,0,24' some modems print without <alpha>."""
HEX = re.compile(r"^[0-9A-Fa-f]+$")
CONCATENATION = (0x00, 0x08)
"""Information elements of a concatenated SMS: 8-bit and 16-bit reference."""


class PduError(ValueError):
    """Not a PDU we can read (noise on the line, or a format the decoder refuses)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One slot of the modem's SMS storage."""

    index: int
    pdu: str


@dataclass(frozen=True, slots=True)
class Part:
    """One decoded SMS-DELIVER: a whole SMS, or one part of a concatenated one."""

    index: int
    pdu: str
    sender: str
    text: str | None
    """None for 8-bit data (WAP push, SIM OTA): nothing a buyer waits for."""
    sent_at: Timestamp | None
    """The service centre's time stamp (SCTS)."""
    reference: int | None = None
    count: int = 1
    number: int = 1

    @property
    def group(self) -> tuple[str, int, int] | None:
        return None if self.reference is None else (self.sender, self.reference, self.count)


def parse_listing(lines: list[str]) -> list[Stored]:
    """The '+CMGL: <index>,<stat>,[<alpha>],<length>' header lines each followed by the PDU.

    A header whose next line is not hex (noise) is skipped: the next sweep reads it again.
    """
    stored: list[Stored] = []
    for position, line in enumerate(lines):
        header = LISTED.match(line)
        if header is None or position + 1 >= len(lines):
            continue
        pdu = lines[position + 1].strip()
        if HEX.match(pdu) and len(pdu) % 2 == 0:
            stored.append(Stored(int(header[1]), pdu.upper()))
    return stored


def decode(stored: Stored) -> Part | None:
    """The SMS in one PDU; None for what is not an incoming SMS (status reports)."""
    try:
        stream = StringIO(stored.pdu)
        SMSC.decode(stream)
        if PDUHeader.decode(stream)["mti"] != "deliver":
            return None
        sms: dict[str, Any] = SMSDeliver.decode(StringIO(stored.pdu))
    except Exception as error:  # the decoder raises whatever its parsing hits
        raise PduError(f"slot {stored.index}: cannot decode PDU: {type(error).__name__}: {error}") from None
    sender = str(sms["sender"]["number"])
    if sms["sender"]["toa"]["ton"] == "international" and not sender.startswith("+"):
        sender = "+" + sender
    data = sms["user_data"]["data"]
    sent = sms.get("scts")
    part = Part(
        index=stored.index,
        pdu=stored.pdu,
        sender=sender,
        text=data if isinstance(data, str) else None,
        sent_at=sent.timestamp() if isinstance(sent, datetime) else None,
    )
    header = sms["user_data"].get("header") or {}
    for element in header.get("elements", []):
        if element.get("iei") in CONCATENATION and isinstance(element.get("data"), dict):
            info = element["data"]
            count, number = int(info["parts_count"]), int(info["part_number"])
            if count > 1 and 1 <= number <= count:
                return Part(
                    index=part.index,
                    pdu=part.pdu,
                    sender=part.sender,
                    text=part.text,
                    sent_at=part.sent_at,
                    reference=int(info["reference"]),
                    count=count,
                    number=number,
                )
    return part
