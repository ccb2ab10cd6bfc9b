"""`simgate serve` leaves start-up's objects out of later garbage collections (server.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from simgate.server import SERVING_GC_THRESHOLD, settle_garbage_collector


@pytest.fixture
def restored_collector() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_start_up_objects_are_frozen_out_of_later_collections(
    restored_collector: tuple[int, int, int],
) -> None:
    kept = {"built at start-up": [1, 2, 3]}
    settle_garbage_collector()
    assert gc.get_freeze_count() > 0
    assert not any(obj is kept for obj in gc.get_objects())  # walked by no generation now


def test_serving_collects_the_young_generation_less_often(
    restored_collector: tuple[int, int, int],
) -> None:
    settle_garbage_collector()
    assert gc.get_threshold() == SERVING_GC_THRESHOLD
    assert SERVING_GC_THRESHOLD[0] > restored_collector[0]  # fewer than CPython's default
