"""The door every request body passes: at most its route's limit, JSON, and within bounds.

An ASGI middleware in front of the whole app, so that it holds for every route, however the route reads
its body:
- a declared Content-Length over the limit is answered 413 at once, before a byte of the body is read;
  a body without one (chunked) is read until it passes the limit, then cut off with the same 413;
- a body not labelled `application/json` (or `application/...+json`) is 415;
- the body is parsed once (`kvnet.server.json_input`: 422 for anything out of bounds) and the parsed
  value left in the request scope for the route (`parsed_body`); the route still sees the raw bytes too.
None of these answers echoes the body.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kvnet.errors import KvnetError, PayloadTooLarge, UnsupportedMediaType
from kvnet.server.http_errors import error_response
from kvnet.server.json_input import parse_json
from kvnet.server.limits import BodyLimits

PARSED_BODY = "kvnet.parsed_body"
NO_BODY = object()


class BodyGuard:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_request(scope["method"], scope["path"])
        headers = Headers(scope=scope)
        try:
            _check_declared_length(headers, limit)
            raw = await _read_body(receive, limit)
        except PayloadTooLarge as exc:
            # The rest of the body is not read: close the connection after the answer, or the server
            # would go on reading (and dropping) it to keep the connection alive.
            await error_response(exc, headers={"Connection": "close"})(scope, receive, send)
            return
        if raw is None:
            return  # the client went away
        try:
            scope[PARSED_BODY] = _parse(headers, raw) if raw else NO_BODY
        except KvnetError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, _replay(raw, receive), send)


def parsed_body(request: Request) -> Any:
    """The request's JSON body as BodyGuard parsed it, or NO_BODY."""
    return request.scope.get(PARSED_BODY, NO_BODY)


def _check_declared_length(headers: Headers, limit: int) -> None:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is {declared} bytes; this route accepts at most {limit}")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is over {limit} bytes, the most this route accepts")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(headers: Headers, raw: bytes) -> Any:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not (media_type == "application/json" or (media_type.startswith("application/")
                                                 and media_type.endswith("+json"))):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)",
                                   field="Content-Type")
    return parse_json(raw)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then passes on (for the disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
