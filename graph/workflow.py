"""The workflow wiring.

    START → intake → retrieve → plan → guardrail → audit ─┬─ blocked ───────────────────────────→ END
                                                          ├─ pending_approval → approval → audit ─┬─ approved → deploy → audit → END
                                                          │                                       ├─ rejected / expired → END
                                                          │                                       └─ still pending (refused answer) → approval
                                                          └─ approved (no approval needed) → deploy → audit → END

The audit node sits after every transition and routes on `status`, so every path to END is on the
record and nothing reaches `deploy` without the guardrail's verdict (and a human decision where the
policy asks for one). A request that fails intake's checks ends at once, before anything is recorded.
"""

from __future__ import annotations

from typing import Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.state import PlanState
from nodes.approval import approval
from nodes.audit import audit
from nodes.deploy import deploy
from nodes.guardrail import guardrail
from nodes.intake import intake
from nodes.plan import plan
from nodes.retrieve import retrieve


def route_after_audit(state: PlanState) -> Literal["approval", "deploy", "__end__"]:
    status = state.get("status")
    if status == "pending_approval":
        return "approval"
    if status == "approved" and not state.get("deployment"):
        return "deploy"
    return END


def route_after_intake(state: PlanState) -> Literal["retrieve", "__end__"]:
    return END if state.get("status") == "failed" else "retrieve"


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    # No context_schema: LangGraph Server builds the declared schema from the JSON a client sends, and
    # Dependencies holds live objects. Callers in-process pass a Dependencies as `context=`; runs from
    # Studio or the SDK get the embedded defaults (see graph.context.dependencies_of).
    builder = StateGraph(PlanState)
    builder.add_node("intake", intake)
    builder.add_node("retrieve", retrieve)
    builder.add_node("plan", plan)
    builder.add_node("guardrail", guardrail)
    builder.add_node("approval", approval)
    builder.add_node("deploy", deploy)
    builder.add_node("audit", audit)

    builder.add_edge(START, "intake")
    builder.add_conditional_edges("intake", route_after_intake, ["retrieve", END])
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
