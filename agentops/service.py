"""What the front ends (CLI now, HTTP later) ask of AgentOps, on top of the compiled workflow.

Input is checked here before anything runs, so bad input changes nothing. Decisions go through the plan
index's conditional update first (one winner among racing approvers), then resume the paused run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.runtime import Runtime
from langgraph.types import Command

from agentops.errors import AgentOpsError, Conflict, Forbidden, NotFound
from agentops.guardrails import check_config
from agentops.intake import check_request
from agentops.schemas import Decision, GuardrailReport, PlanSummary
from agentops.settings import Settings
from graph.context import Dependencies
from graph.runtime import build_dependencies, open_checkpointer
from graph.state import PlanState
from graph.workflow import build_graph
from nodes.guardrail import guardrail
from nodes.plan import plan
from nodes.retrieve import retrieve
from tools.plan_index import SqlitePlanIndex

# The fields of a plan a person or a script reads; state internals (events) stay out.
_VIEW_FIELDS = ("plan_id", "status", "env", "requester", "intent", "created_at", "expires_at", "config",
                "pinned", "evidence", "planner", "decision", "deployment", "error")  # fmt: skip


def plan_view(state: dict[str, Any]) -> dict[str, Any]:
    report = state.get("report") or {}
    view = {key: state.get(key) for key in _VIEW_FIELDS if key in state}
    view |= {
        "hourly_cost_usd": report.get("hourly_cost_usd"),
        "peak_cost_usd": report.get("peak_cost_usd"),
        "verdict": report.get("verdict"),
        "requires_approval": report.get("requires_approval"),
        "approval_reasons": report.get("approval_reasons", []),
    }
    return view


class Orchestrator:
    def __init__(self, deps: Dependencies, checkpointer: BaseCheckpointSaver, plan_index: SqlitePlanIndex):
        self.deps = deps
        self.index = plan_index
        self.graph = build_graph(checkpointer)

    @classmethod
    @contextmanager
    def open(cls, settings: Settings) -> Iterator[Orchestrator]:
        deps = build_dependencies(settings)
        with open_checkpointer(settings) as checkpointer:
            yield cls(deps, checkpointer, deps.plan_index)

    # --- input -----------------------------------------------------------------------------------

    def _initial_state(self, intent: str, env: str, requester: str, constraints: dict[str, Any] | None) -> PlanState:
        request = check_request(intent, env, requester, constraints, self.deps.policy)
        return PlanState(plan_id=uuid.uuid4().hex, created_at=self.deps.clock().isoformat(), events=[], **request)

    # --- commands --------------------------------------------------------------------------------

    def preview(self, intent: str, env: str, requester: str = "anonymous", constraints: dict[str, Any] | None = None) -> dict[str, Any]:
        """Retrieve, plan and check — the same node functions the workflow runs — with no side effects."""
        state: dict[str, Any] = dict(self._initial_state(intent, env, requester, constraints))
        runtime = Runtime(context=self.deps)
        for node in (retrieve, plan, guardrail):
            update = node(state, runtime)
            state |= {k: v for k, v in update.items() if k != "events"}
        return plan_view(state)

    def validate(self, config: dict[str, Any], env: str) -> GuardrailReport:
        if env not in self.deps.policy.environments:
            raise AgentOpsError(f"unknown environment '{env}': expected one of {', '.join(self.deps.policy.environments)}")
        return check_config(config, env, self.deps.policy)

    def run(self, intent: str, env: str, requester: str, constraints: dict[str, Any] | None = None) -> dict[str, Any]:
        state = self._initial_state(intent, env, requester, constraints)
        config = self._thread(state["plan_id"])
        self.graph.invoke(state, config, context=self.deps)
        return self.show(state["plan_id"])

    def show(self, plan_id: str) -> dict[str, Any]:
        snapshot = self.graph.get_state(self._thread(plan_id))
        if not snapshot.values:
            raise NotFound(f"no plan with id '{plan_id}'")
        return plan_view(snapshot.values) | {"waiting_for": list(snapshot.next)}

    def approvals(self) -> list[PlanSummary]:
        self.expire_overdue()
        return self.index.list(status="pending_approval")

    def plans(self, status: str | None = None, env: str | None = None, limit: int = 100) -> list[PlanSummary]:
        return self.index.list(status=status, env=env, limit=limit)

    def decide(self, plan_id: str, approver: str, approved: bool, reason: str = "") -> dict[str, Any]:
        approver = (approver or "").strip()
        if not approver:
            raise AgentOpsError("say who decides (--as)")
        if not approved and not reason.strip():
            raise AgentOpsError("a rejection needs a reason (--reason)")
        summary = self.index.get(plan_id)
        if summary is None:
            raise NotFound(f"no plan with id '{plan_id}'")
        if summary.requester.lower() == approver.lower():
            raise Forbidden(f"{approver} requested plan {plan_id} and cannot decide on it")
        config = self._thread(plan_id)
        if "approval" not in self.graph.get_state(config).next:
            # Checked before any resume: Command(resume=...) on a thread that is not paused would start a fresh run.
            raise Conflict(f"plan {plan_id} is {summary.status}, not waiting for approval")
        now = self.deps.clock()
        if self._expire_if_overdue(plan_id):
            raise Conflict(f"the approval request for plan {plan_id} expired at {summary.expires_at:%Y-%m-%d %H:%M} UTC")
        decision = Decision(approved=approved, approver=approver, reason=reason.strip(), decided_at=now)
        if not self.index.decide(plan_id, decision, now):
            current = self.index.get(plan_id)
            raise Conflict(f"plan {plan_id} is {current.status if current else 'gone'}: it was decided already")
        self.graph.invoke(Command(resume=decision.model_dump(mode="json")), config, context=self.deps)
        return self.show(plan_id)

    def expire_overdue(self) -> list[str]:
        return [plan_id for plan_id in self.index.overdue(self.deps.clock()) if self._expire_if_overdue(plan_id)]

    def _expire_if_overdue(self, plan_id: str) -> bool:
        """Claim the expiry in the index (one winner), then let the paused run end as `expired`."""
        if not self.index.expire(plan_id, self.deps.clock()):
            return False
        config = self._thread(plan_id)
        if "approval" in self.graph.get_state(config).next:
            self.graph.invoke(Command(resume={"expired": True}), config, context=self.deps)
        return True

    @staticmethod
    def _thread(plan_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": plan_id}}
