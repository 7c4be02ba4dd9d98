"""The workflow wiring.

    START → intake → retrieve → plan → resolve → guardrail → audit ─┬─ blocked ─────────────────────→ END
                                                                    ├─ pending_approval → approval → audit ─┬─ approved → deploy → watch → audit → END
                                                                    │                                       ├─ rejected / expired → END
                                                                    │                                       └─ still pending (refused answer) → approval
                                                                    └─ approved (no approval needed) → deploy → watch → audit → END

    resolve:          reads what runs now (execute mode) and records the change the approver reads.
    no_change:        the guardrail allowed a deploy identical to what runs (resolve said so): it ends at
                      audit like `blocked`, without approval or deploy (route_after_audit: terminal → END).
    deploy → watch:   execute mode follows the endpoint until it settles (deployed / rolled_back /
                      torn_down / failed); in dry-run watch has nothing to follow and passes through.

    plan ⇄ guardrail: (through resolve) a plan blocked by what the model chose goes back to the planner with its violations
                      (a revising planner, within its rounds); the guardrail judges every round.
    retrieve → audit: the retriever could not run (its endpoint failed, AGENTOPS_NIM_ON_FAILURE=fail): failed.
    plan → audit:     the planner could not run (its endpoint failed, AGENTOPS_NIM_ON_FAILURE=fail): failed;
                      or the intent's words could not all be read: needs_clarification, with the question.

The audit node sits after every transition and routes on `status`, so every path to END is on the
record and nothing reaches `deploy` without the guardrail's verdict (and a human decision where the
policy asks for one). A request that fails intake's checks ends at once, before anything is recorded.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agentops.ports import Dependencies
from graph.state import PlanInput, PlanOutput, PlanState
from nodes.approval import approval
from nodes.audit import audit
from nodes.deploy import deploy
from nodes.guardrail import guardrail
from nodes.intake import intake
from nodes.plan import plan, violations_the_planner_chose
from nodes.resolve import resolve
from nodes.retrieve import retrieve
from nodes.watch import watch


def route_after_audit(state: PlanState) -> Literal["approval", "deploy", "__end__"]:
    status = state.get("status")
    if status == "pending_approval":
        return "approval"
    if status == "approved" and not state.get("deployment"):
        return "deploy"
    return "__end__"


def route_after_intake(state: PlanState) -> Literal["retrieve", "__end__"]:
    return "__end__" if state.get("status") == "failed" else "retrieve"


def route_after_retrieve(state: PlanState) -> Literal["plan", "audit"]:
    return "audit" if state.get("status") == "failed" else "plan"


def route_after_plan(state: PlanState) -> Literal["resolve", "audit"]:
    return "audit" if state.get("status") in ("failed", "needs_clarification") else "resolve"


def route_after_guardrail(state: PlanState) -> Literal["plan", "audit"]:
    """Back to the planner only for a plan blocked by something it chose (not by what the requester
    pinned), by a planner that can revise, within its rounds; a fallback plan is final. Every round's
    events stay in state, so the audit node writes them all when the path reaches it."""
    planner = state.get("planner") or {}
    if (
        state.get("status") == "blocked"
        and not planner.get("fallback")
        and planner.get("rounds", 1) <= planner.get("max_revisions", 0)
        and violations_the_planner_chose(state)
    ):
        return "plan"
    return "audit"


# Every node takes (state, runtime) -- intake also the run's config -- and returns a state update.
NODES: dict[str, Callable[..., dict[str, Any]]] = {
    "intake": intake,
    "retrieve": retrieve,
    "plan": plan,
    "resolve": resolve,
    "guardrail": guardrail,
    "approval": approval,
    "deploy": deploy,
    "watch": watch,
    "audit": audit,
}


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    *,
    interrupt_before: list[str] | None = None,
    default_context: Callable[[], Dependencies] | None = None,
) -> CompiledStateGraph[PlanState, None, PlanInput, PlanOutput]:
    """The workflow. Callers in-process pass a Dependencies as `context=` on every run; a caller that
    cannot (LangGraph Studio: graph/studio.py) names the dependencies its runs get in `default_context`.

    No context_schema: LangGraph Server builds the declared schema from the JSON a client sends, and
    Dependencies holds live objects."""
    # Input narrower than the state: a run may say what to deploy, never what the nodes decide (graph/state.py).
    builder = StateGraph(PlanState, input_schema=PlanInput, output_schema=PlanOutput)
    for name, node in NODES.items():
        builder.add_node(name, node if default_context is None else with_default_context(node, default_context))

    builder.add_edge(START, "intake")
    builder.add_conditional_edges("intake", route_after_intake, ["retrieve", END])
    builder.add_conditional_edges("retrieve", route_after_retrieve, ["plan", "audit"])
    builder.add_conditional_edges("plan", route_after_plan, ["resolve", "audit"])
    builder.add_edge("resolve", "guardrail")
    builder.add_conditional_edges("guardrail", route_after_guardrail, ["plan", "audit"])
    builder.add_edge("approval", "audit")
    builder.add_edge("deploy", "watch")
    builder.add_edge("watch", "audit")
    builder.add_conditional_edges("audit", route_after_audit, ["approval", "deploy", END])
    return builder.compile(checkpointer=checkpointer, interrupt_before=interrupt_before, name="agentops")


def with_default_context(node: Callable[..., Any], default: Callable[[], Dependencies]) -> Callable[..., Any]:
    """`node`, run with `default()` as its context when the run brought none. LangGraph passes `config` and
    `runtime` by parameter name, so the wrapper asks for both and hands on what the node takes."""
    wants_config = "config" in inspect.signature(node).parameters

    @functools.wraps(node)
    def run(state: PlanState, config: RunnableConfig, runtime: Runtime[Dependencies]) -> Any:
        if not isinstance(runtime.context, Dependencies):
            runtime = runtime.override(context=default())
        return node(state, config, runtime) if wants_config else node(state, runtime)

    del run.__wrapped__  # LangGraph reads the signature through __wrapped__: it must see the wrapper's
    return run
