"""Reading request bodies safely: a size limit before and after gzip, clear errors."""

from __future__ import annotations

import zlib

from starlette.requests import Request


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, gunzipped if `Content-Encoding: gzip` (SMSHUB demands gzip; spec 2)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body is larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        body = gunzip(body, limit)
    elif encoding not in ("", "identity"):
        raise BodyError(415, f"unsupported Content-Encoding {encoding!r}; send gzip or identity")
    try:
        # JSON must be UTF-8 (spec 2); the decoder skips unknown fields without checking them.
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyError(400, f"body is not UTF-8 (byte {error.start})") from error
    return body


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
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
