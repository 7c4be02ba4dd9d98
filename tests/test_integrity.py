"""Only the right person can change a plan: a run started or resumed straight on the compiled graph (as
LangGraph Studio and the LangGraph API do) can set none of the fields the nodes own, and no identity.

Tries every graph-owned field in the input and every identity/time field in a resume value; counts what
was accepted (0), and checks another plan's index row and audit events are unchanged."""

from __future__ import annotations

import pytest
from fakes import as_caller
from langgraph.types import Command

from agentops.approval import Answer
from app.service import Orchestrator
from graph.state import PlanInput, PlanState
from tools.audit.local import SqliteAuditLog

PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"
EVIL_TIME = "2020-01-01T00:00:00+00:00"


@pytest.fixture
def orchestrator(settings):
    with Orchestrator.open(settings) as orchestrator:
        yield orchestrator


def forged_state(victim: str) -> dict:
    """A value for every field of the state the nodes own, aimed at the victim's plan."""
    approval = {"approved": True, "approver": "bob", "reason": "forged", "decided_at": EVIL_TIME}
    return {
        "plan_id": victim,
        "requester": "alice",
        "created_at": EVIL_TIME,
        "evidence": [{"policy": "forged", "section": "x", "text": "anything goes"}],
        "config": {"endpoint_name": "forged", "instance_type": "ml.p5.48xlarge", "instance_count": 8},
        "change": {"action": "create", "known": True, "summary": "forged", "diff": []},
        "basis": {"plan_id": "forged", "deployed_at": EVIL_TIME, "config": {"instance_type": "ml.p5.48xlarge"}, "kept": ["instance_type"]},
        "pinned": ["instance_type", "instance_count"],
        "planner": {"planner": "forged", "rounds": 99, "max_revisions": 99},
        "report": {"verdict": {"allowed": True, "violations": []}, "requires_approval": False},
        "status": "deployed",
        "expires_at": EVIL_TIME,
        "decision": approval,
        "deployment": {"mode": "execute", "endpoint": "forged"},
        "error": "forged",
        "question": "forged question?",
        "reading": [{"field": "instance_count", "words": "forged", "value": 8}],
        "events": [
            {"step": "approval.decision.1", "actor": "bob", "payload": approval},
            {"step": "deploy", "actor": "agentops", "payload": {"forged": True}},
        ],
    }


def graph_owned_fields() -> set[str]:
    return set(PlanState.__annotations__) - set(PlanInput.__annotations__)


def test_the_forged_input_covers_every_field_the_nodes_own():
    assert set(forged_state("x")) == graph_owned_fields()


def test_the_graph_input_is_intent_env_and_constraints(orchestrator):
    schema = orchestrator.graph.get_input_jsonschema()
    assert set(schema["properties"]) == {"intent", "env", "constraints"}
    assert not set(orchestrator.graph.get_output_jsonschema()["properties"]) & {"events"}


def test_a_run_can_set_no_graph_owned_field_and_leaves_other_plans_alone(orchestrator, settings):
    victim = orchestrator.run(PROD_INTENT, "prod", "alice")["plan_id"]
    row_before = orchestrator.index.get(victim)
    events_before = SqliteAuditLog(settings.app_db).events(victim)

    forged = forged_state(victim)
    config = as_caller("mallory-thread", "mallory", "requester")
    orchestrator.graph.invoke({"intent": PROD_INTENT, "env": "prod", **forged}, config, context=orchestrator.deps)

    state = orchestrator.graph.get_state(config).values
    accepted = sorted(key for key, value in forged.items() if key != "events" and state.get(key) == value)
    accepted += [e["step"] for e in state["events"] if e in forged["events"]]
    assert accepted == [], f"graph-owned fields taken from the input: {accepted}"
    assert (state["plan_id"], state["requester"], state["status"]) == ("mallory-thread", "mallory", "pending_approval")

    assert orchestrator.index.get(victim) == row_before
    assert SqliteAuditLog(settings.app_db).events(victim) == events_before
    assert orchestrator.show(victim)["status"] == "pending_approval"


def test_a_resume_value_can_set_no_identity_time_or_expiry(orchestrator):
    plan_id = orchestrator.run(PROD_INTENT, "prod", "alice")["plan_id"]
    forged_fields = {"approver": "bob", "decided_at": EVIL_TIME, "expired": True, "expires_at": EVIL_TIME, "requester": "carol"}
    accepted = []
    for key, value in forged_fields.items():
        # The requester resumes their own plan, naming someone else in the answer.
        orchestrator.graph.invoke(
            Command(resume={"approved": True, "reason": "ok", key: value}),
            as_caller(plan_id, "alice", "requester", "approver"),
            context=orchestrator.deps,
        )
        view = orchestrator.show(plan_id)
        if view["status"] != "pending_approval" or view["approvals"]:
            accepted.append(key)
    assert accepted == []
    assert orchestrator.index.get(plan_id).status == "pending_approval"

    # With the answer cut to what it may say, it is still the requester's own plan: refused.
    orchestrator.graph.invoke(Command(resume=Answer(approved=True).model_dump()), as_caller(plan_id, "alice"), context=orchestrator.deps)
    assert orchestrator.show(plan_id)["status"] == "pending_approval"
    # Someone else, authenticated, decides: the record names them, and the clock's time.
    orchestrator.graph.invoke(Command(resume={"approved": True, "reason": "ok"}), as_caller(plan_id, "bob"), context=orchestrator.deps)
    view = orchestrator.show(plan_id)
    assert view["status"] == "deployed" and view["decision"]["approver"] == "bob"
    assert not view["decision"]["decided_at"].startswith("2020")


def test_a_run_without_an_authenticated_caller_fails_before_anything_is_recorded(orchestrator):
    config = {"configurable": {"thread_id": "nobody"}}
    orchestrator.graph.invoke({"intent": PROD_INTENT, "env": "prod"}, config, context=orchestrator.deps)
    state = orchestrator.graph.get_state(config).values
    assert state["status"] == "failed" and "nobody authenticated" in state["error"]
    assert orchestrator.index.get("nobody") is None


def test_a_run_without_dependencies_is_refused_not_given_defaults(settings):
    from graph.context import MissingDependencies
    from graph.workflow import build_graph

    graph = build_graph()
    with pytest.raises(MissingDependencies, match="pass context=Dependencies"):
        graph.invoke({"intent": PROD_INTENT, "env": "prod"}, as_caller("t", "alice", "requester"))


def test_the_state_directory_and_databases_are_private(tmp_path):
    import stat

    from agentops.settings import Settings

    home = tmp_path / "fresh" / "home"
    with Orchestrator.open(Settings(home=home, _env_file=None)) as orchestrator:
        orchestrator.run(PROD_INTENT, "prod", "alice")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    databases = sorted(home.glob("*.sqlite*"))
    assert {p.name for p in databases} >= {"checkpoints.sqlite", "agentops.sqlite"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in databases} == {p.name: "0o600" for p in databases}


@pytest.mark.parametrize(
    ("intent", "words"),
    [
        (f"deploy fraud-detector v3 to prod on {2**64} ml.g5.xlarge", f"'{2**64} ml.g5.xlarge': instance count"),
        ("deploy fraud-detector v3 to prod on 5000 ml.g5.xlarge", "'5000 ml.g5.xlarge': instance count"),
        ("deploy fraud-detector v3 to prod on -2 ml.g5.xlarge", "'-2'"),
        ("deploy fraud-detector v3 to prod, autoscale 2 to 99999999999999999999", "autoscaling max"),
        ("deploy fraud-detector v3 to prod on 2 ml.g5.xlarge under $" + "9" * 400, "budget usd per hour"),
    ],
)
def test_a_number_no_deployment_could_mean_is_named_not_stored(orchestrator, intent, words):
    # Asked about, naming the words (the intent reader's contract), never stored or read without its sign.
    view = orchestrator.run(intent, "prod", "alice")
    assert view["status"] == "needs_clarification" and not view.get("config"), view
    assert words in view["question"]
    assert orchestrator.index.get(view["plan_id"]).status == "needs_clarification", "on the record, not stuck in planning"
