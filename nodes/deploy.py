"""The deploy node: hands the approved plan to the deployer and records what it did.

Dry-run (the default) records the validated calls and ends the plan; execute mode makes them and leaves
the plan `deploying` for the watch node. Routing only reaches this node for an allowed (and, where
required, approved) plan; the node checks that again anyway, because deploying is the one step that
spends money and cannot be taken back by a retry. It re-runs from its top when a run resumes: the
deployer looks before it creates, so a second pass continues where the first stopped.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentops.errors import AgentOpsError
from agentops.ports import Dependencies
from agentops.schemas import DeploymentConfig, parse_config
from graph.context import dependencies_of
from graph.state import PlanState
from nodes.resolve import planned_network

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


def failed(error: str, executed: list[dict[str, Any]] | None = None, created: list[str] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": "failed", "error": error}
    update: dict[str, Any] = {"status": "failed", "error": error}
    if executed:
        # What was made before the failure stays on the plan: a person has to know what now exists.
        partial = {"executed": executed, "created": created or []}
        payload |= partial
        update["deployment"] = {"status": "failed", "error": error, **partial}
    return update | {"events": [{"step": STEP, "actor": ACTOR, "payload": payload}]}


def deployed(result: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "mode": result["mode"],
        "action": result.get("action"),
        "status": result["status"],
        "resources": result["resources"],
        "operations": [call["operation"] for call in result["calls"]],
    }
    payload |= {key: result[key] for key in ("executed", "created", "note", "warnings") if result.get(key)}
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
    config = parse_config(state["config"])
    vpc, network = planned_network(state["env"], deps)
    if network and isinstance(config, DeploymentConfig) and deps.settings.execute:
        return failed(network)
    change = state.get("change") or {}
    try:
        result = deps.deployer.deploy(
            config, state["plan_id"], approved=change.get("current") if change.get("known") else None, vpc=vpc, basis=state.get("basis")
        )
    except AgentOpsError as error:
        # An expected failure (AWS refused, the endpoint changed since approval) ends the plan as failed, on
        # the record. Anything else is a bug and propagates.
        return failed(str(error), getattr(error, "executed", None), getattr(error, "created", None))
    if network and isinstance(config, DeploymentConfig):
        result = result | {"warnings": [*result.get("warnings", []), network]}
    return deployed(result)
