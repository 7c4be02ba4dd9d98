"""The audit node and the hash-chained audit log behind it."""

from __future__ import annotations

import sqlite3

import pytest
from fakes import FIXED_NOW, MemoryAudit, MemoryRecorder, runtime_for

from nodes.audit import audit
from tools.audit.local import SqliteAuditLog
from tools.audit.trail import AuditTrail


@pytest.fixture
def log(tmp_path):
    log = SqliteAuditLog(tmp_path / "audit.sqlite", clock=lambda: FIXED_NOW)
    for plan in ("p1", "p2"):
        for step in ("plan.1", "guardrail.1", "approval.decision"):
            assert log.append(plan, step, "tester", {"step": step, "plan": plan})
    return log


def tamper(log, sql, *params):
    conn = sqlite3.connect(log.path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def test_a_clean_log_verifies(log):
    result = AuditTrail(log).verify()
    assert result.ok and result.events == 6


def test_appends_are_idempotent_per_plan_and_step(log):
    assert log.append("p1", "plan.1", "tester", {"different": "payload"}) is False
    assert len(log.events("p1")) == 3 and log.events("p1")[0].payload == {"step": "plan.1", "plan": "p1"}


def test_events_chain_to_their_predecessor(log):
    events = log.events()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(events, events[1:], strict=False))


def test_one_changed_byte_is_detected(log):
    tamper(log, "UPDATE audit_events SET payload = replace(payload, 'p2', 'p3') WHERE seq = 5")
    result = AuditTrail(log).verify()
    assert not result.ok and result.seq == 5 and "changed" in result.problem


def test_a_deleted_event_is_detected(log):
    tamper(log, "DELETE FROM audit_events WHERE seq = 3")
    result = AuditTrail(log).verify()
    assert not result.ok and result.seq == 4 and "deleted" in result.problem


def test_reordered_events_are_detected(log):
    tamper(log, "UPDATE audit_events SET seq = -2 WHERE seq = 2")
    tamper(log, "UPDATE audit_events SET seq = 2 WHERE seq = 3")
    tamper(log, "UPDATE audit_events SET seq = 3 WHERE seq = -2")
    result = AuditTrail(log).verify()
    assert not result.ok and result.seq == 2


def test_a_forged_hash_is_still_caught_by_the_next_link(log):
    # Rewriting an event and recomputing its own hash leaves the next event pointing at the old hash.
    from tools.audit.local import event_hash

    row = sqlite3.connect(log.path).execute("SELECT * FROM audit_events WHERE seq = 2").fetchone()
    forged_payload = '{"plan":"p1","step":"forged"}'
    forged_hash = event_hash(2, row[1], row[2], row[3], row[4], row[5], forged_payload, row[7])
    tamper(log, "UPDATE audit_events SET payload = ?, hash = ? WHERE seq = 2", forged_payload, forged_hash)
    result = AuditTrail(log).verify()
    assert not result.ok and result.seq == 3


# --- digests: what a chain alone cannot show ------------------------------------------------------


def test_a_digest_lists_the_latest_event_of_every_plan_that_changed(log):
    first = log.digest()
    assert (first.digest_seq, first.first_seq, first.last_seq) == (1, 1, 6)
    assert {p: h.seq for p, h in first.plans.items()} == {"p1": 3, "p2": 6}
    log.append("p3", "plan.1", "tester", {})
    log.append("p1", "deploy", "tester", {})
    second = log.digest()
    assert {p: h.seq for p, h in second.plans.items()} == {"p3": 7, "p1": 8}  # p2 did not change
    assert second.prev_digest_hash == first.hash and second.head_hash == log.events()[-1].hash
    assert log.digest() is None and len(log.digests()) == 2  # nothing new: nothing written


def test_digests_are_made_every_n_events_when_asked(tmp_path):
    log = SqliteAuditLog(tmp_path / "a.sqlite", clock=lambda: FIXED_NOW, digest_every=2)
    for step in ("a", "b", "c", "d", "e"):
        log.append("p1", step, "tester", {})
    assert [(d.first_seq, d.last_seq) for d in log.digests()] == [(1, 2), (3, 4)]
    assert AuditTrail(log).verify().undigested == 1


def test_deleting_the_newest_events_after_a_digest_is_detected(log):
    log.digest()
    tamper(log, "DELETE FROM audit_events WHERE seq = 6")
    result = AuditTrail(log).verify()
    assert not result.ok and result.digest == 1 and "newest events deleted" in result.problem


def test_deleting_a_whole_plan_after_a_digest_is_detected(log):
    log.digest()
    tamper(log, "DELETE FROM audit_events WHERE plan_id = 'p2'")
    result = AuditTrail(log).verify()
    assert not result.ok and "plan p2 is missing" in result.problem


def test_a_gap_in_the_local_digest_chain_is_detected(log):
    for plan in ("p3", "p4"):
        log.digest()
        log.append(plan, "plan.1", "tester", {})
    log.digest()
    tamper(log, "DELETE FROM audit_digests WHERE digest_seq = 2")
    result = AuditTrail(log).verify()
    assert not result.ok and result.digest == 2 and "digest 2 is missing" in result.problem


def test_an_edited_digest_is_detected(log):
    log.digest()
    tamper(log, "UPDATE audit_digests SET body = replace(body, '\"p2\"', '\"p9\"')")
    result = AuditTrail(log).verify()
    assert not result.ok and "digest 1 was changed" in result.problem


def test_export_keeps_chain_order_and_filters_by_time(tmp_path):
    from datetime import timedelta

    from tools.audit.trail import AuditTrail

    now = [FIXED_NOW]
    log = SqliteAuditLog(tmp_path / "a.sqlite", clock=lambda: now[0])
    log.append("p1", "plan.1", "tester", {"n": 1})
    now[0] = FIXED_NOW + timedelta(days=1)
    log.append("p1", "deploy", "tester", {"n": 2})
    trail = AuditTrail(log, clock=lambda: now[0])
    assert [e.step for e in trail.export(FIXED_NOW)] == ["plan.1", "deploy"]
    assert [e.payload for e in trail.export(FIXED_NOW + timedelta(hours=1))] == [{"n": 2}]
    assert trail.export(FIXED_NOW, until=FIXED_NOW + timedelta(hours=1))[0].step == "plan.1"


# --- the node ----------------------------------------------------------------------------------


def test_node_writes_each_event_once_and_records_the_plan(make_deps):
    deps = make_deps(audit_log=MemoryAudit(), plan_index=MemoryRecorder())
    state = {
        "plan_id": "p1",
        "intent": "x",
        "env": "dev",
        "requester": "a",
        "created_at": FIXED_NOW.isoformat(),
        "status": "blocked",
        "events": [
            {"step": "plan.1", "actor": "planner", "payload": {"a": 1}},
            {"step": "guardrail.1", "actor": "guardrail", "payload": {"b": 2}},
        ],
    }
    assert audit(state, runtime_for(deps)) == {}
    audit(state, runtime_for(deps))  # a re-run (after a crash or a resume) writes nothing twice
    assert deps.audit_log.steps("p1") == ["plan.1", "guardrail.1"]
    assert deps.plan_index.records["p1"]["status"] == "blocked"
    assert deps.plan_index.records["p1"]["updated_at"] == FIXED_NOW.isoformat()


def test_node_with_the_real_log_keeps_the_chain_valid_across_re_runs(make_deps, tmp_path):
    log = SqliteAuditLog(tmp_path / "a.sqlite")
    deps = make_deps(audit_log=log)
    state = {
        "plan_id": "p9",
        "intent": "x",
        "env": "dev",
        "requester": "a",
        "created_at": FIXED_NOW.isoformat(),
        "status": "planning",
        "events": [{"step": "plan.1", "actor": "planner", "payload": {}}],
    }
    audit(state, runtime_for(deps))
    state["events"].append({"step": "guardrail.1", "actor": "guardrail", "payload": {"allowed": True}})
    audit(state, runtime_for(deps))
    assert [e.step for e in log.events("p9")] == ["plan.1", "guardrail.1"]
    assert AuditTrail(log).verify().ok
