"""The intake node: runs started outside the CLI/HTTP fronts (Studio, SDK, graph.invoke) get the same input
checks, and what the input cannot say (plan id, requester, creation time) is set here, not read from it."""

from __future__ import annotations

import pytest
from fakes import FIXED_NOW, as_caller, runtime_for

from agentops.errors import Conflict
from nodes.intake import intake

BOB = as_caller("thread-42", " bob ", "requester")


def test_names_the_plan_after_its_thread_and_its_requester_after_the_caller(make_deps):
    state = {"intent": "  deploy churn to dev  ", "env": "dev", "constraints": {"budget_usd_per_hour": 2}}
    update = intake(state, BOB, runtime_for(make_deps()))
    assert update == {
        "intent": "deploy churn to dev",
        "env": "dev",
        "requester": "bob",
        "constraints": {"budget_usd_per_hour": 2.0},
        "plan_id": "thread-42",
        "created_at": FIXED_NOW.isoformat(),
        "status": "planning",
    }


def test_a_requester_named_in_the_state_is_not_the_requester(make_deps):
    update = intake({"intent": "deploy x", "env": "dev", "requester": "mallory"}, BOB, runtime_for(make_deps()))
    assert update["requester"] == "bob"


def test_a_thread_that_holds_a_plan_is_not_started_over(make_deps):
    # A second input on a plan's thread would re-plan it under its own id: refused, nothing written.
    with pytest.raises(Conflict, match="holds a plan already"):
        intake({"plan_id": "thread-42", "intent": "deploy x", "env": "dev"}, BOB, runtime_for(make_deps()))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"configurable": {"thread_id": "t"}}, "nobody authenticated this run"),
        (as_caller("t", "victor", "viewer"), "needs the requester role"),
        ({"configurable": {"langgraph_auth_user": {"identity": "bob", "permissions": ["requester"]}}}, "a plan is a thread"),
        ({"configurable": {"thread_id": "t", "langgraph_auth_user": {"identity": "  ", "permissions": ["requester"]}}}, "nobody"),
    ],
)
def test_a_run_nobody_authenticated_as_a_requester_fails(make_deps, config, message):
    update = intake({"intent": "deploy x", "env": "dev"}, config, runtime_for(make_deps()))
    assert update["status"] == "failed" and message in update["error"]
    assert set(update) == {"status", "error"}, "no plan id, requester or time is set for a refused run"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"env": "dev"}, "intent is empty"),
        ({"intent": "deploy x", "env": "qa"}, "unknown environment"),
        ({"intent": "x" * 5000, "env": "dev"}, "limit is 2000"),
        ({"intent": "deploy x", "env": "dev", "constraints": {"budget_usd_per_hour": -1}}, "budget_usd_per_hour"),
    ],
)
def test_bad_input_fails_the_run_with_one_line(make_deps, state, message):
    update = intake(state, BOB, runtime_for(make_deps()))
    assert update["status"] == "failed" and message in update["error"] and "\n" not in update["error"]
