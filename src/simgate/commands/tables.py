"""Tables that fit the terminal: whole ids and phones, fewer columns when narrow.

Rich squeezes every column of a table wider than the terminal, so at 80 columns a country
became "ru…" and a push's text wrapped over eight lines. Here each column is sized to its
widest value and never cut; when they do not all fit, the caller's steps run in order (a
column shortened, e.g. a date to a time, or left out, the least useful first) until they
do, and the footer names what was left out. Only free text (an SMS, a refusal's reason) is
cut, with an ellipsis, and it takes whatever width the other columns leave.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

BORDER = 3
"""Cells a column adds to its text in rich's default box: one rule and a space each side."""
FLOOR = 10
"""Free text is never cut shorter than this, even when nothing else can go."""


@dataclass(frozen=True)
class Field:
    header: str
    cells: list[str] = field(default_factory=list)
    justify: Literal["left", "right"] = "left"
    wants: int = 0
    """0: never cut (an id, a phone). Else free text: it is given at least this many cells
    before any column is left out for it, then whatever is spare, up to its widest value."""
    short: tuple[str, list[str]] | None = None
    """A narrower header and cells, for a `Shorten` step (a time without its date)."""

    def width(self) -> int:
        return max([cell_len(self.header), *(cell_len(c) for c in self.cells)])

    def needs(self) -> int:
        return min(self.wants, self.width()) if self.wants else self.width()


@dataclass(frozen=True)
class Drop:
    header: str


@dataclass(frozen=True)
class Shorten:
    header: str


Step = Drop | Shorten


def one_line(text: str) -> str:
    """An SMS or a reason on one row: its line breaks and tabs become spaces."""
    return " ".join(text.split())


def when(at: float, *, seconds: bool = False, now: float | None = None) -> str:
    """Month-day and time; with `now`, as `ls -l` does: the time alone today, else the date."""
    local = time.localtime(at)
    if now is None:
        return time.strftime("%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M", local)
    today = time.localtime(now)[:3] == local[:3]
    return time.strftime("%H:%M" if today else "%m-%d", local)


def fit(fields: Sequence[Field], width: int, steps: Sequence[Step] = ()) -> tuple[list[Field], list[str]]:
    """The fields to show within `width` cells, and the headers left out to get there."""
    shown = list(fields)
    dropped: list[str] = []
    for step in steps:
        if _needed(shown) <= width:
            break
        if isinstance(step, Drop):
            if any(f.header == step.header for f in shown):
                shown = [f for f in shown if f.header != step.header]
                dropped.append(step.header)
            continue
        shown = [
            replace(f, header=f.short[0], cells=f.short[1], short=None)
            if f.header == step.header and f.short
            else f
            for f in shown
        ]
    return shown, dropped


def _needed(fields: Sequence[Field]) -> int:
    return sum(f.needs() + BORDER for f in fields) + 1


def _text_widths(fields: Sequence[Field], width: int) -> dict[int, int]:
    """Each free-text field's width (by position): the shortest texts are given their whole
    width first, the longest (the SMS) the rest; when even the fixed columns leave too
    little, the longest gives way first, down to FLOOR."""
    spare = width - _needed(fields)
    texts = sorted((i for i, f in enumerate(fields) if f.wants), key=lambda i: fields[i].width())
    sizes = {i: fields[i].needs() for i in texts}
    if spare >= 0:
        for i in texts:
            grow = min(fields[i].width() - sizes[i], spare)
            sizes[i] += grow
            spare -= grow
    else:
        for i in reversed(texts):
            cut = min(max(sizes[i] - FLOOR, 0), -spare)
            sizes[i] -= cut
            spare += cut
    return sizes


def render(fields: Sequence[Field], width: int) -> Table:
    """A table of `fields` (from `fit`) `width` cells wide at most, unless its ids need more."""
    texts = _text_widths(fields, width)
    columns = [
        Column(f.header, justify=f.justify, no_wrap=True, overflow="ellipsis", width=texts.get(i, f.width()))
        for i, f in enumerate(fields)
    ]
    # A width set makes rich stretch the table to it: only when the ids need more than there is.
    needed = sum(texts.get(i, f.width()) + BORDER for i, f in enumerate(fields)) + 1
    table = Table(*columns, width=needed if needed > width else None)
    for row in zip(*(f.cells for f in fields), strict=True):
        # Text, not str: an SMS reading "[/]" or "[bold]" is not rich markup.
        table.add_row(*(Text(cell) for cell in row))
    return table


def print_table(
    console: Console, fields: Sequence[Field], steps: Sequence[Step] = (), footer: str = ""
) -> None:
    """Fit `fields` to the console and print them, then `footer` and the columns left out
    (--json always has every field)."""
    shown, dropped = fit(fields, console.width, steps)
    # crop=False: on a terminal narrower than the ids, the row wraps rather than loses its end.
    console.print(render(shown, console.width), crop=False)
    hidden = f"hidden at {console.width} columns: {', '.join(dropped)}" if dropped else ""
    line = "; ".join(part for part in (footer, hidden) if part)
    if line:
        console.print(line, highlight=False, markup=False)
