"""The `approval` node: a durable human checkpoint (a LangGraph interrupt).

The node pauses on `interrupt()` and resumes, possibly in another process days later, with the
human's answer. It runs from its top again on resume, so nothing with a side effect comes before the
interrupt. The rules for who may decide live in agentops/approval.py; the approver is the run's
authenticated caller (graph/context.py `caller_of`), never a name in the answer. One answer per pass: an
answer that does not count (malformed, from someone without the approver role, from the requester, or from
someone who already approved) leaves the plan pending, and so does an approval while the policy wants
more distinct approvers (`approval.approvers_required`); either way the workflow loops back here for
the next answer, one interrupt per node execution.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agentops.approval import check_answer, check_approver, is_expired, parse_answer
from agentops.errors import AgentOpsError
from agentops.ports import Dependencies
from agentops.schemas import Decision
from graph.context import caller_of, dependencies_of
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
        # The answer says what and why; who decides is the authenticated caller who resumes the run.
        "resume_with": {"approved": "true or false (a JSON boolean)", "reason": "why (required to reject)"},
    }


def approval(state: PlanState, config: RunnableConfig, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    # Reading the policy has no side effect, so it may come before the interrupt.
    deps = dependencies_of(runtime)
    required = deps.policy.approval.approvers_for(state["env"])
    answer = interrupt(approval_request(state, required))

    # When, and whether the request ran out, is the clock's to say; who decides, authentication's
    # (the run's caller); the answer says only what was decided and why (agentops/approval.py).
    now = deps.clock()
    expires_at = state.get("expires_at")
    if is_expired(expires_at, now):
        return {
            "status": "expired",
            "events": [{"step": "approval.expired", "actor": "agentops", "payload": {"expires_at": expires_at}}],
        }
    approver = caller_of(config)
    if approver is None:
        return _refused(state, "anonymous", "nobody authenticated this decision: the approver is the caller, never a name in the answer")
    earlier = decisions_in(state)
    try:
        checked = parse_answer(answer)
        check_answer(checked)
        check_approver(state["plan_id"], state["requester"], approver, [d["approver"] for d in earlier], required)
    except AgentOpsError as exc:
        return _refused(state, approver.identity, str(exc))

    record = Decision(approved=checked.approved, approver=approver.identity, reason=checked.reason.strip(), decided_at=now)
    record = record.model_dump(mode="json")
    event = {"step": f"{DECISION_STEP}{len(earlier) + 1}", "actor": approver.identity, "payload": record}
    if checked.approved and len(earlier) + 1 < required:
        return {"status": "pending_approval", "events": [event]}  # counted; the next approver is asked
    return {"status": "approved" if checked.approved else "rejected", "decision": record, "events": [event]}


def _refused(state: PlanState, actor: str, reason: str) -> dict[str, Any]:
    refusals = sum(1 for e in state.get("events", []) if e["step"].startswith("approval.refused"))
    return {
        "status": "pending_approval",
        "events": [{"step": f"approval.refused.{refusals + 1}", "actor": actor, "payload": {"reason": reason}}],
    }
