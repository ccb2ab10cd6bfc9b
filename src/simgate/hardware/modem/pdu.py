"""Stored SMS as the modem lists them (AT+CMGL in PDU mode), read with smspdudecoder's fields.

The user data is kept undecoded, as the part carries it: a long SMS is cut into parts by code
units (67 UTF-16 units, 153 septets), so a part can end with half a surrogate pair or with the
escape of a GSM-7 extension character. Text exists only for the whole run of parts, decoded
once (`decode_text`); decoding part by part loses or garbles the character on every cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from io import StringIO
from typing import Any, Literal

from smspdudecoder.codecs import GSM
from smspdudecoder.elements import Date
from smspdudecoder.fields import DCS, SMSC, Address, PDUHeader, UserDataHeader

from simgate.domain.types import Timestamp

LISTED = re.compile(r"^\+CMGL:\s*(\d+)\s*,\s*(\d+)\s*(?:,[^,]*)?,\s*(\d+)\s*$")
"""'+CMGL: 3,0,,24' (27.005), and the '+CMGL: 3,0,24' some modems print without <alpha>."""
HEX = re.compile(r"^[0-9A-Fa-f]+$")
CONCATENATION = (0x00, 0x08)
"""Information elements of a concatenated SMS: 8-bit and 16-bit reference."""

Coding = Literal["gsm", "ucs2", "binary"]
"""The alphabet of the user data, as smspdudecoder's DCS field names it."""


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
    coding: Coding
    data: bytes
    """The user data after the header, undecoded: UTF-16-BE octets (ucs2), septet values one an
    octet (gsm), octets (binary: WAP push, SIM OTA, nothing a buyer waits for)."""
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
    """The SMS in one PDU; None for what is not an incoming SMS (status reports).

    The fields of SMSDeliver.decode, read one by one, but the user data is cut out by hand:
    the library's UserData.decode turns it into text, which fails on half a surrogate pair,
    drops a trailing escape, and slices GSM-7 text by septet counts (a '@' too many after an
    escape, a character too few when a header septet happens to be 0x1B).
    """
    try:
        stream = StringIO(stored.pdu)
        SMSC.decode(stream)
        first: dict[str, Any] = PDUHeader.decode(stream)
        if first["mti"] != "deliver":
            return None
        sender_field: dict[str, Any] = Address.decode(stream)
        stream.read(2)  # TP-PID
        coding: Coding = DCS.decode(stream)["encoding"]
        sent = Date.decode(stream.read(14))
        length = int(stream.read(2), 16)  # TP-UDL: septets for GSM-7, else octets; header included
        octets = bytes.fromhex(stream.read())
        header: dict[str, Any] = UserDataHeader.decode(StringIO(octets.hex())) if first["udhi"] else {}
    except Exception as error:  # the decoder raises whatever its parsing hits
        raise PduError(f"slot {stored.index}: cannot decode PDU: {type(error).__name__}: {error}") from None
    sender = str(sender_field["number"])
    if sender_field["toa"]["ton"] == "international" and not sender.startswith("+"):
        sender = "+" + sender
    header_octets = header["length"] + 1 if header else 0
    if coding == "gsm":
        header_septets = -(-header_octets * 8 // 7)  # the header, then fill bits to a septet boundary
        data = bytes(unpack_septets(octets, length)[header_septets:])
    else:
        data = octets[header_octets:length]
    reference, count, number = None, 1, 1
    for element in header.get("elements", []):
        if element.get("iei") in CONCATENATION and isinstance(element.get("data"), dict):
            info = element["data"]
            if int(info["parts_count"]) > 1 and 1 <= int(info["part_number"]) <= int(info["parts_count"]):
                reference, count = int(info["reference"]), int(info["parts_count"])
                number = int(info["part_number"])
                break
    return Part(
        index=stored.index,
        pdu=stored.pdu,
        sender=sender,
        coding=coding,
        data=data,
        sent_at=sent.timestamp() if isinstance(sent, datetime) else None,
        reference=reference,
        count=count,
        number=number,
    )


def unpack_septets(octets: bytes, count: int) -> list[int]:
    """The first `count` septets packed in `octets` (GSM 03.38 6.1.2.1.1), fewer if it is short.

    smspdudecoder unpacks only inside GSM.decode, straight into text, so the values are read
    here; turning them into text is left to GSM.decode (`gsm_text`).
    """
    packed = int.from_bytes(octets, "little")
    return [(packed >> (7 * position)) & 0x7F for position in range(min(count, len(octets) * 8 // 7))]


def gsm_text(values: bytes) -> str:
    """GSM-7 septet values (one an octet) as text, by smspdudecoder's GSM.decode.

    Packed again for it: the octets of n septets hold a spare one when n % 8 == 7, which
    GSM.decode would read as '@'; a CR is packed there (as 03.38 advises senders) and the one
    character it gives is cut off.
    """
    septets = list(values)
    if len(septets) % 8 == 7:
        septets.append(GSM.ALPHABET.index("\r"))
    packed = sum(value << (7 * position) for position, value in enumerate(septets))
    decoded: str = GSM.decode(packed.to_bytes(-(-len(septets) * 7 // 8), "little").hex())
    return decoded[:-1] if len(septets) != len(values) else decoded


def decode_text(coding: Coding, data: bytes) -> str | None:
    """The text of the user data of one part, or of consecutive parts joined; None for 8-bit
    data. A half character left at either end (its other half in a part that never came)
    becomes U+FFFD for UCS2; a dangling GSM-7 escape is dropped, as GSM.decode drops it."""
    if coding == "ucs2":
        return data.decode("utf-16-be", errors="replace")
    if coding == "gsm":
        return gsm_text(data) if data else ""
    return None
