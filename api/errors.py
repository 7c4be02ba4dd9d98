"""Every error the service answers with has one shape: `{"error": code, "message": sentence, "fields": [...]}`.

A refusal is a 4xx that says why; nothing else reaches the client. A database that is full, locked or
unreachable (or another EnvironmentProblem) is a 503 in one line: the request may be retried once the
machine is fixed, and nothing half-made stays behind (a plan cut off is failed or continued at start-up).
An unexpected exception is logged with its traceback here and answered with a 500 that carries only an id
to find it in the log.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentops.errors import AgentOpsError, Conflict, EnvironmentProblem, Forbidden, NotFound

logger = logging.getLogger("agentops.api")


class ApiError(Exception):
    """A refusal decided by the HTTP layer (authentication, roles, sizes)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str, fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    return body


def _domain_status(exc: AgentOpsError) -> tuple[int, str]:
    from app.service import RequestExpired  # the service imports the graph; keep this module light

    for kind, status, code in (
        (EnvironmentProblem, 503, "unavailable"),
        (NotFound, 404, "not_found"),
        (Forbidden, 403, "forbidden"),
        (RequestExpired, 409, "expired"),
        (Conflict, 409, "conflict"),
    ):
        if isinstance(exc, kind):
            return status, code
    return 422, "invalid"  # anything else the domain refuses is a problem with the input


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    @app.exception_handler(AgentOpsError)
    async def domain_error(_: Request, exc: AgentOpsError) -> JSONResponse:
        status, code = _domain_status(exc)
        return JSONResponse(error_body(code, str(exc)), status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Which field and why; never the rejected input itself (it may be huge, or someone's secret).
        fields = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
        return JSONResponse(error_body("invalid", summary or "invalid request", fields), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        from app.service import out_of_service

        if out_of_service(exc):
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            logger.error("unavailable on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, reason)
            return JSONResponse(error_body("unavailable", f"the service's database cannot be used now ({reason}); try again later"), 503)
        incident = uuid.uuid4().hex[:12]
        logger.exception("internal error %s on %s %s", incident, request.method, request.url.path)
        return JSONResponse(error_body("internal", f"internal error (incident {incident}); it is logged on the server"), 500)

    # The database's own errors get handlers of their own: the catch-all below answers too, but Starlette
    # then re-raises the exception to the server, which logs a traceback for what is a full disk.
    for kind in _database_errors():
        app.add_exception_handler(kind, unexpected)
    app.add_exception_handler(Exception, unexpected)


def _database_errors() -> tuple[type[Exception], ...]:
    import sqlite3

    import psycopg
    from psycopg_pool import PoolTimeout

    return (sqlite3.OperationalError, psycopg.OperationalError, PoolTimeout)
