"""The ports: what the workflow needs from the outside world, as protocols the adapters in `tools/`
implement, and `Dependencies`, the bundle of them a run gets through LangGraph's runtime context.

A test builds `Dependencies` with fakes; the front ends build the real one from `Settings`
(`graph/wiring.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from agentops.policy import Policy
from agentops.schemas import Change, Constraints, Deployed, Evidence, PlanConfig
from agentops.settings import Settings


class PolicyRetriever(Protocol):
    def search(self, query: str, k: int = 3) -> list[Evidence]: ...


class PlanRequest(BaseModel):
    intent: str
    env: str
    constraints: Constraints = Field(default_factory=Constraints)
    evidence: list[Evidence] = Field(default_factory=list)
    # On a re-plan: the previous config and the violations it drew, for the planner to fix.
    previous_config: dict[str, Any] | None = None
    violations: list[dict[str, Any]] = Field(default_factory=list)


class PlannerOutput(BaseModel):
    planner: str  # "rules" or "nim"
    config: dict[str, Any] | None  # a DeploymentConfig dump; None when nothing usable came back
    pinned: list[str] = Field(default_factory=list)  # fields the requester stated explicitly
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    llm_calls: int = 0
    tokens: int = 0
    # Why the offline planner stood in for a failed model endpoint; such a plan is not sent back for revision.
    fallback: str | None = None
    # The planner could not run at all (its endpoint failed and configuration says fail): the plan ends
    # `failed` with `error` as the reason, instead of being checked.
    failed: bool = False
    # The words could not all be read: nothing is planned (config None) and the plan ends
    # `needs_clarification` with this question, which quotes the unclear words.
    question: str | None = None
    # field -> {value, words, start, end}: which of the requester's words each stated value came from.
    reading: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Limits the words set on top of the request's constraints ("at most 3 instances"): they only tighten.
    constraints: dict[str, Any] = Field(default_factory=dict)


class Planner(Protocol):
    """Turns a request into a config. A planner that can revise a plan the guardrail blocked says how
    many times in a `max_revisions` attribute; one without it is never asked to (see graph.workflow)."""

    name: str

    def plan(self, request: PlanRequest, policy: Policy) -> PlannerOutput: ...


class Deployer(Protocol):
    """Makes a checked plan happen (tools/sagemaker/): dry-run records the calls, execute mode makes them."""

    mode: str  # "dry_run" | "execute"

    def current(self, endpoint_name: str) -> dict[str, Any] | None:
        """What runs on the endpoint now (a tools.sagemaker.calls.EndpointState dump); None when it cannot look."""
        ...

    def change(self, config: PlanConfig, plan_id: str, *, vpc: dict[str, list[str]] | None = None) -> Change:
        """What the plan changes against what runs now (unknown when the deployer cannot look). Raises
        AgentOpsError when what runs now cannot be read."""
        ...

    def deploy(
        self,
        config: PlanConfig,
        plan_id: str,
        *,
        approved: dict[str, Any] | None = None,
        vpc: dict[str, list[str]] | None = None,
        basis: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Make the plan's calls; `approved` is the endpoint state the plan was approved against (None:
        unknown), `basis` the deployment the plan started from ({plan_id, config}: agentops/updates.py),
        which a deployer that cannot look takes to be what runs. Raises AgentOpsError (with `executed`
        when it failed part-way)."""
        ...

    def finish(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """The calls that need the endpoint InService on the new config (autoscaling, Model Monitor)."""
        ...


class Watcher(Protocol):
    def watch(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """Follow the endpoint until it settles: a tools.sagemaker.watch.WatchOutcome dump."""
        ...


class AuditSink(Protocol):
    def append(self, plan_id: str, step: str, actor: str, payload: dict[str, Any]) -> bool: ...


class PlanRecorder(Protocol):
    def record(self, state: dict[str, Any]) -> None: ...

    def standing(self, env: str, endpoint_name: str, limit: int = 1) -> list[Deployed]:
        """The deployments AgentOps made on the endpoint that still stand (not rolled back or torn down
        since), newest first: the first is what runs, the second what a rollback returns to."""
        ...


@runtime_checkable
class CommitsTogether(Protocol):
    """An AuditSink that can commit a step's appends and the recorder's row as one transaction (when both
    live in one database): one commit per audit pass instead of one per event, and never one without the other."""

    def together(self, recorder: PlanRecorder) -> AbstractContextManager[None]: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Dependencies:
    settings: Settings
    policy: Policy
    retriever: PolicyRetriever
    planner: Planner
    deployer: Deployer
    audit_log: AuditSink
    plan_index: PlanRecorder
    clock: Callable[[], datetime] = field(default=utc_now)
    watcher: Watcher | None = None  # execute mode only: dry-run has nothing to follow
