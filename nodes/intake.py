"""The `intake` node: the run's first step checks the request and names the plan and its requester.

The CLI and HTTP front ends check input before starting a run; this node applies the same checks to
runs started elsewhere (LangGraph Studio, the LangGraph SDK, a direct `graph.invoke`), where the input
is whatever was typed. What the input cannot say, it sets: the plan id is the run's thread id, the
requester the authenticated caller (graph/context.py `caller_of`), the creation time the clock's.
A run nobody authenticated, or with no thread, fails here, before anything is recorded.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from agentops.approval import check_requester
from agentops.errors import AgentOpsError, Conflict
from agentops.intake import check_request
from agentops.ports import Dependencies
from graph.context import caller_of, dependencies_of
from graph.state import PlanState


def intake(state: PlanState, config: RunnableConfig, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    if state.get("plan_id"):
        # A second input on a plan's thread would start the plan over under its own id: refused, and the
        # run stops here without writing anything.
        raise Conflict(f"thread {state['plan_id']} holds a plan already: start a new plan on a new thread")
    thread_id = (config.get("configurable") or {}).get("thread_id")
    caller = caller_of(config)
    if not thread_id:
        return {"status": "failed", "error": "a plan is a thread: run it with config={'configurable': {'thread_id': ...}}"}
    if caller is None:
        return {"status": "failed", "error": "nobody authenticated this run: a plan's requester is the caller, never a name in its input"}
    try:
        check_requester(caller)
        request = check_request(state.get("intent"), state.get("env"), caller.identity, state.get("constraints"), deps.policy)
    except AgentOpsError as exc:
        return {"status": "failed", "error": str(exc)}
    # One run = one plan = one thread: the plan id is the thread id, whatever the input said.
    return request | {"plan_id": str(thread_id), "created_at": deps.clock().isoformat(), "status": "planning"}
