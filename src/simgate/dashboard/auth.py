"""Who may use the console: the admin token as a Bearer header, or a session cookie.

The cookie is an HMAC over (issue time, nonce) with a key derived from the admin token, and
it counts only while the server's session list (storage/sessions.py, migration 0007) holds
it: signing out revokes that one session, "sign out everywhere" all of them, and changing
SIMGATE_ADMIN_TOKEN invalidates every signature. Sessions survive a restart. A request
carried by the cookie that changes something must also carry the page's CSRF token: the
cookie is SameSite=Strict already, this covers browsers that ignore it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from simgate.credentials import bearer_token, same_secret
from simgate.domain.types import Timestamp
from simgate.storage.ports import Store

COOKIE = "simgate_session"
SESSION_SECONDS = 7 * 24 * 3600
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_CONFIGURED = "SIMGATE_ADMIN_TOKEN is not set: the admin API and dashboard are disabled"


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def session_id(cookie: str) -> str:
    """What the session list stores: a hash, so the database holds no usable cookie."""
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclass
class ConsoleAuth:
    token: str | None
    clock: Callable[[], Timestamp]
    store: Store
    _key: bytes = field(init=False, repr=False, default=b"")

    def __post_init__(self) -> None:
        if self.token:
            self._key = hmac.new(self.token.encode(), b"simgate-console-session-v1", hashlib.sha256).digest()

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def token_ok(self, supplied: str | None) -> bool:
        if not self.token or not supplied:
            return False
        return same_secret(supplied, self.token)

    async def new_session(self) -> str:
        issued = int(self.clock())
        payload = f"{issued}.{secrets.token_hex(16)}"
        cookie = f"{payload}.{_mac(self._key, payload)}"
        key, now = session_id(cookie), self.clock()
        await self.store.transact(lambda uow: uow.sessions.add(key, now, issued + SESSION_SECONDS))
        return cookie

    async def revoke(self, cookie: str) -> None:
        key = session_id(cookie)
        await self.store.transact(lambda uow: uow.sessions.revoke(key))

    async def revoke_all(self) -> int:
        return await self.store.transact(lambda uow: uow.sessions.revoke_all())

    def session_ok(self, cookie: str | None) -> bool:
        if not self.configured or not cookie or cookie.count(".") != 2:
            return False
        issued, nonce, signature = cookie.split(".")
        if not same_secret(signature, _mac(self._key, f"{issued}.{nonce}")):
            return False
        if not issued.isdigit():
            return False
        age = self.clock() - int(issued)
        return -60 <= age <= SESSION_SECONDS

    def csrf_token(self, cookie: str) -> str:
        return _mac(self._key, "csrf:" + cookie)[:40]

    def csrf_ok(self, cookie: str, supplied: str | None) -> bool:
        return bool(supplied) and same_secret(self.csrf_token(cookie), supplied or "")

    async def session(self, request: Request) -> str | None:
        """The request's valid, unrevoked session cookie, if it has one."""
        cookie = request.cookies.get(COOKIE)
        if cookie is None or not self.session_ok(cookie):
            return None  # checked first: a forged cookie costs no database read
        key, now = session_id(cookie), self.clock()
        return cookie if await self.store.read(lambda uow: uow.sessions.alive(key, now)) else None

    async def api_caller(self, request: Request) -> str | None:
        """'token' or 'session' when the request may use the API; None otherwise."""
        if self.token_ok(bearer_token(request.headers.get("authorization", ""))):
            return "token"
        cookie = await self.session(request)
        if cookie is None:
            return None
        if request.method in UNSAFE and not self.csrf_ok(cookie, request.headers.get(CSRF_HEADER)):
            return None
        return "session"
