"""`simgate serve` leaves start-up's objects out of later garbage collections (server.py)."""

from __future__ import annotations

import gc

from simgate.server import settle_garbage_collector


def test_start_up_objects_are_frozen_out_of_later_collections() -> None:
    kept = {"built at start-up": [1, 2, 3]}
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # walked by no generation now
    finally:
        gc.unfreeze()
