"""Reading request bodies safely: the one bounded reader every endpoint uses.

A size limit before and after gzip, a nesting limit for JSON, clear errors. Nothing reads
`request.body()` directly: a 300 MB body must cost at most `limit` bytes of memory, and the
check must come before any work (authentication included) that could be made to wait on it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator
from itertools import accumulate

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from simgate.credentials import bearer_token

MAX_JSON_DEPTH = 64
"""Deeper than any protocol we speak (the deepest is 4); msgspec recurses once per level
and raises RecursionError near 1,000, which would be a 500."""

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int, *, json: bool = True) -> bytes:
    """The raw body, gunzipped if `Content-Encoding: gzip` (SMSHUB demands gzip; spec 2).

    `json=False` for form posts: skips the nesting check, keeps the size and UTF-8 ones.
    """
    headers = request.headers
    return await read_stream(
        request.stream(),
        headers.get("content-length", ""),
        headers.get("content-encoding", "identity"),
        limit,
        json=json,
    )


async def receive_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body's chunks straight from ASGI `receive` (the marketplace routes, http/fastpath.py)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def read_stream(
    stream: AsyncIterator[bytes], declared: str, encoding: str, limit: int, *, json: bool = True
) -> bytes:
    """`read_body` over any chunk stream, given the Content-Length and Content-Encoding headers."""
    if declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise BodyError(413, f"body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody reads the answer; a 400 keeps it out of the 500s and their tracebacks.
        raise BodyError(400, "client disconnected before sending the whole body") from None
    body = b"".join(chunks)
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        body = gunzip(body, limit)
    elif encoding not in ("", "identity"):
        raise BodyError(415, f"unsupported Content-Encoding {encoding!r}; send gzip or identity")
    try:
        # JSON must be UTF-8 (spec 2); the decoder skips unknown fields without checking them.
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyError(400, f"body is not UTF-8 (byte {error.start})") from error
    if json and json_depth(body) > MAX_JSON_DEPTH:
        raise BodyError(400, f"JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return body


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest (an upper bound for text that is not JSON)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper: the common case costs two scans in C
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET).translate(_DEPTH_STEP)
    # +1 per opening, -1 per closing bracket, summed in C: the running maximum is the depth.
    return max(accumulate(memoryview(brackets).cast("b")), default=0)


def gunzip(data: bytes, limit: int) -> bytes:
    # Bounded: a few kilobytes of gzip can expand to gigabytes.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise BodyError(400, f"body is not valid gzip: {error}") from error
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyError(413, f"body is larger than {limit} bytes once decompressed")
    if not inflater.eof:
        raise BodyError(400, "gzip body is truncated")
    return out


def bearer(request: Request) -> str | None:
    return bearer_token(request.headers.get("authorization", ""))
