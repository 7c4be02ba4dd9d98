"""The approval node: a real LangGraph interrupt, resumed with a human's decision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import FIXED_NOW, prod_config, runtime_for
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from graph.state import PlanState
from nodes.approval import approval

EXPIRES = (FIXED_NOW + timedelta(hours=24)).isoformat()


def pending_state(**extra):
    return {
        "plan_id": "p1",
        "intent": "deploy",
        "env": "prod",
        "requester": "alice@example.com",
        "config": prod_config(),
        "status": "pending_approval",
        "expires_at": EXPIRES,
        "events": [],
        "report": {"hourly_cost_usd": 2.8, "peak_cost_usd": 2.8, "approval_reasons": ["prod"], "verdict": {"warnings": []}},
        **extra,
    }


def approval_only_graph():
    builder = StateGraph(PlanState)
    builder.add_node("approval", approval)
    builder.add_edge(START, "approval")
    builder.add_edge("approval", END)
    return builder.compile(checkpointer=InMemorySaver())


def looping_approval_graph():
    """approval → (still pending? back to approval) — the loop the workflow makes through its audit node."""
    builder = StateGraph(PlanState)
    builder.add_node("approval", approval)
    builder.add_edge(START, "approval")
    builder.add_conditional_edges("approval", lambda s: "approval" if s["status"] == "pending_approval" else END, ["approval", END])
    return builder.compile(checkpointer=InMemorySaver())


def test_pauses_with_what_the_approver_needs(make_deps):
    graph, deps = approval_only_graph(), make_deps()
    config = {"configurable": {"thread_id": "p1"}}
    result = graph.invoke(pending_state(), config, context=deps)
    payload = result["__interrupt__"][0].value
    assert payload["plan_id"] == "p1" and payload["peak_cost_usd"] == 2.8
    assert payload["config"]["instance_type"] == "ml.g5.xlarge" and payload["expires_at"] == EXPIRES
    assert graph.get_state(config).next == ("approval",)

    final = graph.invoke(Command(resume={"approved": True, "approver": "bob@example.com", "reason": "ok"}), config, context=deps)
    assert final["status"] == "approved" and final["decision"]["approver"] == "bob@example.com"
    assert final["events"][-1]["step"] == "approval.decision.1"


def call_with_answer(make_deps, answer, state=None, **dep_overrides):
    """Call the node as LangGraph does on resume: interrupt() returns the resume value."""
    graph = approval_only_graph()
    deps = make_deps(**dep_overrides)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke(state or pending_state(), config, context=deps)
    return graph.invoke(Command(resume=answer), config, context=deps)


def test_rejection_records_who_and_why(make_deps):
    final = call_with_answer(make_deps, {"approved": False, "approver": "bob", "reason": "too big"})
    assert final["status"] == "rejected" and final["decision"]["reason"] == "too big"


def test_the_requester_cannot_approve_their_own_plan(make_deps):
    final = call_with_answer(make_deps, {"approved": True, "approver": "Alice@Example.com"})
    assert final["status"] == "pending_approval"
    assert final["events"][-1]["step"] == "approval.refused.1"
    assert "requester" in final["events"][-1]["payload"]["reason"]


@pytest.mark.parametrize("answer", ["yes", {"approved": "maybe", "approver": "bob"}, {"approver": "bob"}])
def test_a_malformed_answer_is_refused_not_taken_as_approval(make_deps, answer):
    final = call_with_answer(make_deps, answer)
    assert final["status"] == "pending_approval" and not final.get("decision")


def test_an_answer_after_the_deadline_expires_the_plan(make_deps):
    late = FIXED_NOW + timedelta(hours=25)
    final = call_with_answer(make_deps, {"approved": True, "approver": "bob"}, clock=lambda: late)
    assert final["status"] == "expired" and not final.get("decision")


def two_approver_policy(policy):
    rules = policy.approval.model_copy(update={"approvers_required": {"prod": 2}})
    return policy.model_copy(update={"approval": rules})


def test_two_approvers_mean_two_passes_and_two_different_people(make_deps, policy):
    graph, deps = looping_approval_graph(), make_deps(policy=two_approver_policy(policy))
    config = {"configurable": {"thread_id": "p2"}}
    first = graph.invoke(pending_state(), config, context=deps)
    assert first["__interrupt__"][0].value["approvers_required"] == 2

    after_bob = graph.invoke(Command(resume={"approved": True, "approver": "bob", "reason": "ok"}), config, context=deps)
    assert after_bob["status"] == "pending_approval" and not after_bob.get("decision")
    assert after_bob["__interrupt__"][0].value["approved_by"] == ["bob"], "asks again, showing who approved"

    again = graph.invoke(Command(resume={"approved": True, "approver": " BOB ", "reason": "twice"}), config, context=deps)
    assert again["status"] == "pending_approval" and "decided on this plan already" in again["events"][-1]["payload"]["reason"]

    done = graph.invoke(Command(resume={"approved": True, "approver": "carol", "reason": "ok"}), config, context=deps)
    assert done["status"] == "approved" and done["decision"]["approver"] == "carol"
    steps = [e["step"] for e in done["events"]]
    assert steps == ["approval.decision.1", "approval.refused.1", "approval.decision.2"]


def test_one_rejection_ends_a_two_approver_plan(make_deps, policy):
    graph, deps = looping_approval_graph(), make_deps(policy=two_approver_policy(policy))
    config = {"configurable": {"thread_id": "p3"}}
    graph.invoke(pending_state(), config, context=deps)
    graph.invoke(Command(resume={"approved": True, "approver": "bob"}), config, context=deps)
    done = graph.invoke(Command(resume={"approved": False, "approver": "carol", "reason": "no"}), config, context=deps)
    assert done["status"] == "rejected" and done["decision"]["approver"] == "carol"


def test_node_called_directly_outside_a_graph_cannot_skip_the_interrupt(make_deps):
    # Outside a running graph there is nothing to resume from: interrupt() must fail, not approve.
    with pytest.raises(RuntimeError):
        approval(pending_state(), runtime_for(make_deps()))
