"""Phone numbers as simgate stores them: digits with the country code, checked by `phonenumbers`.

Its own module because the CSV importer, every hardware driver and the HTTP intake need it, and
none of them should pull in the others (nor the storage ports) to get it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from simgate.domain.errors import InvalidNumber
from simgate.domain.types import PhoneNumber

PHONE_DECOR = re.compile(r"[\s\-().]")
SHOWN = 32


def shown(raw: str) -> str:
    """A refused value as an error message quotes it: a megabyte sent as a phone number must
    not come back in the answer, nor fill the log."""
    return raw if len(raw) <= SHOWN else raw[:SHOWN] + "…"


@lru_cache(maxsize=16_384)
def normalise_phone(raw: str, region: str | None = None) -> PhoneNumber:
    """Digits with the country code, no '+'; checked against the numbering plan.

    `region` (ISO) makes sure the number's calling code is that country's: a German SIM
    filed under russia would be sold to buyers who asked for Russia.

    Cached (a refusal is not): every SMS names its SIM's phone, and parsing it against the
    numbering plan cost ~3 % of the server's CPU per SMS (docs/benchmarks.md, issue 14).
    """
    text = PHONE_DECOR.sub("", raw.strip())
    digits = text.removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidNumber(f"phone {shown(raw)!r} must be digits with the country code")
    if not 8 <= len(digits) <= 15:
        raise InvalidNumber(f"phone {shown(raw)!r} must have 8 to 15 digits (E.164)")
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as error:
        raise InvalidNumber(f"phone {shown(raw)!r} has no valid country code") from error
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(f"phone {shown(raw)!r} is not a possible number for +{parsed.country_code}")
    if region is not None and parsed.country_code != phonenumbers.country_code_for_region(region):
        raise InvalidNumber(
            f"phone {shown(raw)!r} has calling code +{parsed.country_code}, not the country's "
            f"+{phonenumbers.country_code_for_region(region)}"
        )
    return PhoneNumber(digits)
