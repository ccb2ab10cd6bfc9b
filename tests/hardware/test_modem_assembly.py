"""Concatenated SMS put back together: characters cut by a part boundary come out whole.

A phone fills each part to the brim (67 UTF-16 code units, 153 septets) without looking at
what it cuts: half a surrogate pair, or an escape whose character is in the next part.
"""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smspdudecoder.codecs import GSM

from simgate.hardware.modem import pdu
from simgate.hardware.modem.assembly import MISSING, Assembler, join
from simgate.hardware.modem.pdu import Part, Stored, decode
from tests.hardware.pdus import concatenated, deliver, deliver_units, septets
from tests.hardware.test_modem import CUT_GSM, CUT_UCS2, SENDER

GSM_PREFIX = CUT_GSM[: CUT_GSM.index("€")]
"""152 septets: what comes before the escape that ends a part beside an 8-bit reference."""


def parts_of(pdus: list[str], first_slot: int = 1) -> list[Part]:
    parts = [decode(Stored(slot, pdu)) for slot, pdu in enumerate(pdus, first_slot)]
    assert all(part is not None for part in parts)
    return [part for part in parts if part is not None]


def units(text: str, start: int, end: int | None = None) -> str:
    """Code units [start:end] of the UTF-16 text (which must not cut a surrogate pair)."""
    return text.encode("utf-16-be")[2 * start : None if end is None else 2 * end].decode("utf-16-be")


BEFORE_EMOJI = units(CUT_UCS2, 0, 66)
"""Part 1 of CUT_UCS2 without its last unit, the high half of 🔐 (units 66-67)."""
AFTER_EMOJI = units(CUT_UCS2, 68, 134)
"""Part 2 without its first unit, the low half of 🔐."""
PART_THREE = units(CUT_UCS2, 134)


def test_ucs2_parts_cut_inside_a_surrogate_pair_join_in_any_order_with_one_key() -> None:
    parts = parts_of(concatenated(SENDER, CUT_UCS2, ucs2=True))
    keys = set()
    for order in permutations(parts):
        [whole] = Assembler(timeout=60).ready(list(order), now=0.0)
        assert (whole.text, whole.sender, whole.complete) == (CUT_UCS2, SENDER, True)
        assert whole.indices == (1, 2, 3)
        keys.add(whole.key)
    assert len(keys) == 1


@pytest.mark.parametrize("char", ["€", "[", "{", "\\", "~"])
@pytest.mark.parametrize("wide_reference", [False, True], ids=["ref8", "ref16"])
def test_gsm_parts_cut_inside_an_escape_sequence_join_whole(char: str, wide_reference: bool) -> None:
    # 153 septets a part beside an 8-bit reference, 152 beside a 16-bit one (no fill bits)
    prefix = GSM_PREFIX if not wide_reference else GSM_PREFIX[:-1]
    text = f"{prefix}{char}25 {{card *4417}}. Call 900."
    pdus = concatenated(
        SENDER, text, reference=0x1234 if wide_reference else 0x12, wide_reference=wide_reference
    )
    assert len(pdus) == 2
    [whole] = Assembler(timeout=60).ready(parts_of(list(reversed(pdus))), now=0.0)
    assert whole.text == text


@pytest.mark.parametrize("extra", range(8))
def test_gsm_text_keeps_its_length_whatever_the_septet_count(extra: int) -> None:
    # '@' is septet 0, the value of the spare bits: whatever the total count modulo 8, no '@'
    # is gained from padding and none of the sender's is lost
    text = f"{GSM_PREFIX}€ {'@' * extra}"
    assert join(parts_of(concatenated(SENDER, text))).text == text


def test_a_missing_part_beside_a_cut_emoji_leaves_a_marker_and_a_replacement_character() -> None:
    first, second, third = parts_of(concatenated(SENDER, CUT_UCS2, ucs2=True))
    assert BEFORE_EMOJI + "🔐" + AFTER_EMOJI + PART_THREE == CUT_UCS2
    # the half of 🔐 that did arrive is not a character: U+FFFD, beside the marker of the gap
    assert join([first, third], complete=False).text == BEFORE_EMOJI + "\ufffd" + MISSING + PART_THREE
    assert join([second, third], complete=False).text == MISSING + "\ufffd" + AFTER_EMOJI + PART_THREE
    assert join([second], complete=False).text == MISSING + "\ufffd" + AFTER_EMOJI + MISSING
    assert join([third, first], complete=False).key == join([first, third], complete=False).key


def test_after_the_timeout_the_parts_that_came_are_stored_incomplete() -> None:
    _, second, third = parts_of(concatenated(SENDER, CUT_UCS2, ucs2=True))
    assembler = Assembler(timeout=30)
    assert assembler.ready([third, second], now=100.0) == []
    assert assembler.ready([second, third], now=129.0) == []
    [partial] = assembler.ready([second, third], now=130.0)
    assert partial.complete is False
    assert partial.text == MISSING + "\ufffd" + AFTER_EMOJI + PART_THREE
    assert partial.indices == (2, 3)
    assert assembler.first_seen == {}


def test_a_part_stored_twice_is_used_once_and_both_slots_are_freed() -> None:
    pdus = concatenated(SENDER, CUT_UCS2, ucs2=True)
    parts = parts_of([*pdus, pdus[0]])  # the network delivered part 1 again, into slot 4
    [whole] = Assembler(timeout=60).ready(parts, now=0.0)
    assert whole.text == CUT_UCS2
    assert whole.indices == (1, 2, 3, 4)
    assert whole.key == join(parts_of(pdus)).key


def test_gsm_parts_of_two_long_sms_from_one_sender_stay_apart() -> None:
    other = GSM_PREFIX + "[second]"
    parts = parts_of(concatenated(SENDER, CUT_GSM, reference=1) + concatenated(SENDER, other, reference=2))
    wholes = Assembler(timeout=60).ready(parts[::-1], now=0.0)
    assert sorted(whole.text for whole in wholes) == sorted([CUT_GSM, other])


def test_a_single_gsm_sms_with_an_escape_gains_no_padding_character() -> None:
    # seven septets: the eighth in the last octet is spare bits, read as '@' if not cut off
    [single] = Assembler(timeout=60).ready(parts_of([deliver(SENDER, "€12345")]), now=0.0)
    assert single.text == "€12345"


def test_an_escape_value_among_the_header_septets_costs_no_character() -> None:
    # a 16-bit reference 0xB001 makes the fifth septet of the header 0x1B
    pdus = [
        deliver_units(SENDER, bytes(septets(text)), part=(0xB001, 2, number), wide_reference=True)
        for number, text in ((1, "Hello "), (2, "world"))
    ]
    assert join(parts_of(pdus)).text == "Hello world"


@settings(deadline=None)  # hypothesis's 200 ms per example is a timing a loaded machine can miss
@given(st.text(alphabet=GSM.ALPHABET.replace("\x1b", "") + "".join(GSM.ALPHABET_EXT_INV), max_size=60))
def test_septets_read_back_what_the_library_packs(text: str) -> None:
    # smspdudecoder's own encoder as the oracle for unpacking, padding and escapes
    count = sum(2 if char in GSM.ALPHABET_EXT_INV else 1 for char in text)
    values = pdu.unpack_septets(bytes.fromhex(GSM.encode(text)), count)
    assert len(values) == count
    assert pdu.gsm_text(bytes(values)) == text
