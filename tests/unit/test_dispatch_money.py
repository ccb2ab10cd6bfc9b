"""Prices in hundredths: cached for speed, and a refusal is never cached (dispatch.py)."""

from __future__ import annotations

import pytest

from simgate.marketplaces.dispatch import BadRequest, hundredths


def test_prices_round_half_up_every_time_they_are_asked() -> None:
    for _ in range(2):
        assert hundredths(12.5) == 1250
        assert hundredths(0.015) == 2
        assert hundredths(0.0149) == 1
        assert hundredths(None) is None


@pytest.mark.parametrize("amount", [float("nan"), float("inf")])
def test_a_non_amount_is_refused_every_time(amount: float) -> None:
    for _ in range(2):
        with pytest.raises(BadRequest, match="not an amount"):
            hundredths(amount)
