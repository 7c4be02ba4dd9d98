"""The `intake` node: the run's first step checks the request and names the plan after its thread.

The CLI and HTTP front ends check input before starting a run; this node applies the same checks to
runs started elsewhere (LangGraph Studio, the LangGraph SDK), where the input is whatever was typed.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from agentops.errors import AgentOpsError
from agentops.intake import check_request
from agentops.ports import Dependencies
from graph.context import dependencies_of
from graph.state import PlanState


def intake(state: PlanState, config: RunnableConfig, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    try:
        request = check_request(state.get("intent"), state.get("env"), state.get("requester"), state.get("constraints"), deps.policy)
    except AgentOpsError as exc:
        return {"status": "failed", "error": str(exc)}
    # One run = one plan = one thread: the plan id is the thread id.
    thread_id = (config.get("configurable") or {}).get("thread_id")
    return request | {
        "plan_id": state.get("plan_id") or str(thread_id or uuid.uuid4().hex),
        "created_at": state.get("created_at") or deps.clock().isoformat(),
        "status": "planning",
    }
