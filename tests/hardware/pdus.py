"""SMS-DELIVER PDUs as a network hands them to a modem (GSM 03.40), built for the tests.

Built by hand on purpose: the driver decodes with smspdudecoder, so encoding with the same
library would let one misunderstanding of the format pass both ways.
"""

from __future__ import annotations

from datetime import UTC, datetime

from smspdudecoder.codecs import GSM

SMSC = "07919782000000F0"  # +79280000000, international
_CONCAT_IEI = 0x00
_CONCAT16_IEI = 0x08


def semi_octets(digits: str) -> str:
    if len(digits) % 2:
        digits += "F"
    return "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))


def address(number: str) -> str:
    digits = number.lstrip("+")
    return f"{len(digits):02X}91{semi_octets(digits)}"


def timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    fields = f"{moment:%y%m%d%H%M%S}00"
    return "".join(fields[i + 1] + fields[i] for i in range(0, 14, 2))


def septets(text: str) -> list[int]:
    out: list[int] = []
    for char in text:
        if char in GSM.ALPHABET:
            out.append(GSM.ALPHABET.index(char))
        else:
            out.extend((0x1B, GSM.ALPHABET_EXT_INV[char]))
    return out


def pack(header: bytes, values: list[int]) -> tuple[int, bytes]:
    """(UDL in septets, user data): the header, fill bits to a septet boundary, the septets."""
    header_bits = len(header) * 8
    start = header_bits + (7 - header_bits % 7) % 7
    packed = int.from_bytes(header, "little")
    for position, value in enumerate(values):
        packed |= value << (start + 7 * position)
    total_bits = start + 7 * len(values)
    return total_bits // 7, packed.to_bytes((total_bits + 7) // 8, "little")


def deliver(
    sender: str,
    text: str,
    *,
    ucs2: bool = False,
    part: tuple[int, int, int] | None = None,
    sent: datetime | None = None,
) -> str:
    """One SMS-DELIVER; `part` is (reference, count, number) for a piece of a long SMS."""
    units = text.encode("utf-16-be") if ucs2 else bytes(septets(text))
    return deliver_units(sender, units, ucs2=ucs2, part=part, sent=sent)


def deliver_units(
    sender: str,
    units: bytes,
    *,
    ucs2: bool = False,
    part: tuple[int, int, int] | None = None,
    wide_reference: bool = False,
    sent: datetime | None = None,
) -> str:
    """One SMS-DELIVER carrying `units` as they are: UTF-16-BE octets (ucs2) or septet values,
    one an octet; with `wide_reference` the concatenation header has a 16-bit reference."""
    header = b""
    if part is not None:
        reference, count, number = part
        if wide_reference:
            header = bytes([6, _CONCAT16_IEI, 4, reference >> 8, reference & 0xFF, count, number])
        else:
            header = bytes([5, _CONCAT_IEI, 3, reference, count, number])
    first = 0x04 | (0x40 if header else 0)
    if ucs2:
        data = header + units
        udl, dcs = len(data), "08"
    else:
        udl, data = pack(header, list(units))
        dcs = "00"
    return (
        SMSC
        + f"{first:02X}"
        + address(sender)
        + "00"
        + dcs
        + timestamp(sent or datetime.now(UTC))
        + f"{udl:02X}"
        + data.hex().upper()
    )


def concatenated(
    sender: str,
    text: str,
    *,
    ucs2: bool = False,
    reference: int = 0x21,
    wide_reference: bool = False,
    sent: datetime | None = None,
) -> list[str]:
    """A long SMS cut as a phone cuts it: each part as full as it goes (67 UTF-16 code units or
    153 septets beside an 8-bit reference), whatever falls on the cut (half a surrogate pair,
    an escape without its character). The parts in order, numbered from 1."""
    header_octets = 7 if wide_reference else 6
    if ucs2:
        units, size = text.encode("utf-16-be"), (140 - header_octets) // 2 * 2
    else:
        units, size = bytes(septets(text)), (140 - header_octets) * 8 // 7
    pieces = [units[i : i + size] for i in range(0, len(units), size)]
    return [
        deliver_units(
            sender,
            piece,
            ucs2=ucs2,
            part=(reference, len(pieces), number),
            wide_reference=wide_reference,
            sent=sent,
        )
        for number, piece in enumerate(pieces, 1)
    ]


def tpdu_length(pdu: str) -> int:
    """What AT+CMGL reports as <length>: octets after the SMSC part."""
    smsc_octets = int(pdu[:2], 16)
    return len(pdu) // 2 - smsc_octets - 1
