"""The workflow wiring.

    START → retrieve → plan → guardrail → audit ─┬─ blocked ────────────────→ END
                                                 ├─ pending_approval → approval → audit ─┬─ approved → deploy → audit → END
                                                 │                                       ├─ rejected / expired ───→ END
                                                 │                                       └─ still pending (refused answer) → approval
                                                 └─ approved (no approval needed) → deploy → audit → END

The audit node sits after every transition and routes on `status`, so every path to END is on the
record and nothing reaches `deploy` without the guardrail's verdict (and a human decision where the
policy asks for one).
"""

from __future__ import annotations

from typing import Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.context import Dependencies
from graph.state import PlanState
from nodes.approval import approval
from nodes.audit import audit
from nodes.deploy import deploy
from nodes.guardrail import guardrail
from nodes.plan import plan
from nodes.retrieve import retrieve


def route_after_audit(state: PlanState) -> Literal["approval", "deploy", "__end__"]:
    status = state.get("status")
    if status == "pending_approval":
        return "approval"
    if status == "approved" and not state.get("deployment"):
        return "deploy"
    return END


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    builder = StateGraph(PlanState, context_schema=Dependencies)
    builder.add_node("retrieve", retrieve)
    builder.add_node("plan", plan)
    builder.add_node("guardrail", guardrail)
    builder.add_node("approval", approval)
    builder.add_node("deploy", deploy)
    builder.add_node("audit", audit)

    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "plan")
    builder.add_edge("plan", "guardrail")
    builder.add_edge("guardrail", "audit")
    builder.add_edge("approval", "audit")
    builder.add_edge("deploy", "audit")
    builder.add_conditional_edges("audit", route_after_audit, ["approval", "deploy", END])
    return builder.compile(checkpointer=checkpointer, name="agentops")


# For LangGraph Studio / `langgraph dev` (langgraph.json): compiled without a checkpointer, because the
# server brings its own; nodes fall back to the embedded default dependencies when no context is given.
graph = build_graph()
