"""Routes for operators and browsers: health, readiness, metrics, and the approvals page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import Principal, require
from api.routes import errors, example

router = APIRouter()
STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI's own files, from a package (fastapi-offline) rather than a CDN; /docs starts it from a file of ours,
# so the page needs no inline script (api/middleware.py's Content-Security-Policy allows none).
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"


@router.get("/healthz", tags=["operations"], summary="Liveness (no credentials needed)", responses={200: example({"status": "ok"})})
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Readiness: the checkpointer and the plan index answer (no credentials needed)",
    responses={
        200: example({"status": "ready", "checks": {"checkpointer": "ok", "plan_index": "ok"}}),
        503: example({"status": "not ready", "checks": {"checkpointer": "ok", "plan_index": "OperationalError"}}),
    },
)
async def readyz(request: Request) -> JSONResponse:
    orchestrator = request.app.state.orchestrator
    checks = {
        "checkpointer": asyncio.to_thread(orchestrator.graph.get_state, {"configurable": {"thread_id": "readyz"}}),
        "plan_index": asyncio.to_thread(orchestrator.index.list, limit=1),
    }
    results = {}
    for name, probe in checks.items():
        try:
            await probe
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; its type is enough to start looking
            results[name] = type(exc).__name__
    ready = all(v == "ok" for v in results.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": results}, 200 if ready else 503)


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {CONTENT_TYPE_LATEST: {"example": 'agentops_intents_total{env="prod",outcome="pending_approval"} 3.0\n'}},
        },
        **errors(),
    },
)
def metrics(request: Request, caller: Principal = Depends(require("viewer"))) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
def approvals_page() -> FileResponse:
    # The page holds no data: it signs in with a key and calls the API, which checks every call.
    return FileResponse(STATIC_DIR / "approvals.html", media_type="text/html")


@router.get("/docs", include_in_schema=False)
def api_docs() -> FileResponse:
    """Swagger UI over /openapi.json, every file served from here (api/static/docs.html)."""
    return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")
