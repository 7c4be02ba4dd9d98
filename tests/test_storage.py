"""The storage layer: connections opened once, an audit pass committed as one transaction, and schema
set-up that several replicas can run at once on a fresh Postgres database."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest
from fakes import FIXED_NOW, runtime_for

from agentops.settings import PROJECT_ROOT
from nodes.audit import audit
from tools.audit.local import AuditLog
from tools.audit.trail import AuditTrail
from tools.storage.database import Database
from tools.storage.plan_index import PlanIndex

STATE = {
    "plan_id": "p1",
    "env": "prod",
    "requester": "alice@example.com",
    "intent": "deploy x",
    "status": "pending_approval",
    "created_at": FIXED_NOW.isoformat(),
    "events": [
        {"step": "plan.1", "actor": "planner", "payload": {"n": 1}},
        {"step": "guardrail.1", "actor": "guardrail", "payload": {"allowed": True}},
        {"step": "approval.requested", "actor": "guardrail", "payload": {}},
    ],
}


def test_a_thread_keeps_one_sqlite_connection_in_wal_with_normal_sync(tmp_path):
    index = PlanIndex(tmp_path / "app.sqlite")
    log = AuditLog(tmp_path / "app.sqlite")
    assert index.db is log.db  # the two stores of one file share connections (and transactions)
    for n in range(20):
        index.record(STATE | {"plan_id": f"p{n}"})
        log.append(f"p{n}", "plan.1", "planner", {})
    seen = []
    worker = threading.Thread(target=lambda: seen.append(len(index.list(limit=100))))
    worker.start()
    worker.join()
    assert seen == [20] and len(index.db._opened) == 2  # this thread's and the worker's, nothing per statement
    with index.db.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_the_audit_node_writes_a_pass_all_or_nothing(make_deps, tmp_path):
    db = tmp_path / "app.sqlite"
    index, log = PlanIndex(db), AuditLog(db)
    trail = AuditTrail(log)
    deps = make_deps(audit_log=trail, plan_index=index)
    broken = {k: v for k, v in STATE.items() if k != "env"}  # the index row cannot be written
    with pytest.raises(KeyError):
        audit(broken, runtime_for(deps))
    assert log.events("p1") == [] and index.get("p1") is None  # nothing half-written

    audit(STATE, runtime_for(deps))
    assert [e.step for e in log.events("p1")] == ["plan.1", "guardrail.1", "approval.requested"]
    assert index.get("p1").status == "pending_approval"
    audit(STATE, runtime_for(deps))  # a re-run writes nothing twice
    assert len(log.events("p1")) == 3 and trail.verify().ok


def test_a_pass_on_two_databases_still_writes_both(make_deps, tmp_path):
    index, log = PlanIndex(tmp_path / "index.sqlite"), AuditLog(tmp_path / "audit.sqlite")
    audit(STATE, runtime_for(make_deps(audit_log=AuditTrail(log), plan_index=index)))
    assert len(log.events("p1")) == 3 and index.get("p1").status == "pending_approval"


def test_a_failed_store_transaction_inside_a_pass_rolls_back_only_itself(tmp_path):
    db = Database.of(tmp_path / "app.sqlite")
    index, log = PlanIndex(db), AuditLog(db)
    with db.transaction():
        log.append("p1", "plan.1", "planner", {})
        assert log.append("p1", "plan.1", "planner", {}) is False  # its own savepoint, released: the pass goes on
        index.record(STATE)
    assert len(log.events("p1")) == 1 and index.get("p1") is not None


SETUP = """
import sys
from graph.wiring import migrate_checkpoints
from tools.audit.local import AuditLog
from tools.storage.plan_index import PlanIndex
url = sys.argv[1]
sys.stdin.readline()  # start together
PlanIndex(url); AuditLog(url); migrate_checkpoints(url)
print("ok")
"""


def test_replicas_setting_up_a_fresh_postgres_schema_together_all_start(postgres_url):
    """Two processes create every table on a fresh schema at the same moment, several times over (the
    race showed in about one start in four): each completes its set-up."""
    import psycopg

    base, _, options = postgres_url.partition("?")
    for _ in range(6):
        schema = f"agentops_setup_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        try:
            url = f"{base}?options=-csearch_path%3D{schema}"
            replicas = [
                subprocess.Popen(
                    [sys.executable, "-c", SETUP, url],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=PROJECT_ROOT,
                )
                for _ in range(2)
            ]
            for replica in replicas:  # both have imported everything and wait on stdin: start them at once
                replica.stdin.write("go\n")
                replica.stdin.flush()
            outcomes = [replica.communicate(timeout=120) for replica in replicas]
            assert [(r.returncode, out.strip()) for r, (out, _) in zip(replicas, outcomes, strict=True)] == [(0, "ok")] * 2, outcomes
        finally:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
