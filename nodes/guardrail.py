"""The `guardrail` node: the deterministic verdict on the planned config. It always has the last word."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from langgraph.runtime import Runtime

from agentops.guardrails import check_config
from agentops.ports import Dependencies
from agentops.schemas import Constraints, GuardrailReport, Verdict, Violation
from graph.context import dependencies_of
from graph.state import PlanState


def guardrail(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    planner = state.get("planner") or {}
    if state.get("config") is None:
        report = _no_config_report(planner.get("error") or "the planner produced no configuration")
    else:
        constraints = Constraints.model_validate(state.get("constraints") or {})
        report = check_config(state["config"], state["env"], deps.policy, constraints)
    report.verdict.warnings = [*planner.get("warnings", []), *report.verdict.warnings]

    round_number = planner.get("rounds", 1)
    events = [{"step": f"guardrail.{round_number}", "actor": "guardrail", "payload": report.model_dump(mode="json")}]
    update: dict[str, Any] = {"report": report.model_dump(mode="json")}
    if not report.verdict.allowed:
        update["status"] = "blocked"
    elif (state.get("change") or {}).get("action") == "no_change":
        # The endpoint already serves this plan: nothing to approve, nothing to deploy. Only after the verdict:
        # a no-op the policy forbids (it tightened since) is still reported blocked, not waved through.
        update["status"] = "no_change"
    elif report.requires_approval:
        expires_at = deps.clock() + timedelta(hours=deps.policy.approval.expires_after_hours)
        update |= {"status": "pending_approval", "expires_at": expires_at.isoformat()}
        # Recorded here, before the approval node pauses, so a pending request is already on the audit log.
        events.append(
            {
                "step": "approval.requested",
                "actor": "guardrail",
                "payload": {"reasons": report.approval_reasons, "expires_at": update["expires_at"]},
            }
        )
    else:
        update["status"] = "approved"
    return update | {"events": events}


def _no_config_report(reason: str) -> GuardrailReport:
    violation = Violation(rule="plan.incomplete", message=reason, policy="planner")
    return GuardrailReport(
        verdict=Verdict(allowed=False, violations=[violation]),
        hourly_cost_usd=None,
        peak_cost_usd=None,
        requires_approval=False,
    )
