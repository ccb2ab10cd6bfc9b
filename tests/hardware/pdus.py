"""SMS-DELIVER PDUs as a network hands them to a modem (GSM 03.40), built for the tests.

Built by hand on purpose: the driver decodes with smspdudecoder, so encoding with the same
library would let one misunderstanding of the format pass both ways.
"""

from __future__ import annotations

from datetime import UTC, datetime

from smspdudecoder.codecs import GSM

SMSC = "07919782000000F0"  # +79280000000, international
_CONCAT_IEI = 0x00


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
    header = b""
    if part is not None:
        reference, count, number = part
        header = bytes([5, _CONCAT_IEI, 3, reference, count, number])
    first = 0x04 | (0x40 if header else 0)
    if ucs2:
        data = header + text.encode("utf-16-be")
        udl, dcs = len(data), "08"
    else:
        udl, data = pack(header, septets(text))
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


def tpdu_length(pdu: str) -> int:
    """What AT+CMGL reports as <length>: octets after the SMSC part."""
    smsc_octets = int(pdu[:2], 16)
    return len(pdu) // 2 - smsc_octets - 1
