"""The plan index: lists without scanning checkpoints, and decisions with exactly one winner."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fakes import FIXED_NOW

from agentops.schemas import Decision
from tools.storage.plan_index import SqlitePlanIndex


@pytest.fixture
def index(tmp_path):
    index = SqlitePlanIndex(tmp_path / "plans.sqlite")
    index.record(
        {
            "plan_id": "p1",
            "env": "prod",
            "requester": "alice",
            "intent": "deploy x",
            "status": "pending_approval",
            "created_at": FIXED_NOW.isoformat(),
            "expires_at": (FIXED_NOW + timedelta(hours=24)).isoformat(),
            "config": {"endpoint_name": "x-prod"},
            "report": {"peak_cost_usd": 2.8},
        }
    )
    return index


def test_lists_pending_plans_with_their_summary(index):
    [row] = index.list(status="pending_approval")
    assert (row.plan_id, row.endpoint_name, row.peak_cost_usd) == ("p1", "x-prod", 2.8)
    assert index.list(status="deployed") == []


def test_exactly_one_of_many_racing_approvers_wins(index):
    decisions = [Decision(approved=True, approver=f"approver{i}") for i in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(lambda d: index.decide("p1", d, FIXED_NOW), decisions))
    assert wins.count(1) == 1 and wins.count(None) == 19
    assert index.get("p1").status == "approved"
    assert len(index.decisions("p1")) == 1


def test_with_two_approvers_required_each_slot_has_one_winner(index):
    decisions = [Decision(approved=True, approver=f"approver{i}") for i in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        slots = list(pool.map(lambda d: index.decide("p1", d, FIXED_NOW, required=2), decisions))
    assert sorted(s for s in slots if s is not None) == [1, 2]
    assert index.get("p1").status == "approved"
    assert len({d.approver for d in index.decisions("p1")}) == 2


def test_one_approval_of_two_leaves_the_plan_pending_and_the_same_person_cannot_fill_the_second(index):
    assert index.decide("p1", Decision(approved=True, approver="bob"), FIXED_NOW, required=2) == 1
    assert index.get("p1").status == "pending_approval" and index.get("p1").decision is None
    assert index.decide("p1", Decision(approved=True, approver="Bob "), FIXED_NOW, required=2) is None
    assert index.decide("p1", Decision(approved=False, approver="carol", reason="no"), FIXED_NOW, required=2) == 2
    assert index.get("p1").status == "rejected" and index.get("p1").decision.approver == "carol"


def test_the_requester_never_wins_the_decision(index):
    assert index.decide("p1", Decision(approved=True, approver=" ALICE"), FIXED_NOW) is None
    assert index.get("p1").status == "pending_approval" and index.decisions("p1") == []


def test_an_expired_request_cannot_be_decided(index):
    late = FIXED_NOW + timedelta(hours=25)
    assert index.decide("p1", Decision(approved=True, approver="bob"), late) is None
    assert index.overdue(late) == ["p1"]
    assert index.expire("p1", late) and index.get("p1").status == "expired"


def test_workflow_progress_never_moves_a_decided_plan_back_to_pending(index):
    index.decide("p1", Decision(approved=True, approver="bob"), FIXED_NOW)
    index.record(
        {
            "plan_id": "p1",
            "env": "prod",
            "requester": "alice",
            "intent": "deploy x",
            "status": "pending_approval",
            "created_at": FIXED_NOW.isoformat(),
        }
    )
    assert index.get("p1").status == "approved"
    index.record(
        {
            "plan_id": "p1",
            "env": "prod",
            "requester": "alice",
            "intent": "deploy x",
            "status": "deployed",
            "created_at": FIXED_NOW.isoformat(),
        }
    )
    assert index.get("p1").status == "deployed" and index.get("p1").decision.approver == "bob"
