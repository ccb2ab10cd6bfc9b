"""The inventory CSV's `marketplaces` column: who may sell a SIM (CONTRACT.md)."""

from __future__ import annotations

import io

from simgate.services.inventory import parse_csv


def test_marketplaces_are_pipe_separated_names_and_empty_means_every_one() -> None:
    specs, rejected = parse_csv(
        io.StringIO(
            "phone,country,operator,marketplaces\n"
            "79281234567,russia,beeline,onlinesim|SMSHUB\n"
            "79281234568,russia,beeline,\n"
            "79281234569,russia,beeline, smshub \n"
        )
    )
    assert rejected == []
    assert [s.marketplaces for s in specs] == [frozenset({"onlinesim", "smshub"}), frozenset(), {"smshub"}]


def test_a_file_without_the_column_lets_every_marketplace_sell() -> None:
    specs, _ = parse_csv(io.StringIO("phone,country,operator\n79281234567,russia,beeline\n"))
    assert specs[0].marketplaces == frozenset()


def test_an_unknown_marketplace_rejects_its_row_only() -> None:
    specs, rejected = parse_csv(
        io.StringIO(
            "phone;country;operator;marketplaces\n"
            "79281234567;russia;beeline;onlinesim|smsbub\n"
            "79281234568;russia;beeline;grizzly|herosms\n"
        )
    )
    assert [s.phone for s in specs] == ["79281234568"]
    assert len(rejected) == 1
    assert rejected[0].line == 2
    assert "unknown 'smsbub'" in rejected[0].reason
