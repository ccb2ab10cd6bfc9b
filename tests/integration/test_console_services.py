"""GET /api/services: the list the dashboard's block picker offers."""

from __future__ import annotations

from simgate import catalogue
from tests.conftest import LiveServer
from tests.console import ADMIN


def test_the_service_list_is_the_catalogue_and_needs_the_admin_token(live_server: LiveServer) -> None:
    with live_server.client() as client:
        assert client.get("/api/services").status_code == 401
        answer = client.get("/api/services", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.json() == {"services": list(catalogue.services())}
    assert "telegram" in answer.json()["services"]
