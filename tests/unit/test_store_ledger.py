"""The resale windows and exclusion groups are given to a store when it is opened, never set on
it afterwards: `Store.ledger` is read-only, and bootstrap passes the settings' rules."""

from __future__ import annotations

from pathlib import Path

from simgate.bootstrap import build_app, open_store
from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.storage import schema
from simgate.storage.memory import MemoryStore
from tests import conftest


def test_open_store_gives_the_store_the_settings_rules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'simgate.db'}"
    schema.upgrade(url)
    settings = conftest.test_settings(url)
    assert settings.ledger.resale, "the shipped HeroSMS window"
    store = open_store(settings)
    try:
        assert store.ledger == settings.ledger
    finally:
        store.close()


def test_building_the_app_leaves_a_store_s_rules_alone() -> None:
    mine = LedgerRules()
    store = MemoryStore(revision=schema.head_revision(), ledger=mine)
    build_app(
        conftest.test_settings("sqlite:///unused.db"), store, revision=schema.head_revision(), worker=False
    )
    assert store.ledger is mine
    assert MemoryStore().ledger is NO_RULES
