"""ASGI middleware: a cap on request bodies, per-route request metrics, and headers every response carries."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.observe import Metrics


class BodyLimit:
    """Refuses bodies over `max_bytes` with 413 in the service's error shape: by Content-Length before
    reading, or while reading a body that declared none (chunked) or lied about its length.

    (FastAPI's own `max_body_size` answers in plain text, outside the app's middleware and handlers.)"""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            body = json.dumps(error_body("too_large", self.message)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            return await send({"type": "http.response.body", "body": body})
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b"")) if message["type"] == "http.request" else 0
            if received > self.max_bytes:
                # FastAPI passes an HTTPException raised while it reads the body on to the handlers.
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts requests by route template (never the raw path: plan ids would explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics
        self._counters: dict[tuple[str, str, str], Any] = {}  # label values -> counter child (`labels()` is the costly part)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"  # a client picks it: bounded, like the route
            labels = (getattr(scope.get("route"), "path", None) or "unmatched", method, str(status))
            counter = self._counters.get(labels)
            if counter is None:
                counter = self._counters[labels] = self.metrics.requests.labels(*labels)
            counter.inc()


# The page's own files only: no inline script or style, no third-party origin, not framable. The same policy
# on every response (pages, static files, /docs, JSON), so no path is left without one.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class SecurityHeaders:
    """Headers every response carries, whatever answered it (a route, StaticFiles, an error handler)."""

    HEADERS = (
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = {name for name, _ in self.HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                message["headers"] = [*kept, *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
