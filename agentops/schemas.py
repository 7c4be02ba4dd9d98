"""The domain's data shapes, shared by planner, guardrail, deploy, CLI and HTTP.

Graph state holds these as plain dicts (`model_dump(mode="json")`): the checkpointer only stores
JSON-able values safely.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["all_at_once", "canary", "linear"]

# What a plan does to an endpoint. A deploy becomes a create or an update depending on whether the endpoint
# exists when AgentOps looks (see Change.action); rollback and teardown act on an endpoint that exists.
PlanAction = Literal["deploy", "rollback", "teardown"]
ENDPOINT_ACTIONS: frozenset[str] = frozenset({"rollback", "teardown"})
# no_change: the endpoint already serves exactly what a deploy plans (tools/sagemaker/state.py decides).
LifecycleAction = Literal["create", "update", "rollback", "teardown", "no_change"]

# Every status a plan can be in; the terminal ones end the thread.
PlanStatus = Literal[
    "planning",
    "blocked",
    "pending_approval",
    "approved",
    "rejected",
    "expired",
    "deploying",  # execute mode: the calls are made, the endpoint is being watched
    "deployed",
    "rolled_back",
    "torn_down",
    "no_change",  # the endpoint already runs what was planned: nothing was approved or touched
    "failed",
    "needs_clarification",  # the intent's words could not all be read: a question went back, nothing was planned
]
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"blocked", "rejected", "expired", "deployed", "rolled_back", "torn_down", "failed", "no_change", "needs_clarification"}
)


# Ceilings on numbers anyone can state (an intent, a constraint, a planner's answer). They sit far above any
# policy's own limits, so a value beyond the policy is the guardrail's violation, naming its rule; they only keep
# values no policy could mean (2**64 instances) from reaching the checkpointer, SageMaker or a price sum.
MAX_INSTANCES = 1000
MAX_USD_PER_HOUR = 1_000_000.0


class DeploymentConfig(BaseModel):
    """A concrete SageMaker real-time endpoint deployment. Unknown fields are refused (typos are errors)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["deploy"] = Field(default="deploy", description="Create the endpoint, or update it when it exists.")
    model_name: str = Field(description="SageMaker model name (the model and version being deployed).")
    endpoint_name: str = Field(description="SageMaker endpoint name; stable across versions.")
    instance_type: str = Field(examples=["ml.m5.large"])
    instance_count: int = Field(ge=1, le=MAX_INSTANCES)
    model_data_url: str = Field(description="s3:// URI of model.tar.gz")
    image_uri: str | None = Field(default=None, description="Inference container; the configured default when unset.")
    autoscaling_min: int | None = Field(default=None, ge=1, le=MAX_INSTANCES, description="Defaults to instance_count (no autoscaling).")
    autoscaling_max: int | None = Field(default=None, ge=1, le=MAX_INSTANCES, description="Defaults to instance_count (no autoscaling).")
    rollback_alarms: list[str] = Field(default_factory=list, description="CloudWatch alarms that roll the deployment back.")
    deployment_strategy: Strategy = "all_at_once"
    canary_percent: int | None = Field(default=None, description="Share of capacity in the canary (canary and linear).")
    data_capture_percent: int = Field(default=0, ge=0, le=100)
    enable_model_monitor: bool = False
    budget_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)

    @model_validator(mode="after")
    def _autoscaling_defaults_to_fixed_count(self) -> DeploymentConfig:
        if self.autoscaling_min is None:
            self.autoscaling_min = self.instance_count
        if self.autoscaling_max is None:
            self.autoscaling_max = self.instance_count
        return self

    @property
    def autoscaling_range(self) -> tuple[int, int]:
        """(min, max) instances; the validator fills both from instance_count when unset."""
        return (self.autoscaling_min or self.instance_count, self.autoscaling_max or self.instance_count)

    @property
    def peak_instance_count(self) -> int:
        return max(self.instance_count, self.autoscaling_max or self.instance_count)

    @property
    def autoscaling_enabled(self) -> bool:
        return (self.autoscaling_min, self.autoscaling_max) != (self.instance_count, self.instance_count)


class EndpointAction(BaseModel):
    """Roll an endpoint back to its previous endpoint config, or tear it down. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["rollback", "teardown"]
    endpoint_name: str = Field(description="The SageMaker endpoint acted on.")
    target_endpoint_config: str | None = Field(
        default=None,
        description="rollback: the endpoint config to return to; when unset, the one AgentOps recorded as previous.",
    )


PlanConfig = DeploymentConfig | EndpointAction


def parse_config(data: dict[str, Any] | PlanConfig) -> PlanConfig:
    """The one place that tells a deployment from an endpoint action (raises pydantic's ValidationError)."""
    if isinstance(data, (DeploymentConfig, EndpointAction)):
        return data
    if isinstance(data, dict) and data.get("action") in ENDPOINT_ACTIONS:
        return EndpointAction.model_validate(data)
    return DeploymentConfig.model_validate(data)


class FieldChange(BaseModel):
    field: str
    current: Any = None
    planned: Any = None


class Change(BaseModel):
    """What a plan changes against what runs now: the diff an approver reads before saying yes."""

    action: LifecycleAction | None = Field(description="None when the current state is unknown (create or update).")
    known: bool = Field(description="Whether AgentOps read the endpoint's current state.")
    summary: str
    current: dict[str, Any] | None = Field(default=None, description="What runs now (tools.sagemaker.calls.EndpointState).")
    diff: list[FieldChange] = Field(default_factory=list)
    removes: list[str] = Field(default_factory=list, description="teardown: the resources that will be deleted.")
    warnings: list[str] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why the plan cannot run as it stands; deploy will refuse it.")


class Constraints(BaseModel):
    """What the requester asked for on top of policy. Constraints can only tighten policy."""

    model_config = ConfigDict(extra="forbid")

    budget_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    max_instance_count: int | None = Field(default=None, ge=1, le=MAX_INSTANCES)
    instance_type: str | None = None


class Violation(BaseModel):
    rule: str = Field(description="Stable rule id, e.g. instance_count.range")
    message: str
    policy: str = Field(description="Id of the policy document the rule comes from")
    section: str | None = None


class Verdict(BaseModel):
    allowed: bool
    violations: list[Violation] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class GuardrailReport(BaseModel):
    """The guardrail's answer for one config in one environment."""

    verdict: Verdict
    hourly_cost_usd: float | None
    peak_cost_usd: float | None
    requires_approval: bool
    approval_reasons: list[str] = Field(default_factory=list)


class Evidence(BaseModel):
    policy: str
    section: str
    text: str
    score: float


class Decision(BaseModel):
    """What a human answers to an approval request (the resume value of the approval interrupt)."""

    model_config = ConfigDict(extra="forbid")

    approved: bool
    approver: str = Field(min_length=1)
    reason: str = ""
    decided_at: datetime | None = None


class PlanSummary(BaseModel):
    """One row of the plan index: what lists and approvals pages show without reading checkpoints."""

    plan_id: str
    env: str
    requester: str
    intent: str
    status: PlanStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    endpoint_name: str | None = None
    peak_cost_usd: float | None = None
    decision: Decision | None = None


class Deployed(BaseModel):
    """A deployment AgentOps made that still stands on its endpoint: what a later plan for it starts from
    (agentops/updates.py)."""

    plan_id: str
    deployed_at: datetime
    config: dict[str, Any] = Field(description="The DeploymentConfig it deployed.")
