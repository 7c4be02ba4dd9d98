"""The `plan` node: turn the intent (and the retrieved policy evidence) into a deployment config."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentops.schemas import Constraints, Evidence
from graph.context import Dependencies, PlanRequest, dependencies_of
from graph.state import PlanState


def plan(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    previous = state.get("planner") or {}
    round_number = previous.get("rounds", 0) + 1
    request = PlanRequest(
        intent=state["intent"],
        env=state["env"],
        constraints=Constraints.model_validate(state.get("constraints") or {}),
        evidence=[Evidence.model_validate(e) for e in state.get("evidence") or []],
        previous_config=state.get("config") if round_number > 1 else None,
        violations=(state.get("report") or {}).get("verdict", {}).get("violations", []) if round_number > 1 else [],
    )
    output = deps.planner.plan(request, deps.policy)
    planner = {
        "name": output.planner,
        "rounds": round_number,
        "warnings": output.warnings,
        "error": output.error,
        "llm_calls": previous.get("llm_calls", 0) + output.llm_calls,
        "tokens": previous.get("tokens", 0) + output.tokens,
    }
    return {
        "config": output.config,
        # What the requester pinned is fixed by the first round; a re-plan may not widen or drop it.
        "pinned": state.get("pinned") or output.pinned,
        "planner": planner,
        "status": "planning",
        "events": [
            {
                "step": f"plan.{round_number}",
                "actor": f"planner:{output.planner}",
                "payload": {
                    "intent": state["intent"],
                    "env": state["env"],
                    "requester": state["requester"],
                    "constraints": request.constraints.model_dump(exclude_none=True),
                    "config": output.config,
                    "pinned": output.pinned,
                    "warnings": output.warnings,
                    "error": output.error,
                    "evidence": [{"policy": e.policy, "section": e.section} for e in request.evidence],
                },
            }
        ],
    }
