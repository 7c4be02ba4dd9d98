"""The HTTP API's request and response shapes, with the examples OpenAPI shows.

Requests reuse the domain's shapes and tighten them for the open network (lengths, finite numbers);
unknown fields are refused, so a typo is an error and not silently ignored. Strict: a value of the wrong
JSON type is refused, never converted (`"yes"` is not true, `"5"` is not 5), and numbers are bounded by
what a deployment could mean (agentops.schemas MAX_INSTANCES, MAX_USD_PER_HOUR), not by the machine.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from agentops.approval import MAX_REASON_CHARS
from agentops.intake import MAX_INTENT_CHARS, MAX_REQUESTER_CHARS
from agentops.schemas import MAX_INSTANCES, MAX_USD_PER_HOUR, Change, Constraints, Decision, Evidence, PlanStatus, Verdict

PLAN_ID_EXAMPLE = "5d0c6a1f4b6e4f0e9a7c2d1b3e8f9a10"
PlanId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The plan's id (its LangGraph thread id).", examples=[PLAN_ID_EXAMPLE])
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        # Python's JSON parser accepts NaN and Infinity; nothing here means either, and echoing one back
        # would not even be valid JSON.
        def walk(value: Any) -> None:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("numbers must be finite")
            for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
                walk(item)

        walk(data)
        return data


class ConstraintsIn(Constraints, Input):
    """The requester's own limits (they only tighten policy), bounded for the open network."""

    budget_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR, description="Your own limit, $/hour at peak.")
    max_instance_count: int | None = Field(default=None, ge=1, le=MAX_INSTANCES)
    instance_type: str | None = Field(default=None, min_length=1, max_length=64, examples=["ml.g5.xlarge"])


class IntentIn(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"intent": "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%", "env": "prod"}]}
    )

    intent: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_INTENT_CHARS)] = Field(
        description="What to deploy, in plain words."
    )
    env: str = Field(min_length=1, max_length=32, description="The target environment, e.g. dev, staging or prod.")
    constraints: ConstraintsIn | None = None


class SeedIntentIn(IntentIn):
    """`POST /intent` as the seed service took it. `user`, if sent, must be the caller."""

    # Marked deprecated in the schema only: pydantic's own `deprecated=` would warn on every read.
    user: str | None = Field(
        default=None,
        max_length=MAX_REQUESTER_CHARS,
        json_schema_extra={"deprecated": True},
        description="Ignored beyond a check: the requester is the caller.",
    )


class DecisionIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"approved": True, "reason": "capacity and cost reviewed"}]})

    approved: bool = Field(description='A JSON boolean: true approves, false rejects ("yes", 1 or "true" are refused).')
    reason: str = Field(default="", max_length=MAX_REASON_CHARS, description="Why; required for a rejection.")


class SeedApproveIn(DecisionIn):
    """`POST /approve` as the seed service took it. `approver`, if sent, must be the caller."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"plan_id": PLAN_ID_EXAMPLE, "approved": True, "reason": "reviewed"}]})

    plan_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    approved: bool = True
    approver: str | None = Field(
        default=None,
        max_length=MAX_REQUESTER_CHARS,
        json_schema_extra={"deprecated": True},
        description="Ignored beyond a check: the approver is the caller.",
    )


# --- responses ---------------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str = Field(description="A stable code: unauthorized, forbidden, not_found, conflict, expired, invalid, too_large, …")
    message: str = Field(description="What is wrong, in one sentence.")
    fields: list[dict[str, str]] | None = Field(default=None, description="For invalid input: each field and what is wrong with it.")


class Links(BaseModel):
    plan: str
    stream: str = Field(description="Server-sent events of the plan's progress; ends when the run pauses or ends.")
    audit: str
    decisions: str


class PlanOut(BaseModel):
    """A plan: its config, costs, the guardrail's verdict, the evidence, decisions and deployment."""

    model_config = ConfigDict(extra="allow")

    plan_id: str
    status: PlanStatus
    env: str
    requester: str
    intent: str
    created_at: str | None = None
    expires_at: str | None = None
    config: dict[str, Any] | None = None
    pinned: list[str] = Field(default_factory=list)
    question: str | None = Field(
        default=None, description="needs_clarification: the words that could not be read, quoted; nothing was planned."
    )
    reading: dict[str, Any] | None = Field(
        default=None, description="Each stated value and the requester's words it came from: field -> {value, words, start, end}."
    )
    evidence: list[Evidence] = Field(default_factory=list)
    hourly_cost_usd: float | None = None
    peak_cost_usd: float | None = None
    verdict: Verdict | None = None
    requires_approval: bool | None = None
    approval_reasons: list[str] = Field(default_factory=list)
    approvers_required: int = Field(default=0, description="Distinct approvers the policy asks for (0: no approval needed).")
    approvals: list[Decision] = Field(default_factory=list, description="Decisions so far, in order.")
    decision: Decision | None = None
    deployment: dict[str, Any] | None = None
    change: Change | None = Field(default=None, description="What the plan changes against what runs on the endpoint now.")
    basis: dict[str, Any] | None = Field(
        default=None,
        description="The deployment on this endpoint the plan started from: {plan_id, deployed_at, config, kept}; "
        "`kept` lists the fields taken from it because the request did not state them.",
    )
    error: str | None = None
    waiting_for: list[str] = Field(default_factory=list, description="The next step(s); ['approval'] while a human is awaited.")


class PlanAccepted(PlanOut):
    running: bool = Field(description="True while work continues in the background (deploy, watch): follow links.stream.")
    links: Links


class DecisionsOut(BaseModel):
    approvers_required: int
    decisions: list[Decision]


class PrincipalOut(BaseModel):
    name: str = Field(description="Your identity, as plans record you: an API key's name, or an OIDC issuer#subject.")
    display: str = Field(description="For reading only: an OIDC user's verified email, or the name again.")
    roles: list[str]
    via: str


PLAN_EXAMPLE: dict[str, Any] = {
    "plan_id": PLAN_ID_EXAMPLE,
    "status": "pending_approval",
    "env": "prod",
    "requester": "alice@example.com",
    "intent": "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%",
    "created_at": "2026-11-24T12:00:00+00:00",
    "expires_at": "2026-11-25T12:00:00+00:00",
    "config": {
        "model_name": "fraud-detector-v3",
        "endpoint_name": "fraud-detector-prod",
        "instance_type": "ml.g5.xlarge",
        "instance_count": 2,
        "deployment_strategy": "canary",
        "canary_percent": 10,
    },
    "hourly_cost_usd": 2.816,
    "peak_cost_usd": 2.816,
    "verdict": {"allowed": True, "violations": [], "warnings": []},
    "requires_approval": True,
    "approval_reasons": ["every prod deployment needs human approval"],
    "change": {
        "action": "update",
        "known": True,
        "summary": "endpoint fraud-detector-prod is updated (blue/green, canary 10%)",
        "diff": [{"field": "instance_type", "current": "ml.g5.xlarge", "planned": "ml.g5.2xlarge"}],
    },
    "approvers_required": 1,
    "approvals": [],
    "waiting_for": ["approval"],
}


def accepted_example(**changes: Any) -> dict[str, Any]:
    links = {
        name: f"/plans/{PLAN_ID_EXAMPLE}{suffix}"
        for name, suffix in (("plan", ""), ("stream", "/stream"), ("audit", "/audit"), ("decisions", "/decisions"))
    }
    return PLAN_EXAMPLE | {"running": False, "links": links} | changes
