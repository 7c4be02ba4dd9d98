"""The workflow's state. Values are plain JSON (dumped pydantic models) so any checkpointer can store them."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class PlanState(TypedDict, total=False):
    # Input: one run = one plan = one thread; plan_id is the thread id.
    plan_id: str
    intent: str
    env: str
    requester: str
    constraints: dict[str, Any]  # agentops.schemas.Constraints
    created_at: str  # ISO 8601

    evidence: list[dict[str, Any]]  # [Evidence]
    config: dict[str, Any] | None  # DeploymentConfig or EndpointAction, or None when the planner could not produce one
    change: dict[str, Any] | None  # Change: what the plan changes against what runs now (resolve node)
    pinned: list[str]  # config fields the requester stated explicitly: never changed by a re-plan
    reading: dict[str, Any]  # field -> {value, words, start, end}: the requester's words each stated value came from
    question: str | None  # needs_clarification: what the requester is asked (the words that could not be read)
    planner: dict[str, Any]  # which planner, its warnings, rounds, LLM calls and tokens
    report: dict[str, Any]  # GuardrailReport
    status: str  # agentops.schemas.PlanStatus
    expires_at: str | None  # when a pending approval expires
    decision: dict[str, Any] | None  # Decision
    deployment: dict[str, Any] | None  # what deploy did (or would do, in dry-run)
    error: str | None

    # Audit events produced by nodes and written by the audit node. Each has a `step` unique within
    # the plan, so writing them is idempotent however often a node or the audit node re-runs.
    events: Annotated[list[dict[str, Any]], operator.add]
