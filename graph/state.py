"""The workflow's state. Values are plain JSON (dumped pydantic models) so any checkpointer can store them.

Three shapes, as LangGraph Studio and the LangGraph API show them:

- `PlanInput`: what a run may be started with — the intent, the environment and the requester's own
  constraints, nothing else. LangGraph reads only these keys from a run's input and drops any other
  (checked: tests/test_integrity.py), so no one can start a run with a plan id, a status, a verdict, a
  decision or audit events of their choosing. The plan id is the run's thread id and the requester is
  the authenticated caller, both set by the intake node.
- `PlanState`: everything the nodes write.
- `PlanOutput`: what a run answers with (the plan as a person reads it; no raw audit events).

`typing_extensions.TypedDict`, not `typing.TypedDict`: pydantic turns only the former into a JSON schema on
Python < 3.12, and the LangGraph API builds Studio's input form from that schema.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict


class PlanInput(TypedDict, total=False):
    intent: str  # what to deploy, in plain words
    env: str  # the target environment, e.g. dev, staging or prod
    constraints: dict[str, Any]  # agentops.schemas.Constraints: budget_usd_per_hour, max_instance_count, instance_type


class PlanOutput(TypedDict, total=False):
    plan_id: str
    intent: str
    env: str
    requester: str
    constraints: dict[str, Any]
    created_at: str
    evidence: list[dict[str, Any]]
    config: dict[str, Any] | None
    change: dict[str, Any] | None
    basis: dict[str, Any] | None
    pinned: list[str]
    planner: dict[str, Any]
    report: dict[str, Any]
    status: str
    expires_at: str | None
    decision: dict[str, Any] | None
    deployment: dict[str, Any] | None
    error: str | None


class PlanState(PlanInput, total=False):
    # Written by the intake node: one run = one plan = one thread; plan_id is the thread id, the requester
    # the authenticated caller who started the run.
    plan_id: str
    requester: str
    created_at: str  # ISO 8601

    evidence: list[dict[str, Any]]  # [Evidence]
    config: dict[str, Any] | None  # DeploymentConfig or EndpointAction, or None when the planner could not produce one
    change: dict[str, Any] | None  # Change: what the plan changes against what runs now (resolve node)
    # The deployment on the same endpoint this plan started from (agentops/updates.py): plan_id,
    # deployed_at, its config, and the fields kept from it because the requester did not state them.
    basis: dict[str, Any] | None
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
