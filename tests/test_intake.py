"""The intake node: runs started outside the CLI/HTTP fronts (Studio, SDK) get the same input checks."""

from __future__ import annotations

import pytest
from fakes import FIXED_NOW, runtime_for

from nodes.intake import intake

THREAD = {"configurable": {"thread_id": "thread-42"}}


def test_names_the_plan_after_its_thread_and_normalises_input(make_deps):
    state = {"intent": "  deploy churn to dev  ", "env": "dev", "requester": " bob ", "constraints": {"budget_usd_per_hour": 2}}
    update = intake(state, THREAD, runtime_for(make_deps()))
    assert update == {
        "intent": "deploy churn to dev",
        "env": "dev",
        "requester": "bob",
        "constraints": {"budget_usd_per_hour": 2.0},
        "plan_id": "thread-42",
        "created_at": FIXED_NOW.isoformat(),
        "status": "planning",
    }


def test_keeps_a_plan_id_the_front_end_already_chose(make_deps):
    state = {"plan_id": "p1", "created_at": "2026-01-01T00:00:00+00:00", "intent": "deploy x", "env": "dev", "requester": "a"}
    update = intake(state, THREAD, runtime_for(make_deps()))
    assert (update["plan_id"], update["created_at"]) == ("p1", "2026-01-01T00:00:00+00:00")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"env": "dev", "requester": "a"}, "intent is empty"),
        ({"intent": "deploy x", "env": "qa", "requester": "a"}, "unknown environment"),
        ({"intent": "deploy x", "env": "dev"}, "requester is empty"),
        ({"intent": "x" * 5000, "env": "dev", "requester": "a"}, "limit is 2000"),
        ({"intent": "deploy x", "env": "dev", "requester": "a", "constraints": {"budget_usd_per_hour": -1}}, "budget_usd_per_hour"),
    ],
)
def test_bad_input_fails_the_run_with_one_line(make_deps, state, message):
    update = intake(state, THREAD, runtime_for(make_deps()))
    assert update["status"] == "failed" and message in update["error"] and "\n" not in update["error"]
