"""The `watch` node: follows the endpoint after the deploy call until it settles, then finishes the deployment.

Only a plan left `deploying` (execute mode) has something to follow; anything else passes through
unchanged (dry-run, a failed deploy). The watcher's outcome decides the status — deployed, rolled_back,
torn_down or failed with SageMaker's reason — and every change of the endpoint's state becomes an audit
event (`watch.Creating`, `watch.InService`, …). Once the endpoint serves the new config, the calls that
needed it live (version tags, autoscaling, Model Monitor) are made; when it does not (rolled back, failed),
what the change took down before the switch (autoscaling) is put back. Watching only reads and finishing looks before it
creates, so a resumed run re-runs this node safely.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentops.errors import AgentOpsError
from agentops.ports import Dependencies
from graph.context import dependencies_of
from graph.state import PlanState

ACTOR = "agentops"


def transition_events(transitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per change of state. Step names must be unique per plan: a status seen again (InService
    before and after an update) gets a counter."""
    events, seen = [], {}
    for transition in transitions:
        status = transition["status"]
        seen[status] = seen.get(status, 0) + 1
        step = f"watch.{status}" + (f".{seen[status]}" if seen[status] > 1 else "")
        events.append({"step": step, "actor": "sagemaker", "payload": transition})
    return events


def planned_outcome(deployment: dict[str, Any]) -> str:
    """The status the endpoint settles in when the change went as planned (a rollback plan *wants* rolled_back)."""
    return {"rollback": "rolled_back", "teardown": "torn_down"}.get(deployment.get("action") or "", "deployed")


def watch(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deployment = state.get("deployment")
    if state.get("status") != "deploying" or not deployment:
        return {}
    deps = dependencies_of(runtime)
    if deps.watcher is None:
        error = "the deployment was made but nothing can follow it (no watcher configured)"
        return {
            "status": "failed",
            "error": error,
            "events": [{"step": "watch.result", "actor": ACTOR, "payload": {"status": "failed", "reason": error}}],
        }
    try:
        outcome = deps.watcher.watch(deployment)
    except AgentOpsError as error:
        outcome = {"status": "failed", "reason": f"lost track of endpoint {deployment.get('endpoint')}: {error}", "transitions": []}
    events = transition_events(outcome.get("transitions", []))
    deployment = deployment | {"status": outcome["status"], "watch": outcome}
    status, error = outcome["status"], outcome.get("reason") if outcome["status"] == "failed" else None
    if status == planned_outcome(deployment):
        try:
            deployment = deps.deployer.finish(deployment)
        except AgentOpsError as failure:
            status = "failed"
            error = f"endpoint {deployment['endpoint']} is InService on {deployment.get('target_endpoint_config')}, but finishing it failed: {failure}"
            if hasattr(failure, "executed"):  # what finishing made before it failed stays on the plan
                deployment = deployment | {"executed": failure.executed, "created": failure.created}
        deployment = deployment | {"status": status}
    elif deployment.get("restore"):
        # Rolled back or failed after the change took autoscaling down: the deployer puts it back.
        try:
            deployment = deps.deployer.finish(deployment)
        except AgentOpsError as failure:
            error = f"{error or outcome.get('reason') or status}; restoring autoscaling failed: {failure}"
            if hasattr(failure, "executed"):
                deployment = deployment | {"executed": failure.executed, "created": failure.created}
    result = {key: outcome.get(key) for key in ("status", "reason", "alarms", "endpoint_config")} | {"status": status}
    if error:
        result["reason"] = error
    events.append({"step": "watch.result", "actor": ACTOR, "payload": result | {"executed": deployment.get("executed", [])}})
    update: dict[str, Any] = {"status": status, "deployment": deployment, "events": events}
    if error:
        update["error"] = error
    return update
