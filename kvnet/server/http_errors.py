"""Every error the API answers has kvnet's shape, `{"error": {"type", "field", "message"}}`, and never
carries the request's input at length.

kvnet's own errors, FastAPI's validation errors (whose default answer echoes the whole `input`), routing
errors (404 for an unknown path, 405 with `Allow` for a known path and another method) and, last, any
unexpected exception (logged; answered as a generic 500 that tells nothing of the internals) all pass
through `error_response`. Messages may quote a rejected value (`'...' is not a MAC address`): each word
of a message is cut to `MAX_WORD` characters and the whole to `MAX_MESSAGE`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from kvnet.errors import Compacted, KvnetError, MethodNotAllowed, NotFound
from kvnet.model.parse import invalid_from_error

log = logging.getLogger("kvnet.server")

MAX_WORD = 48
MAX_MESSAGE = 400
# Where FastAPI says a request parameter came from: the first element of a validation error's `loc`.
_PARAMETER_SOURCES = {"body", "query", "path", "header", "cookie"}


class InternalError(KvnetError):
    status = 500


# -- the shape, for the OpenAPI document -----------------------------------------------------------
class ErrorDetail(BaseModel):
    type: str = Field(description="InvalidInput, NotFound, Conflict, Exhausted, PayloadTooLarge, ...")
    field: str | None = Field(description="the field (or parameter) at fault, when there is one")
    message: str


class Error(BaseModel):
    error: ErrorDetail


class CompactedError(Error):
    compact_revision: int = Field(description="the oldest revision still kept: re-read the snapshot")


def error_body(exc: KvnetError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"type": type(exc).__name__, "field": shorten(exc.field),
                                      "message": shorten(exc.message)}}
    if isinstance(exc, Compacted):
        body["compact_revision"] = exc.compact_revision
    return body


def error_response(exc: KvnetError, headers: dict[str, str] | None = None) -> Response:
    # ASCII-escaped: a message can never fail to encode, whatever text it quotes.
    return Response(json.dumps(error_body(exc)), status_code=exc.status, headers=headers,
                    media_type="application/json")


def shorten(text: str | None) -> str | None:
    if text is None:
        return None
    words = [w if len(w) <= MAX_WORD else f"{w[:MAX_WORD - 16]}...({len(w)} chars)" for w in text.split(" ")]
    text = " ".join(words)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def install(app: FastAPI) -> None:
    """Register the handlers that give every error kvnet's shape."""

    @app.exception_handler(KvnetError)
    async def _kvnet_error(_: Request, exc: KvnetError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        err = dict(exc.errors()[0])
        loc = tuple(err.get("loc", ()))
        err["loc"] = loc[1:] if loc and loc[0] in _PARAMETER_SOURCES else loc
        return error_response(invalid_from_error(err))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        return error_response(*_from_http(request, exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(InternalError("internal server error; the server log has the details"))


def _from_http(request: Request, exc: HTTPException) -> tuple[KvnetError, dict[str, str] | None]:
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        return NotFound(f"no route {method} {path}"), None
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        return (MethodNotAllowed(f"{path} answers {', '.join(allowed)}, not {method}"),
                {"Allow": ", ".join(allowed)})
    error = KvnetError(str(exc.detail))
    error.status = exc.status_code
    return error, exc.headers


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette's own 405 names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)
