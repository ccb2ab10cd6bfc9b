"""Server-side console sessions (issue 12, item 7): sign-out revokes, also everywhere."""

from __future__ import annotations

import re
from contextlib import closing

import httpx

from simgate.storage.ports import Store
from tests.conftest import ADMIN_TOKEN, LiveServer


def test_session_list_contract(store: Store) -> None:
    store.run(lambda uow: uow.sessions.add("a", 100.0, 200.0))
    store.run(lambda uow: uow.sessions.add("b", 100.0, 150.0))
    assert store.run(lambda uow: uow.sessions.alive("a", 199.0))
    assert not store.run(lambda uow: uow.sessions.alive("b", 151.0))  # expired
    assert not store.run(lambda uow: uow.sessions.alive("c", 100.0))
    assert store.run(lambda uow: uow.sessions.revoke("a"))
    assert not store.run(lambda uow: uow.sessions.revoke("a"))
    assert not store.run(lambda uow: uow.sessions.alive("a", 100.0))
    store.run(lambda uow: uow.sessions.add("c", 160.0, 300.0))  # and "b", expired, is purged
    store.run(lambda uow: uow.sessions.add("d", 160.0, 300.0))
    assert store.run(lambda uow: uow.sessions.revoke_all()) == 2
    assert not store.run(lambda uow: uow.sessions.alive("d", 160.0))


def sign_in(server: LiveServer) -> httpx.Client:
    client = server.client()
    response = client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    return client


def csrf(client: httpx.Client) -> str:
    page = client.get("/")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_sign_out_revokes_the_cookie_even_if_it_is_replayed(live_server: LiveServer) -> None:
    with closing(sign_in(live_server)) as client:
        cookie = client.cookies["simgate_session"]
        assert client.get("/api/overview").status_code == 200
        out = client.post("/logout", data={"csrf": csrf(client)}, follow_redirects=False)
        assert out.status_code == 303
    with live_server.client() as thief:
        thief.cookies.set("simgate_session", cookie)
        assert thief.get("/api/overview").status_code == 401
        assert thief.get("/", follow_redirects=False).status_code == 303


def test_sign_out_everywhere_revokes_every_session(live_server: LiveServer) -> None:
    laptop, phone = sign_in(live_server), sign_in(live_server)
    with closing(laptop), closing(phone):
        assert phone.get("/api/overview").status_code == 200
        out = laptop.post("/logout", data={"csrf": csrf(laptop), "everywhere": "1"}, follow_redirects=False)
        assert out.status_code == 303
        assert phone.get("/api/overview").status_code == 401
        assert laptop.get("/api/overview").status_code == 401
    with closing(sign_in(live_server)) as again:
        assert again.get("/api/overview").status_code == 200


def test_the_cookie_is_secure_behind_a_trusted_https_proxy(live_server: LiveServer) -> None:
    # 127.0.0.1 is in FORWARDED_ALLOW_IPS by default; a proxy on another host must be added.
    with live_server.client() as client:
        proxied = client.post(
            "/login",
            data={"token": ADMIN_TOKEN},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"},
            follow_redirects=False,
        )
        assert proxied.status_code == 303
        assert "secure" in proxied.headers["set-cookie"].lower()
        direct = client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
        assert "secure" not in direct.headers["set-cookie"].lower()
