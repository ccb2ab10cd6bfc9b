"""Comparing secrets and reading a bearer token: a leaf both faces (http/, dashboard/) share."""

from __future__ import annotations

import hmac


def same_secret(supplied: str, expected: str) -> bool:
    """Constant-time comparison that cannot raise.

    As bytes: compare_digest raises TypeError on a str holding non-ASCII (a 500 from a
    cookie); surrogates from a malformed header survive the encoding too.
    """
    return hmac.compare_digest(
        supplied.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer …` header value, or None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
