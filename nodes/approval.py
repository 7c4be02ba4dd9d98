"""The `approval` node: a durable human checkpoint (a LangGraph interrupt).

The node pauses on `interrupt()` and resumes, possibly in another process days later, with the
human's answer. It runs from its top again on resume, so nothing with a side effect comes before the
interrupt. An answer that does not count (malformed, or from the requester) leaves the plan pending:
the workflow loops back here for a valid one, one interrupt per pass.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from agentops.schemas import Decision
from graph.context import Dependencies, dependencies_of
from graph.state import PlanState


def approval_request(state: PlanState) -> dict[str, Any]:
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
        "resume_with": {"approved": "true|false", "approver": "who decides", "reason": "why"},
    }


def approval(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    answer = interrupt(approval_request(state))

    deps = dependencies_of(runtime)
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
    if decision.approver.strip().lower() == state["requester"].strip().lower():
        return _refused(state, decision.approver, "the requester cannot decide on their own plan")

    decision.decided_at = decision.decided_at or now
    record = decision.model_dump(mode="json")
    return {
        "status": "approved" if decision.approved else "rejected",
        "decision": record,
        "events": [{"step": "approval.decision", "actor": decision.approver, "payload": record}],
    }


def _refused(state: PlanState, actor: str, reason: str) -> dict[str, Any]:
    refusals = sum(1 for e in state.get("events", []) if e["step"].startswith("approval.refused"))
    return {
        "status": "pending_approval",
        "events": [{"step": f"approval.refused.{refusals + 1}", "actor": actor, "payload": {"reason": reason}}],
    }
