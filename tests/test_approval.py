"""The approval node: a real LangGraph interrupt, resumed with a human's decision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import FIXED_NOW, as_caller, prod_config, runtime_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    assert set(payload["resume_with"]) == {"approved", "reason"}, "the answer names no one: the approver is the caller"
    assert graph.get_state(config).next == ("approval",)

    final = graph.invoke(Command(resume={"approved": True, "reason": "ok"}), as_caller("p1", "bob@example.com"), context=deps)
    assert final["status"] == "approved" and final["decision"]["approver"] == "bob@example.com"
    assert final["decision"]["decided_at"] == FIXED_NOW.isoformat().replace("+00:00", "Z")
    assert final["events"][-1]["step"] == "approval.decision.1"


def call_with_answer(make_deps, answer, state=None, caller=("bob@example.com", "approver"), **dep_overrides):
    """Call the node as LangGraph does on resume: interrupt() returns the resume value; the run's config
    carries the authenticated caller (None: nobody authenticated the resume)."""
    graph = approval_only_graph()
    deps = make_deps(**dep_overrides)
    graph.invoke(state or pending_state(), {"configurable": {"thread_id": "t"}}, context=deps)
    config = as_caller("t", *caller) if caller else {"configurable": {"thread_id": "t"}}
    return graph.invoke(Command(resume=answer), config, context=deps)


def refused(final) -> str:
    assert final["status"] == "pending_approval" and not final.get("decision")
    assert final["events"][-1]["step"].startswith("approval.refused.")
    return final["events"][-1]["payload"]["reason"]


def test_rejection_records_who_and_why(make_deps):
    final = call_with_answer(make_deps, {"approved": False, "reason": "too big"})
    assert final["status"] == "rejected" and final["decision"]["reason"] == "too big"
    assert final["decision"]["approver"] == "bob@example.com"


def test_a_rejection_without_a_reason_is_refused(make_deps):
    assert "reason" in refused(call_with_answer(make_deps, {"approved": False, "reason": "  "}))


def test_the_requester_cannot_approve_their_own_plan(make_deps):
    assert "requested plan p1" in refused(call_with_answer(make_deps, {"approved": True}, caller=(" Alice@Example.com ", "approver")))


def test_the_approver_comes_from_authentication_never_from_the_answer(make_deps):
    # The requester, authenticated, names someone else in the answer: refused, and nobody is recorded.
    final = call_with_answer(make_deps, {"approved": True, "approver": "bob@example.com"}, caller=("alice@example.com", "approver"))
    assert "approver" in refused(final)
    # Nobody authenticated the resume at all (a direct graph.invoke): refused whatever the answer says.
    assert "nobody authenticated" in refused(call_with_answer(make_deps, {"approved": True}, caller=None))


@pytest.mark.parametrize("roles", [("viewer",), ("requester",)])
def test_deciding_needs_the_approver_role(make_deps, roles):
    assert "approver role" in refused(call_with_answer(make_deps, {"approved": True}, caller=("bob@example.com", *roles)))


@pytest.mark.parametrize(
    "forged",
    [
        {"approver": "bob@example.com"},
        {"decided_at": "2020-01-01T00:00:00+00:00"},
        {"expired": True},
        {"expires_at": "2020-01-01T00:00:00+00:00"},
        {"status": "approved"},
    ],
)
def test_an_answer_cannot_say_who_when_or_that_the_plan_expired(make_deps, forged):
    final = call_with_answer(make_deps, {"approved": True, **forged})
    refused(final)
    assert final["status"] != "expired"


# Anything but a JSON boolean for `approved` ("yes", 1, "true", None, a list...) is refused, never coerced.
# Integers stay within 64 bits: a larger one is refused by LangGraph's checkpoint serializer (TypeError) before
# the approval node sees it -- a known gap, noted on issue 11, not something this node can answer.
not_a_boolean = st.one_of(
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.none(),
    st.lists(st.booleans(), max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=not_a_boolean)
def test_a_malformed_answer_is_refused_not_taken_as_approval(make_deps, value):
    refused(call_with_answer(make_deps, {"approved": value, "reason": "ok"}))


@pytest.mark.parametrize("answer", ["yes", True, [], {"reason": "ok"}, {"approved": "true"}])
def test_answers_that_are_not_a_decision_are_refused(make_deps, answer):
    refused(call_with_answer(make_deps, answer))


def test_an_answer_after_the_deadline_expires_the_plan(make_deps):
    late = FIXED_NOW + timedelta(hours=25)
    final = call_with_answer(make_deps, {"approved": True}, clock=lambda: late)
    assert final["status"] == "expired" and not final.get("decision")


def two_approver_policy(policy):
    rules = policy.approval.model_copy(update={"approvers_required": {"prod": 2}})
    return policy.model_copy(update={"approval": rules})


def test_two_approvers_mean_two_passes_and_two_different_people(make_deps, policy):
    graph, deps = looping_approval_graph(), make_deps(policy=two_approver_policy(policy))
    config = {"configurable": {"thread_id": "p2"}}
    first = graph.invoke(pending_state(), config, context=deps)
    assert first["__interrupt__"][0].value["approvers_required"] == 2

    after_bob = graph.invoke(Command(resume={"approved": True, "reason": "ok"}), as_caller("p2", "bob"), context=deps)
    assert after_bob["status"] == "pending_approval" and not after_bob.get("decision")
    assert after_bob["__interrupt__"][0].value["approved_by"] == ["bob"], "asks again, showing who approved"

    again = graph.invoke(Command(resume={"approved": True, "reason": "twice"}), as_caller("p2", " BOB "), context=deps)
    assert again["status"] == "pending_approval" and "has approved plan p1 already" in again["events"][-1]["payload"]["reason"]

    done = graph.invoke(Command(resume={"approved": True, "reason": "ok"}), as_caller("p2", "carol"), context=deps)
    assert done["status"] == "approved" and done["decision"]["approver"] == "carol"
    steps = [e["step"] for e in done["events"]]
    assert steps == ["approval.decision.1", "approval.refused.1", "approval.decision.2"]


def test_one_rejection_ends_a_two_approver_plan(make_deps, policy):
    graph, deps = looping_approval_graph(), make_deps(policy=two_approver_policy(policy))
    config = {"configurable": {"thread_id": "p3"}}
    graph.invoke(pending_state(), config, context=deps)
    graph.invoke(Command(resume={"approved": True}), as_caller("p3", "bob"), context=deps)
    done = graph.invoke(Command(resume={"approved": False, "reason": "no"}), as_caller("p3", "carol"), context=deps)
    assert done["status"] == "rejected" and done["decision"]["approver"] == "carol"


def test_node_called_directly_outside_a_graph_cannot_skip_the_interrupt(make_deps):
    # Outside a running graph there is nothing to resume from: interrupt() must fail, not approve.
    with pytest.raises(RuntimeError):
        approval(pending_state(), {"configurable": {"thread_id": "p1"}}, runtime_for(make_deps()))
