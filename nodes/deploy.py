"""The deploy node: hands the approved config to the deployer (dry-run by default) and records what it did.

Routing only reaches this node for an allowed (and, where required, approved) plan; the node checks that
again anyway, because deploying is the one step that spends money and cannot be taken back by a retry.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentops.errors import AgentOpsError
from agentops.schemas import DeploymentConfig
from graph.context import Dependencies, dependencies_of
from graph.state import PlanState

STEP = "deploy"
ACTOR = "agentops"


def refusal_reason(state: PlanState) -> str | None:
    """Why this plan must not be deployed, or None when the guardrail (and approver, if needed) said yes."""
    report = state.get("report") or {}
    if (report.get("verdict") or {}).get("allowed") is not True:
        return "refusing to deploy a plan the guardrail did not allow"
    if report.get("requires_approval") and (state.get("decision") or {}).get("approved") is not True:
        return "refusing to deploy a plan that requires approval and was not approved"
    return None


def failed(error: str) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": error,
        "events": [{"step": STEP, "actor": ACTOR, "payload": {"status": "failed", "error": error}}],
    }


def deployed(result: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "mode": result["mode"],
        "status": result["status"],
        "resources": result["resources"],
        "operations": [call["operation"] for call in result["calls"]],
    }
    return {
        "deployment": result,
        "status": result["status"],
        "events": [{"step": STEP, "actor": ACTOR, "payload": payload}],
    }


def deploy(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    refusal = refusal_reason(state)
    if refusal is not None:
        return failed(refusal)
    deps = dependencies_of(runtime)
    config = DeploymentConfig.model_validate(state["config"])
    try:
        result = deps.deployer.deploy(config, state["plan_id"])
    except AgentOpsError as error:
        # An expected failure (e.g. AWS would reject the request) ends the plan as failed, on the record.
        # Anything else is a bug and propagates.
        return failed(str(error))
    return deployed(result)
