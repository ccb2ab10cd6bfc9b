"""A farm of virtual SIMs: realistic numbers per country and operator, and the inventory CSV.

Numbers are drawn from real mobile ranges (each one passes `phonenumbers` validation), so
the CSV loads with `simgate numbers import` exactly as an operator's file would.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from simgate.domain.types import CountryName, OperatorName, PhoneNumber

# country -> operator -> mobile prefixes (calling code included) and the full digit count.
RANGES: dict[str, tuple[int, dict[str, tuple[str, ...]]]] = {
    "russia": (
        11,
        {
            "beeline": ("7903", "7905", "7906", "7909", "7960", "7961", "7962", "7963", "7965"),
            "megafon": ("7920", "7921", "7922", "7925", "7926", "7928", "7929"),
            "mts": ("7910", "7911", "7912", "7913", "7915", "7916", "7917", "7918", "7919"),
            "tele2": ("7900", "7901", "7902", "7950", "7951", "7952", "7953", "7977"),
        },
    ),
    "kazakhstan": (
        11,
        {
            "kcell": ("7701", "7702"),
            "beeline": ("7705", "7771", "7777"),
            "tele2": ("7707", "7747"),
            "altel": ("7700", "7708"),
        },
    ),
    "germany": (
        13,
        {
            "telekom": ("49151",),
            "vodafone": ("49152",),
            "o2": ("49157", "49159"),
        },
    ),
    "poland": (
        11,
        {
            "orange": ("48501", "48502", "48510"),
            "play": ("48530", "48533", "48790"),
            "plus": ("48601", "48603", "48605"),
            "tmobile": ("48600", "48602", "48604"),
        },
    ),
}

DEFAULT_MIX: tuple[tuple[str, float], ...] = (
    ("russia", 0.45),
    ("kazakhstan", 0.15),
    ("germany", 0.2),
    ("poland", 0.2),
)
COLUMNS = ("phone", "country", "operator", "port", "rent", "enabled", "marketplaces")
PORTS_PER_BANK = 32


@dataclass(frozen=True, slots=True)
class SimCard:
    phone: PhoneNumber
    country: CountryName
    operator: OperatorName
    """'' when the farm cannot tell the operator: counted under `any` only."""
    port: str = ""
    rentable: bool = True
    enabled: bool = True
    marketplaces: str = ""
    """`onlinesim|smshub`: where the SIM may be sold ('': every enabled marketplace)."""

    def sold_on(self, marketplace: str) -> bool:
        return not self.marketplaces or marketplace in self.marketplaces.split("|")


def make_farm(
    count: int,
    *,
    seed: int = 7,
    countries: Sequence[tuple[str, float]] = DEFAULT_MIX,
    unknown_operator: float = 0.04,
    rentable: float = 0.6,
    disabled: float = 0.03,
) -> list[SimCard]:
    """`count` distinct SIMs, the same ones for the same seed (so two processes agree)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    unknown = [name for name, _ in countries if name not in RANGES]
    if unknown:
        raise ValueError(f"no number ranges for {', '.join(unknown)}; known: {', '.join(RANGES)}")
    rng = random.Random(seed)
    names = [name for name, _ in countries]
    weights = [weight for _, weight in countries]
    seen: set[str] = set()
    cards: list[SimCard] = []
    for index in range(count):
        country = rng.choices(names, weights)[0]
        digits, operators = RANGES[country]
        operator = rng.choice(sorted(operators))
        for _ in range(1000):  # bounded: the ranges hold millions of numbers each
            prefix = rng.choice(operators[operator])
            phone = prefix + "".join(rng.choice("0123456789") for _ in range(digits - len(prefix)))
            if phone not in seen:
                break
        else:  # pragma: no cover - would need a farm the size of a country
            raise RuntimeError("could not draw a fresh number")
        seen.add(phone)
        cards.append(
            SimCard(
                phone=PhoneNumber(phone),
                country=CountryName(country),
                operator=OperatorName("" if rng.random() < unknown_operator else operator),
                port=f"bank{index // PORTS_PER_BANK + 1}/{index % PORTS_PER_BANK + 1}",
                rentable=rng.random() < rentable,
                enabled=rng.random() >= disabled,
            )
        )
    return cards


def dedicate(
    cards: Sequence[SimCard], marketplaces: Sequence[str], share: float, *, seed: int = 7
) -> list[SimCard]:
    """`share` of the SIMs for each marketplace sold there only; the rest anywhere.

    A farm shared by lanes alone may leave a marketplace without SIMs until it shows demand,
    which it cannot without SIMs; owners pin some SIMs, and the demo does as they do.
    """
    if len(marketplaces) < 2:
        return list(cards)
    rng = random.Random(seed)
    dedicated: list[SimCard] = []
    for card in cards:
        roll = rng.random()
        index = int(roll / share) if share > 0 else len(marketplaces)
        only = marketplaces[index] if index < len(marketplaces) else ""
        dedicated.append(dataclasses.replace(card, marketplaces=only))
    return dedicated


def write_csv(cards: Iterable[SimCard], stream: TextIO) -> int:
    """The inventory CSV of CONTRACT.md; returns the number of rows written."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    rows = 0
    for card in cards:
        writer.writerow(
            (card.phone, card.country, card.operator, card.port, int(card.rentable), int(card.enabled),
             card.marketplaces)
        )  # fmt: skip
        rows += 1
    return rows


def save_csv(cards: Iterable[SimCard], path: Path) -> int:
    with path.open("w", encoding="utf-8", newline="") as stream:
        return write_csv(cards, stream)


def _flag(value: str | None, default: bool) -> bool:
    text = (value or "").strip().lower()
    if not text:
        return default
    return text in {"1", "true", "yes", "y"}


def read_csv(stream: TextIO) -> list[SimCard]:
    """Lenient: the server validates the file on import; here rows only need a phone."""
    reader = csv.DictReader(stream)
    cards: list[SimCard] = []
    for row in reader:
        values = {(key or "").strip().lower().lstrip("\ufeff"): value for key, value in row.items()}
        phone = (values.get("phone") or "").strip().lstrip("+")
        if not phone.isdigit():
            continue
        operator = (values.get("operator") or "").strip().lower()
        cards.append(
            SimCard(
                phone=PhoneNumber(phone),
                country=CountryName((values.get("country") or "").strip().lower()),
                operator=OperatorName("" if operator == "any" else operator),
                port=(values.get("port") or "").strip(),
                rentable=_flag(values.get("rent"), True),
                enabled=_flag(values.get("enabled"), True),
                marketplaces=(values.get("marketplaces") or "").strip().lower(),
            )
        )
    return cards


def load_csv(path: Path) -> list[SimCard]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return read_csv(stream)
