"""The whole workflow end to end on the embedded defaults (real Chroma, SQLite checkpointer, dry-run)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from agentops.errors import AgentOpsError, Conflict, Forbidden, NotFound
from agentops.settings import PROJECT_ROOT
from app.service import Orchestrator
from graph.workflow import build_graph
from tools.audit.local import SqliteAuditLog
from tools.audit.trail import AuditTrail

PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"


@pytest.fixture
def orchestrator(settings):
    with Orchestrator.open(settings) as orchestrator:
        yield orchestrator


def steps(settings, plan_id):
    return [e.step for e in SqliteAuditLog(settings.app_db).events(plan_id)]


def test_blocked_plan_ends_on_the_record_without_deploying(orchestrator, settings):
    view = orchestrator.run("deploy image-tagger to dev using ml.g5.2xlarge", "dev", "dan")
    assert view["status"] == "blocked" and not view.get("deployment")
    assert view["verdict"]["violations"][0]["rule"] == "instance_type.not_allowed"
    assert steps(settings, view["plan_id"]) == ["plan.1", "guardrail.1"]
    assert orchestrator.plans(status="blocked")[0].plan_id == view["plan_id"]


def test_allowed_plan_without_approval_deploys_in_dry_run(orchestrator, settings):
    view = orchestrator.run("roll out sentiment-bert v2 to staging on 2 ml.m5.xlarge instances", "staging", "carol")
    assert view["status"] == "deployed"
    assert view["deployment"]["mode"] == "dry_run"
    assert [c["operation"] for c in view["deployment"]["calls"]][:3] == ["CreateModel", "CreateEndpointConfig", "PutMetricAlarm"]
    assert steps(settings, view["plan_id"]) == ["plan.1", "guardrail.1", "deploy"]
    assert view["evidence"], "the plan carries the policy evidence it was made with"


def test_prod_waits_for_a_human_then_deploys(orchestrator, settings):
    view = orchestrator.run(PROD_INTENT, "prod", "alice")
    plan_id = view["plan_id"]
    assert view["status"] == "pending_approval" and view["waiting_for"] == ["approval"]
    assert steps(settings, plan_id) == ["plan.1", "guardrail.1", "approval.requested"]
    assert [p.plan_id for p in orchestrator.approvals()] == [plan_id]

    done = orchestrator.decide(plan_id, "bob", True, "reviewed")
    assert done["status"] == "deployed" and done["decision"]["approver"] == "bob"
    assert steps(settings, plan_id) == ["plan.1", "guardrail.1", "approval.requested", "approval.decision.1", "deploy"]
    assert orchestrator.approvals() == []
    assert AuditTrail(SqliteAuditLog(settings.app_db)).verify().ok


def test_rejected_plan_is_never_deployed(orchestrator):
    plan_id = orchestrator.run(PROD_INTENT, "prod", "alice")["plan_id"]
    done = orchestrator.decide(plan_id, "bob", False, "not this week")
    assert done["status"] == "rejected" and not done.get("deployment")
    with pytest.raises(Conflict, match="not waiting for approval"):
        orchestrator.decide(plan_id, "carol", True, "second opinion")


def test_refusals_change_nothing(orchestrator):
    plan_id = orchestrator.run(PROD_INTENT, "prod", "alice")["plan_id"]
    with pytest.raises(Forbidden):
        orchestrator.decide(plan_id, "alice", True)
    with pytest.raises(NotFound):
        orchestrator.decide("no-such-plan", "bob", True)
    with pytest.raises(AgentOpsError, match="reason"):
        orchestrator.decide(plan_id, "bob", False, "")
    assert orchestrator.show(plan_id)["status"] == "pending_approval"


@pytest.mark.parametrize(
    ("intent", "env", "user", "message"),
    [("   ", "prod", "alice", "empty"), ("deploy x", "qa", "alice", "unknown environment"), ("deploy x", "dev", " ", "requester")],
)
def test_bad_input_is_refused_before_anything_runs(orchestrator, intent, env, user, message):
    with pytest.raises(AgentOpsError, match=message):
        orchestrator.run(intent, env, user)
    assert orchestrator.plans() == []


def test_an_overdue_request_expires_on_the_record(settings):
    from datetime import timedelta

    from graph.wiring import build_dependencies

    deps = build_dependencies(settings)
    with Orchestrator.open(settings, deps) as orchestrator:
        plan_id = orchestrator.run(PROD_INTENT, "prod", "alice")["plan_id"]
        later = deps.clock() + timedelta(hours=25)
        deps.clock = lambda: later
        with pytest.raises(Conflict, match="expired"):
            orchestrator.decide(plan_id, "bob", True)
        assert orchestrator.show(plan_id)["status"] == "expired"
        assert "approval.expired" in steps(settings, plan_id)


def test_a_pending_approval_survives_the_process(settings, tmp_path):
    """Interrupt in one Python process, approve from a brand-new one, against the same SQLite files."""
    env = {"AGENTOPS_HOME": str(settings.home), "PATH": "/usr/bin:/bin"}
    start = textwrap.dedent(f"""
        import json
        from app.service import Orchestrator
        from agentops.settings import Settings
        with Orchestrator.open(Settings()) as o:
            print(json.dumps(o.run({PROD_INTENT!r}, "prod", "alice")))
    """)
    first = subprocess.run([sys.executable, "-c", start], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    plan_id = json.loads(first.stdout)["plan_id"]
    resume = textwrap.dedent(f"""
        import json
        from app.service import Orchestrator
        from agentops.settings import Settings
        with Orchestrator.open(Settings()) as o:
            print(json.dumps(o.decide({plan_id!r}, "bob", True, "ok")))
    """)
    second = subprocess.run([sys.executable, "-c", resume], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert json.loads(second.stdout)["status"] == "deployed"


def test_the_studio_graph_is_compiled_without_a_checkpointer():
    from graph.studio import graph

    assert graph.checkpointer is None
    assert set(graph.get_graph().nodes) >= {"intake", "retrieve", "plan", "guardrail", "approval", "deploy", "audit"}
    assert build_graph().checkpointer is None
    config = json.loads((PROJECT_ROOT / "langgraph.json").read_text())
    assert config["graphs"]["agentops"] == "./graph/studio.py:graph"
