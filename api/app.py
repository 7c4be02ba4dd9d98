"""The FastAPI app: `create_app(settings)`.

The lifespan opens what lives as long as the process: the checkpointer (once), the
Orchestrator over it, the background runs, the webhook worker and the expiry timer. Authentication is set
up at creation, so a broken keys file stops the server before it listens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from agentops.settings import Settings
from api import errors, ops, routes
from api.auth import Authenticator
from api.middleware import BodyLimit, RequestMetrics, SecurityHeaders
from api.notify import Webhook
from api.observe import Metrics, Observer
from api.runs import Runs
from app.service import Orchestrator, TaskObserver

logger = logging.getLogger("agentops.api")

DESCRIPTION = """\
Plan, check, approve and deploy SageMaker models from plain-language intents.

**Credentials.** Every route but `/healthz` and `/readyz` needs an API key (`Authorization: Bearer ak_…`
or `X-API-Key: ak_…`) or, where single sign-on is configured, an OIDC bearer token. Roles: `viewer`
reads, `requester` submits intents, `approver` decides, `admin` may do all three. The requester and the
approver are always the caller; nobody decides on their own plan.

**Slow work** (deploy, watch) runs in the background: such answers are `202` with `links.stream`, a
server-sent event stream that ends when the run pauses or ends.

**Errors** are `{"error", "message", "fields"?}` with a 4xx that says why; a refused request changes nothing.
"""

DRAIN_SECONDS = 30.0  # at shutdown, how long running deployments get to finish


def create_app(settings: Settings, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The service for these settings. `clock` replaces the workflow's clock (tests move time forward)."""
    metrics = Metrics()
    auth = Authenticator(settings, on_invalid_keys=lambda _: metrics.key_file_errors.inc())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Orchestrator.aopen(settings) as orchestrator:
            if clock is not None:
                orchestrator.deps.clock = clock
            metrics.start_at_zero(orchestrator.deps.policy.environments)
            webhook = Webhook.from_settings(settings, metrics)
            observer = Observer(metrics, webhook)
            runs = Runs(observer)
            app.state.orchestrator, app.state.observer, app.state.runs = orchestrator, observer, runs
            stop = asyncio.Event()
            background = [
                asyncio.create_task(_expire_periodically(orchestrator, observer.on_task, settings.expiry_check_seconds, stop)),
                asyncio.create_task(_recover(orchestrator, observer.on_task)),
            ]
            if webhook is not None:
                background.append(asyncio.create_task(webhook.deliver_forever()))
            try:
                yield
            finally:
                stop.set()
                await runs.drain(DRAIN_SECONDS)
                if webhook is not None:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(webhook.drain(), settings.webhook_timeout_seconds * 2)
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)

    # /docs is api/ops.py's own page (local assets, no inline script); ReDoc would load from a CDN: off.
    app = FastAPI(title="AgentOps", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings, app.state.metrics, app.state.auth = settings, metrics, auth
    app.state.audit_log, app.state.verify_audit = _audit(settings)
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(ops.router)
    app.mount("/static/swagger", StaticFiles(directory=ops.SWAGGER_DIR), name="swagger")  # before /static, which would take it
    app.mount("/static", StaticFiles(directory=ops.STATIC_DIR), name="static")
    # Added innermost first: metrics see every answer, including the body limit's 413.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def _audit(settings: Settings):
    """The audit log to read a plan's events from, and the full verification (every configured store),
    the same as `agentops audit show` / `agentops audit verify`."""
    from tools.audit.local import SqliteAuditLog
    from tools.audit.trail import build_audit_trail

    return SqliteAuditLog(settings.database), lambda: build_audit_trail(settings).verify()


async def _recover(orchestrator: Orchestrator, on_task: TaskObserver) -> None:
    """At start-up, continue what a process that died left unfinished (a decision it recorded but never
    acted on, a deploy cut short). In the background: the service answers meanwhile, and a plan being
    driven by another replica is waited for, not driven twice."""
    try:
        resumed = await orchestrator.arecover(on_task)
        if resumed:
            logger.info("looked at %d unfinished plans at start-up", len(resumed))
    except Exception:
        logger.exception("resuming unfinished plans failed")


async def _expire_periodically(orchestrator: Orchestrator, on_task: TaskObserver, every: float, stop: asyncio.Event) -> None:
    """Overdue approval requests end `expired`, on the record, even when nobody looks at the list."""
    while not stop.is_set():
        try:
            await orchestrator.aexpire_overdue(on_task)
        except Exception:  # one failed pass must not end the timer; the next pass retries
            logger.exception("expiring overdue approval requests failed")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
