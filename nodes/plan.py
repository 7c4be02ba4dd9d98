"""The `plan` node: turn the intent (and the retrieved policy evidence) into a deployment config.

A planner that can revise (the NIM planner) may get its plan back from the guardrail with the
violations; each round is its own `plan.N` event, and the workflow decides whether to send it back
(`violations_the_planner_chose` is what it asks). A planner that could not run at all ends the plan
`failed`; one that could not read every word the requester wrote ends it `needs_clarification` with a
question (nothing is planned, no default stands in); one that fell back to the offline planner says so on the plan and on the record.

A first round for an endpoint AgentOps has deployed starts from that deployment: what the requester
did not state keeps its values, not the planner's defaults (agentops/updates.py); `basis` says which
deployment and which fields.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentops.ports import Dependencies, PlannerOutput, PlanRequest
from agentops.schemas import Constraints, Deployed, Evidence
from agentops.updates import start_from
from graph.context import dependencies_of
from graph.state import PlanState

_COST = frozenset({"instance_type", "instance_count", "autoscaling_max"})
# The config fields each guardrail rule judges. A rule not listed here (schema.invalid,
# environment.unknown, plan.incomplete) is never sent back: choosing other values cannot fix it.
RULE_FIELDS: dict[str, frozenset[str]] = {
    "naming.model_name": frozenset({"model_name"}),
    "naming.endpoint_name": frozenset({"endpoint_name"}),
    "artifact.s3_uri": frozenset({"model_data_url"}),
    "instance_type.unknown_price": frozenset({"instance_type"}),
    "instance_type.not_allowed": frozenset({"instance_type"}),
    "constraint.instance_type": frozenset({"instance_type"}),
    "instance_count.range": frozenset({"instance_count"}),
    "autoscaling.order": frozenset({"autoscaling_min", "instance_count", "autoscaling_max"}),
    "autoscaling.max_limit": frozenset({"autoscaling_max"}),
    "autoscaling.env_range": frozenset({"autoscaling_min", "autoscaling_max"}),
    "cost.env_limit": _COST,
    "constraint.budget": _COST,
    "constraint.max_instance_count": frozenset({"instance_count", "autoscaling_max"}),
    "rollback.alarms_missing": frozenset({"rollback_alarms"}),
    "monitoring.needs_capture": frozenset({"data_capture_percent", "enable_model_monitor"}),
    "monitoring.data_capture": frozenset({"data_capture_percent"}),
    "monitoring.model_monitor": frozenset({"enable_model_monitor"}),
    "rollout.progressive_required": frozenset({"deployment_strategy"}),
    "rollout.canary_percent": frozenset({"canary_percent"}),
}


def violations_the_planner_chose(state: PlanState) -> list[dict[str, Any]]:
    """The violations that judge at least one field the requester did not pin: a re-plan may fix those.
    A violation of pinned values only is the requester's to fix; no model may change what they stated."""
    pinned = set(state.get("pinned") or [])
    violations = ((state.get("report") or {}).get("verdict") or {}).get("violations", [])
    return [v for v in violations if RULE_FIELDS.get(v.get("rule", ""), frozenset()) - pinned]


def evidence_fallbacks(state: PlanState) -> list[str]:
    """Why the offline store answered the policy search, if an NVIDIA endpoint failed during retrieval
    (evidence found that way carries the reason: tools.nvidia.client.OfflineEvidence)."""
    return sorted({e["fallback"] for e in state.get("evidence") or [] if e.get("fallback")})


def plan(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    previous = state.get("planner") or {}
    round_number = previous.get("rounds", 0) + 1
    request = _request(state, revising=round_number > 1)
    output = deps.planner.plan(request, deps.policy)
    basis = None
    if round_number == 1:
        output, basis = _start_from_deployment(state, output, deps)
    retrieval_fallbacks = evidence_fallbacks(state)
    warnings = [*output.warnings, *(f"policy evidence came from the offline store: {reason}" for reason in retrieval_fallbacks)]
    # What stood in for a failed endpoint goes on the plan and on its event alike.
    fallbacks = {"fallback": output.fallback, "evidence_fallback": retrieval_fallbacks}
    fallbacks = {key: value for key, value in fallbacks.items() if value}
    planner = {
        "name": output.planner,
        "rounds": round_number,
        # How many times this planner may revise a blocked plan (the workflow's routing reads it here).
        "max_revisions": getattr(deps.planner, "max_revisions", 0),
        "warnings": warnings,
        "error": output.error,
        "llm_calls": previous.get("llm_calls", 0) + output.llm_calls,
        "tokens": previous.get("tokens", 0) + output.tokens,
    } | fallbacks
    update: dict[str, Any] = {
        "config": output.config,
        # What the requester pinned is fixed by the first round; a re-plan may not widen or drop it.
        "pinned": state.get("pinned") or output.pinned,
        "planner": planner,
        "status": "planning",
        "events": [
            {
                "step": f"plan.{round_number}",
                "actor": f"planner:{output.planner}",
                "payload": _event_payload(state, request, output, warnings) | fallbacks,
            }
        ],
    }
    if basis is not None:
        update["basis"] = basis
        update["events"][0]["payload"]["basis"] = {"plan_id": basis["plan_id"], "kept": basis["kept"]}
    if output.reading or round_number == 1:
        update["reading"] = output.reading  # which words each stated value came from, for the approver
    if output.constraints:
        # Limits the words set ("at most 3 instances") join the request's constraints; they only tighten.
        update["constraints"] = _tightened(state.get("constraints") or {}, output.constraints)
    if output.failed:
        # Nothing to check: the workflow takes the plan straight to the record, where it ends.
        update |= {"status": "failed", "error": output.error}
    elif output.question is not None:
        # Words that could not be read: nothing was planned, the requester is asked (the record keeps the question).
        update |= {"status": "needs_clarification", "question": output.question, "config": None}
    return update


def _start_from_deployment(state: PlanState, output: PlannerOutput, deps: Dependencies) -> tuple[PlannerOutput, dict[str, Any] | None]:
    """The planner's output started from what AgentOps last deployed on the planned endpoint
    (agentops/updates.py), and the plan's `basis`: that deployment and the fields kept from it. A warning
    about the artifact path the planner assumed by convention goes when the running artifact replaces it.
    A rollback's basis also names the deployment it returns to (`previous`). Unchanged, with no basis, for
    a new endpoint or a teardown."""
    config = output.config or {}
    action = config.get("action", "deploy")
    if output.failed or output.question is not None or action not in ("deploy", "rollback") or not config.get("endpoint_name"):
        return output, None
    standing = deps.plan_index.standing(state["env"], config["endpoint_name"], limit=2)
    if not standing:
        return output, None
    if action == "rollback":
        previous = _basis(standing[1], []) if len(standing) > 1 else None
        return output, _basis(standing[0], []) | {"previous": previous}
    deployed = standing[0]
    started, kept = start_from(deployed.config, config, output.pinned)
    assumed = config.get("model_data_url")
    replaced = "model_data_url" in kept and assumed and assumed != started["model_data_url"]
    warnings = [w for w in output.warnings if not (replaced and assumed in w)]
    basis = _basis(deployed, kept)
    ceiling = _tightened(state.get("constraints") or {}, output.constraints).get("max_instance_count")
    running = max(started["instance_count"], started.get("autoscaling_max") or 0)
    if "instance_count" in kept and ceiling is not None and running > ceiling:
        # The running count breaks the requester's own ceiling, and any other count would be a guess: ask.
        question = (
            f"{config['endpoint_name']} runs up to {running} instances now (plan {deployed.plan_id}), more than the at most "
            f"{ceiling} you asked for: how many should it run? e.g. 'on {ceiling} instance{'' if ceiling == 1 else 's'}'"
        )
        return output.model_copy(update={"question": question, "warnings": warnings}), basis
    return output.model_copy(update={"config": started, "warnings": warnings}), basis


def _basis(deployed: Deployed, kept: list[str]) -> dict[str, Any]:
    return {"plan_id": deployed.plan_id, "deployed_at": deployed.deployed_at.isoformat(), "config": deployed.config, "kept": kept}


def _tightened(current: dict[str, Any], stated: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in stated.items():
        merged[key] = value if merged.get(key) is None else min(merged[key], value)
    return merged


def _request(state: PlanState, revising: bool) -> PlanRequest:
    """What the planner is asked; on a re-plan, with the config the guardrail blocked and why."""
    return PlanRequest(
        intent=state["intent"],
        env=state["env"],
        constraints=Constraints.model_validate(state.get("constraints") or {}),
        evidence=[Evidence.model_validate(e) for e in state.get("evidence") or []],
        previous_config=state.get("config") if revising else None,
        violations=(state.get("report") or {}).get("verdict", {}).get("violations", []) if revising else [],
    )


def _event_payload(state: PlanState, request: PlanRequest, output: PlannerOutput, warnings: list[str]) -> dict[str, Any]:
    payload = {
        "intent": state["intent"],
        "env": state["env"],
        "requester": state["requester"],
        "constraints": request.constraints.model_dump(exclude_none=True),
        "config": output.config,
        "pinned": output.pinned,
        "reading": output.reading,
        "question": output.question,
        "warnings": warnings,
        "error": output.error,
        "evidence": [{"policy": e.policy, "section": e.section} for e in request.evidence],
        "llm_calls": output.llm_calls,
        "tokens": output.tokens,
    }
    if request.previous_config is not None:
        payload["revising"] = [{"rule": v.get("rule"), "message": v.get("message")} for v in request.violations]
    return payload
