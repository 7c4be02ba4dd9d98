"""The `approval` node: a durable human checkpoint (a LangGraph interrupt).

The node pauses on `interrupt()` and resumes, possibly in another process days later, with the
human's answer. It runs from its top again on resume, so nothing with a side effect comes before the
interrupt. One answer per pass: an answer that does not count (malformed, from the requester, or from
someone who already approved) leaves the plan pending, and so does an approval while the policy wants
more distinct approvers (`approval.approvers_required`); either way the workflow loops back here for
the next answer, one interrupt per node execution.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from agentops.policy import person_key
from agentops.ports import Dependencies
from agentops.schemas import Decision
from graph.context import dependencies_of
from graph.state import PlanState

# Decisions are numbered per plan (approval.decision.1, .2, ...) so each is its own audit event.
DECISION_STEP = "approval.decision."


def decisions_in(state: PlanState) -> list[dict[str, Any]]:
    """The decisions taken so far, in order. The plan's own events are their one record in the state."""
    return [e["payload"] for e in state.get("events", []) if e["step"].startswith(DECISION_STEP)]


def approval_request(state: PlanState, approvers_required: int = 1) -> dict[str, Any]:
    """What the approver is shown (the interrupt payload; plain JSON)."""
    report = state.get("report") or {}
    return {
        "plan_id": state["plan_id"],
        "env": state["env"],
        "requester": state["requester"],
        "intent": state["intent"],
        "config": state.get("config"),
        "hourly_cost_usd": report.get("hourly_cost_usd"),
        "peak_cost_usd": report.get("peak_cost_usd"),
        "approval_reasons": report.get("approval_reasons", []),
        "warnings": report.get("verdict", {}).get("warnings", []),
        "evidence": state.get("evidence", []),
        "expires_at": state.get("expires_at"),
        "approvers_required": approvers_required,
        "approved_by": [d["approver"] for d in decisions_in(state) if d.get("approved")],
        "resume_with": {"approved": "true|false", "approver": "who decides", "reason": "why"},
    }


def approval(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    # Reading the policy has no side effect, so it may come before the interrupt.
    deps = dependencies_of(runtime)
    required = deps.policy.approval.approvers_for(state["env"])
    answer = interrupt(approval_request(state, required))

    now = deps.clock()
    expires_at = state.get("expires_at")
    if (isinstance(answer, dict) and answer.get("expired")) or (expires_at and now >= datetime.fromisoformat(expires_at)):
        return {
            "status": "expired",
            "events": [{"step": "approval.expired", "actor": "agentops", "payload": {"expires_at": expires_at}}],
        }
    try:
        decision = Decision.model_validate(answer)
    except ValidationError as exc:
        return _refused(state, "anonymous", f"not a valid decision: {exc.errors()[0]['msg']}")
    if person_key(decision.approver) == person_key(state["requester"]):
        return _refused(state, decision.approver, "the requester cannot decide on their own plan")
    earlier = decisions_in(state)
    if person_key(decision.approver) in {person_key(d["approver"]) for d in earlier}:
        return _refused(
            state, decision.approver, f"{decision.approver} has decided on this plan already; it needs {required} different approvers"
        )

    decision.decided_at = decision.decided_at or now
    record = decision.model_dump(mode="json")
    event = {"step": f"{DECISION_STEP}{len(earlier) + 1}", "actor": decision.approver, "payload": record}
    if decision.approved and len(earlier) + 1 < required:
        return {"status": "pending_approval", "events": [event]}  # counted; the next approver is asked
    return {"status": "approved" if decision.approved else "rejected", "decision": record, "events": [event]}


def _refused(state: PlanState, actor: str, reason: str) -> dict[str, Any]:
    refusals = sum(1 for e in state.get("events", []) if e["step"].startswith("approval.refused"))
    return {
        "status": "pending_approval",
        "events": [{"step": f"approval.refused.{refusals + 1}", "actor": actor, "payload": {"reason": reason}}],
    }
