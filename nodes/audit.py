"""The `audit` node: writes the plan's new events to the audit log and its status to the plan index.

The workflow passes through here after every transition a person could ask about later (planned and
checked, approval requested, decided, deployed), so the record is never behind the plan. Writes are
idempotent (events are keyed by plan and step), so a re-run writes nothing twice.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentops.ports import Dependencies
from graph.context import dependencies_of
from graph.state import PlanState


def audit(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    for event in state.get("events", []):
        deps.audit_log.append(state["plan_id"], event["step"], event["actor"], event["payload"])
    deps.plan_index.record({**state, "updated_at": deps.clock().isoformat()})
    return {}
