"""Decoder errors in the owner's words: what a refused body answers and logs."""

from __future__ import annotations

import msgspec
import pytest

from simgate.services.explain import plain


class Body(msgspec.Struct, forbid_unknown_fields=True):
    phone: str
    sum: float | None = None
    count: int = 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"phone": "1", "sum": "x"}', "sum must be a number or null, not text"),
        (b'{"phone": "1"', "the body ends early: it is not complete JSON"),
        (b"not json", "the body is not valid JSON: invalid character at byte 4"),
        (b"[1]", "the body must be a JSON object, not a list"),
        (b"{}", "phone is missing"),
        (b'{"phone": "1", "extra": 1}', "extra is not a field this endpoint knows"),
        (b'{"phone": 7}', "phone must be text, not a whole number"),
    ],
)
def test_a_refused_body_is_explained_in_plain_words(body: bytes, words: str) -> None:
    with pytest.raises(msgspec.DecodeError) as raised:
        msgspec.json.decode(body, type=Body)
    assert plain(raised.value) == words
    assert "`" not in plain(raised.value)
