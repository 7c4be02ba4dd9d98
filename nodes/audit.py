"""The `audit` node: writes the plan's new events to the audit log and its status to the plan index.

The workflow passes through here after every transition a person could ask about later (planned and
checked, approval requested, decided, deployed), so the record is never behind the plan. Writes are
idempotent (events are keyed by plan and step), so a re-run writes nothing twice. Where the log and the
index share a database, one pass is one transaction.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from langgraph.runtime import Runtime

from agentops.ports import CommitsTogether, Dependencies
from graph.context import dependencies_of
from graph.state import PlanState


def audit(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    sink = deps.audit_log
    with sink.together(deps.plan_index) if isinstance(sink, CommitsTogether) else nullcontext():
        for event in state.get("events", []):
            sink.append(state["plan_id"], event["step"], event["actor"], event["payload"])
        deps.plan_index.record({**state, "updated_at": deps.clock().isoformat()})
    return {}
