"""The HTTP routes: thin over `app.service.Orchestrator` (its async forms), which holds every check.

Resource-style routes (`/plans…`, `/audit/verify`, `/me`) and, beside them, the seed service's routes
(`POST /intent`, `GET /approvals`, `POST /approve`, `GET /plan/{plan_id}`), which share the handlers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from agentops.approval import Caller
from agentops.errors import AgentOpsError, NotFound
from agentops.policy import person_key
from agentops.schemas import PlanStatus, PlanSummary
from api.auth import Principal, require
from api.errors import ApiError
from api.models import (
    PLAN_EXAMPLE,
    PLAN_ID_EXAMPLE,
    DecisionIn,
    DecisionsOut,
    ErrorOut,
    IntentIn,
    Links,
    PlanAccepted,
    PlanId,
    PlanOut,
    PrincipalOut,
    SeedApproveIn,
    SeedIntentIn,
    accepted_example,
)
from api.observe import Metrics
from api.runs import Run, Runs
from app.service import Orchestrator

router = APIRouter()

_ERROR_EXAMPLES = {
    400: ("bad_request", "There was an error parsing the body"),  # a body that is not even text (not UTF-8)
    401: ("unauthorized", "unknown API key"),
    403: ("forbidden", "alice@example.com requested plan 5d0c… and cannot decide on it"),
    404: ("not_found", f"no plan with id '{PLAN_ID_EXAMPLE}'"),
    409: ("conflict", f"plan {PLAN_ID_EXAMPLE} is deployed, not waiting for approval"),
    413: ("too_large", "the request body is larger than 65536 bytes"),
    422: ("invalid", "body.env: unknown environment 'qa': expected one of dev, staging, prod"),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries, with an example each, for the refusals a route can answer with."""
    return {
        status: {
            "model": ErrorOut,
            "description": code.replace("_", " "),
            "content": {"application/json": {"example": {"error": code, "message": message}}},
        }
        for status in (401, 403, *statuses)
        for code, message in [_ERROR_EXAMPLES[status]]
    }


def example(value: Any, description: str = "") -> dict[str, Any]:
    """An OpenAPI response entry showing `value`."""
    return {"description": description, "content": {"application/json": {"example": value}}}


def _orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


def _runs(request: Request) -> Runs:
    return request.app.state.runs


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def _links(plan_id: str) -> Links:
    base = f"/plans/{plan_id}"
    return Links(plan=base, stream=f"{base}/stream", audit=f"{base}/audit", decisions=f"{base}/decisions")


def _same_person(claimed: str | None, caller: Principal, role: str) -> None:
    # The seed's bodies named people; now the key does. A name that is not the caller's is refused, not ignored.
    if claimed is not None and person_key(claimed) != person_key(caller.name):
        raise ApiError(403, "forbidden", f"you are signed in as {caller.name}; the {role} is always the caller, not a name in the request")


async def _answer(request: Request, response: Response, run: Run, plan_id: str, done_status: int) -> PlanAccepted:
    """Answer once the work settles: `done_status` if it paused or ended, 202 if it continues in the background.

    Built only from what the run reported (api/runs.py), never from a checkpoint read while it goes on."""
    settled = await _runs(request).settle(run)
    view = settled.view if not settled.running else _orchestrator(request).view_of(settled.state or {}, settled.waiting_for)
    response.status_code = 202 if settled.running else done_status
    response.headers["Location"] = f"/plans/{plan_id}"
    return accepted(view, running=settled.running)


def accepted(view: dict[str, Any], running: bool) -> PlanAccepted:
    """The answer to a submitted intent or a decision, from a plan view."""
    return PlanAccepted.model_validate(view | {"running": running, "links": _links(view["plan_id"])})


# A client that retries after a timeout or a 5xx sends the same key: it gets the first plan, never a second one.
IdempotencyKey = Header(
    None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    pattern=r"^[\x21-\x7e]+$",
    description="Any unique string per request (a UUID): a retry with the same key and body answers with the first "
    "plan instead of making a second; the same key with another body is refused (409).",
)


async def _submit(request: Request, response: Response, body: IntentIn, caller: Principal, key: str | None = None) -> PlanAccepted:
    orchestrator, metrics = _orchestrator(request), _metrics(request)
    environments = orchestrator.deps.policy.environments
    if body.env not in environments:
        metrics.intents.labels(env="unknown", outcome="refused").inc()
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "env"),
                    "type": "value_error",
                    "msg": f"unknown environment '{body.env}': expected one of {', '.join(environments)}",
                }
            ]
        )
    constraints = body.constraints.model_dump(exclude_none=True) if body.constraints else None
    try:
        plan = orchestrator.new_plan(body.intent, body.env, caller.name, constraints)
    except AgentOpsError:
        metrics.intents.labels(env=body.env, outcome="refused").inc()
        raise
    if key is not None:
        plan = await orchestrator.aaccept(plan, key)
    run = _runs(request).start(plan["plan_id"], lambda on_task: orchestrator.arun(plan, on_task))
    answer = await _answer(request, response, run, plan["plan_id"], 201)
    metrics.intents.labels(env=body.env, outcome=answer.status).inc()
    return answer


async def _decide(
    request: Request, response: Response, plan_id: str, body: DecisionIn, caller: Principal, key: str | None = None
) -> PlanAccepted:
    orchestrator = _orchestrator(request)
    approver = Caller(caller.name, caller.roles)  # who decides: the authenticated caller, with the roles it was granted
    run = _runs(request).start(
        plan_id, lambda on_task: orchestrator.adecide(plan_id, approver, body.approved, body.reason, on_task, idempotency_key=key)
    )
    return await _answer(request, response, run, plan_id, 200)


async def _plan(request: Request, plan_id: str) -> PlanOut:
    return PlanOut.model_validate(await _orchestrator(request).ashow(plan_id))


_ACCEPTED = {
    201: example(accepted_example(), "The run paused or ended: the plan as it stands (blocked, pending_approval, …)."),
    202: example(
        accepted_example(status="approved", running=True, waiting_for=["deploy"]),
        "Deploying in the background: follow links.stream or poll links.plan.",
    ),
}
_DECIDED = {
    200: example(accepted_example(status="rejected", waiting_for=[]), "Recorded; the run paused again (more approvers needed) or ended."),
    202: _ACCEPTED[202],
}


# --- plans -------------------------------------------------------------------------------------------


@router.post(
    "/plans",
    response_model=PlanAccepted,
    status_code=201,
    tags=["plans"],
    summary="Submit a deployment intent",
    responses={**_ACCEPTED, **errors(400, 413, 422)},
)
async def create_plan(
    body: IntentIn,
    request: Request,
    response: Response,
    caller: Principal = Depends(require("requester")),
    idempotency_key: str | None = IdempotencyKey,
) -> PlanAccepted:
    """Plan, check against policy and, where policy allows without a human, deploy (dry-run by default).

    The requester is the caller. The answer comes when the run pauses for approval, ends (blocked,
    deployed), or starts deploying — then with 202 and `links.stream` to follow it."""
    return await _submit(request, response, body, caller, idempotency_key)


@router.get(
    "/plans",
    response_model=list[PlanSummary],
    tags=["plans"],
    summary="List plans, newest first",
    responses={
        200: example(
            [
                {k: PLAN_EXAMPLE[k] for k in ("plan_id", "env", "requester", "intent", "status", "created_at", "expires_at")}
                | {"updated_at": PLAN_EXAMPLE["created_at"], "endpoint_name": "fraud-detector-prod", "peak_cost_usd": 2.816}
            ]
        ),
        **errors(422),
    },
)
def list_plans(
    request: Request,
    status: PlanStatus | None = Query(None, description="Only plans in this status."),
    env: str | None = Query(None, max_length=32, examples=["prod"]),
    requester: str | None = Query(None, max_length=200, examples=["alice@example.com"]),
    limit: int = Query(50, ge=1, le=500),
    caller: Principal = Depends(require("viewer")),
) -> list[PlanSummary]:
    return _orchestrator(request).plans(status=status, env=env, requester=requester, limit=limit)


@router.get(
    "/plans/{plan_id}",
    response_model=PlanOut,
    tags=["plans"],
    summary="One plan, with what it changes on its endpoint",
    responses={200: example(PLAN_EXAMPLE), **errors(404, 422)},
)
async def get_plan(plan_id: PlanId, request: Request, caller: Principal = Depends(require("viewer"))) -> PlanOut:
    return await _plan(request, plan_id)


@router.get(
    "/plans/{plan_id}/decisions",
    response_model=DecisionsOut,
    tags=["decisions"],
    summary="A plan's decisions so far",
    responses={
        200: example(
            {
                "approvers_required": 2,
                "decisions": [
                    {"approved": True, "approver": "bob@example.com", "reason": "capacity reviewed", "decided_at": "2026-11-24T12:30:00Z"}
                ],
            }
        ),
        **errors(404, 422),
    },
)
def list_decisions(plan_id: PlanId, request: Request, caller: Principal = Depends(require("viewer"))) -> DecisionsOut:
    orchestrator = _orchestrator(request)
    summary = orchestrator.index.get(plan_id)
    if summary is None:
        raise NotFound(f"no plan with id '{plan_id}'")
    return DecisionsOut(
        approvers_required=orchestrator.deps.policy.approval.approvers_for(summary.env), decisions=orchestrator.index.decisions(plan_id)
    )


@router.post(
    "/plans/{plan_id}/decisions",
    response_model=PlanAccepted,
    tags=["decisions"],
    summary="Approve or reject a pending plan",
    responses={**_DECIDED, **errors(400, 404, 409, 413, 422)},
)
async def create_decision(
    plan_id: PlanId,
    body: DecisionIn,
    request: Request,
    response: Response,
    caller: Principal = Depends(require("approver")),
    idempotency_key: str | None = IdempotencyKey,
) -> PlanAccepted:
    """The approver is the caller, never the requester, and decides once. Where the policy asks for two
    approvers the plan stays pending after the first approval. A rejection needs a reason. Refusals change
    nothing: 403 (own plan), 404, 409 (decided, expired, not waiting, approved by you already), 422."""
    return await _decide(request, response, plan_id, body, caller, idempotency_key)


@router.get(
    "/plans/{plan_id}/audit",
    tags=["audit"],
    summary="A plan's audit events, in chain order",
    responses={
        200: example(
            [
                {
                    "seq": 3,
                    "event_id": "9f…",
                    "plan_id": PLAN_ID_EXAMPLE,
                    "step": "approval.requested",
                    "ts": "2026-11-24T12:00:00+00:00",
                    "actor": "guardrail",
                    "payload": {"expires_at": "2026-11-25T12:00:00+00:00"},
                    "prev_hash": "4c…",
                    "hash": "a1…",
                }
            ]
        ),
        **errors(404, 422),
    },
)
def plan_audit(plan_id: PlanId, request: Request, caller: Principal = Depends(require("viewer"))) -> list[dict[str, Any]]:
    events = request.app.state.audit_log.events(plan_id)
    if not events:
        raise NotFound(f"no audit events for plan '{plan_id}'")
    return [e.model_dump() for e in events]


@router.get(
    "/plans/{plan_id}/stream",
    tags=["plans"],
    summary="Follow a plan's progress (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: progress` with {plan_id, status, waiting_for} on each change while work runs, then "
            "`event: end` with the plan; the stream closes when the run pauses or ends.",
            "content": {
                "text/event-stream": {
                    "example": 'event: progress\ndata: {"status": "approved", "waiting_for": ["deploy"]}\n\n'
                    'event: end\ndata: {"status": "deployed", …}\n\n'
                }
            },
        },
        **errors(404, 422),
    },
)
async def stream_plan(plan_id: PlanId, request: Request, caller: Principal = Depends(require("viewer"))) -> StreamingResponse:
    orchestrator = _orchestrator(request)
    await orchestrator.ashow(plan_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        async for kind, data in _runs(request).follow(plan_id, orchestrator.ashow):
            yield ": keepalive\n\n" if kind == "keepalive" else f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


@router.get(
    "/approvals",
    response_model=list[PlanSummary],
    tags=["decisions"],
    summary="Plans waiting for a human decision",
    responses={
        200: example(
            [
                {k: PLAN_EXAMPLE[k] for k in ("plan_id", "env", "requester", "intent", "status", "created_at", "expires_at")}
                | {"updated_at": PLAN_EXAMPLE["created_at"], "endpoint_name": "fraud-detector-prod", "peak_cost_usd": 2.816}
            ]
        ),
        **errors(),
    },
)
async def approvals(request: Request, caller: Principal = Depends(require("viewer"))) -> list[PlanSummary]:
    """Overdue requests are expired first (they end `expired`, on the record)."""
    return await _orchestrator(request).aapprovals(request.app.state.observer.on_task)


# --- the seed service's routes -----------------------------------------------------------------------


@router.post(
    "/intent",
    response_model=PlanAccepted,
    status_code=201,
    tags=["seed"],
    summary="Submit an intent (seed route; see POST /plans)",
    responses={**_ACCEPTED, **errors(400, 413, 422)},
)
async def seed_intent(
    body: SeedIntentIn,
    request: Request,
    response: Response,
    caller: Principal = Depends(require("requester")),
    idempotency_key: str | None = IdempotencyKey,
) -> PlanAccepted:
    _same_person(body.user, caller, "requester")
    return await _submit(request, response, body, caller, idempotency_key)


@router.post(
    "/approve",
    response_model=PlanAccepted,
    tags=["seed"],
    summary="Decide on a plan (seed route; see POST /plans/{id}/decisions)",
    responses={**_DECIDED, **errors(400, 404, 409, 413, 422)},
)
async def seed_approve(
    body: SeedApproveIn,
    request: Request,
    response: Response,
    caller: Principal = Depends(require("approver")),
    idempotency_key: str | None = IdempotencyKey,
) -> PlanAccepted:
    _same_person(body.approver, caller, "approver")
    return await _decide(request, response, body.plan_id, body, caller, idempotency_key)


@router.get(
    "/plan/{plan_id}",
    response_model=PlanOut,
    tags=["seed"],
    summary="One plan (seed route; see GET /plans/{id})",
    responses={200: example(PLAN_EXAMPLE), **errors(404, 422)},
)
async def seed_plan(plan_id: PlanId, request: Request, caller: Principal = Depends(require("viewer"))) -> PlanOut:
    return await _plan(request, plan_id)


# --- audit, identity ---------------------------------------------------------------------------------


@router.get(
    "/audit/verify",
    tags=["audit"],
    summary="Recompute the audit chain",
    responses={200: example({"ok": True, "events": 42, "problem": None, "seq": None}), **errors()},
)
def audit_verify(request: Request, caller: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    """`ok: false` names the first event (or digest) that was changed, deleted or reordered."""
    return request.app.state.verify_audit().model_dump()


@router.get(
    "/me",
    response_model=PrincipalOut,
    tags=["identity"],
    summary="Who the credentials belong to",
    responses={200: example({"name": "bob@example.com", "roles": ["approver"], "via": "api_key"}), **errors()},
)
def me(caller: Principal = Depends(require("viewer"))) -> PrincipalOut:
    return PrincipalOut(name=caller.name, display=caller.display, roles=sorted(caller.roles), via=caller.via)
