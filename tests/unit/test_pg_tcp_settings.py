"""The TCP settings simgate adds to its PostgreSQL connections, and the owner's that win."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from simgate.storage.pg_hang import TCP_SETTINGS, tcp_settings, with_tcp_settings


def test_all_of_ours_on_a_plain_url() -> None:
    assert tcp_settings("postgresql://simgate@db/simgate") == TCP_SETTINGS
    assert set(TCP_SETTINGS) == {
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    }


def test_a_value_in_the_url_wins_over_ours() -> None:
    url = "postgres://simgate@db:5433/simgate?keepalives_idle=30&tcp_user_timeout=0"
    assert tcp_settings(url) == {"keepalives": "1", "keepalives_interval": "1", "keepalives_count": "3"}
    merged = conninfo_to_dict(with_tcp_settings(url))
    assert merged["keepalives_idle"] == "30"
    assert merged["tcp_user_timeout"] == "0"
    assert merged["keepalives_count"] == "3"
    assert (merged["host"], merged["port"], merged["dbname"]) == ("db", "5433", "simgate")


def test_a_dead_peer_is_dropped_well_inside_the_marketplaces_10_seconds() -> None:
    idle, interval, probes = (
        int(TCP_SETTINGS[k]) for k in ("keepalives_idle", "keepalives_interval", "keepalives_count")
    )
    assert idle + interval * probes <= 5
    assert int(TCP_SETTINGS["tcp_user_timeout"]) <= 5000
