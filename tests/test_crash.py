"""No plan torn by a crash: the state a process leaves when it dies at each node boundary of each path
(auto-deploy, pending, approve), then what start-up (`recover`) makes of it; a full checkpoint database;
idempotent submissions and decisions over real HTTP.

A run is stopped after its k-th node with LangGraph's `interrupt_after="*"` and durability="sync", and
left marked in flight, as a dead process leaves it. The service saves fewer checkpoints than that (at the
input, before each record, at the pause and at the end: app/service.py), so a SIGKILL leaves one of these
states, or an earlier one; start-up has to finish from any of them. (tests/test_kill9.py kills real
`agentops serve` processes.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fakes import wait_until
from langgraph.types import Command

from agentops.approval import APPROVER_ROLES, Caller
from agentops.schemas import Decision
from app.service import NEVER_SAVED, BlockingOrchestrator, Orchestrator, write_the_record
from graph.context import run_config
from tools.audit.local import SqliteAuditLog

STAGING_DIRECT = "deploy churn-predictor v1 to staging on 2 ml.m5.large"
STAGING_PENDING = "deploy churn-predictor v1 to staging on 3 ml.m5.large"  # 3 instances: a human decides
ALICE, BOB, VIEWER = "alice@example.com", "bob@example.com", "victor@example.com"

AUTO_NODES = ["intake", "retrieve", "plan", "resolve", "guardrail", "audit", "deploy", "watch", "audit"]
PENDING_NODES = ["intake", "retrieve", "plan", "resolve", "guardrail", "audit"]  # then it pauses in approval
APPROVE_NODES = ["approval", "audit", "deploy", "watch", "audit"]


@pytest.fixture
def orchestrator(settings):
    with Orchestrator.open(settings) as orchestrator:
        yield orchestrator


def steps(settings, plan_id: str) -> list[str]:
    return [e.step for e in SqliteAuditLog(settings.app_db).events(plan_id)]


def cut_off(o: BlockingOrchestrator, plan_id: str, graph_input: Any, nodes_done: int, *, audit_wrote: bool = False) -> None:
    """Leave `plan_id` as a process killed after `nodes_done` more nodes leaves it: marked in flight, its
    checkpoint at that boundary. `audit_wrote`: at a boundary before the audit node, the node's writes
    landed too (killed after them, before its checkpoint)."""
    # Driven as the service drives it: by the authenticated requester, or (a decision) by its approver.
    caller = Caller(BOB, APPROVER_ROLES) if isinstance(graph_input, Command) else Caller(ALICE, frozenset({"requester"}))
    core, config = o.core, run_config(plan_id, caller)

    core.index.mark_running(plan_id, core.deps.clock())
    step_input = graph_input
    for _ in range(nodes_done):
        for _event in core.graph.stream(step_input, config, context=core.deps, durability="sync", interrupt_after="*"):
            pass
        step_input = None
    snapshot = core.graph.get_state(config)
    if audit_wrote and snapshot.next == ("audit",):
        write_the_record(snapshot.values, _runtime(core))


def _runtime(core: Orchestrator):
    from langgraph.runtime import Runtime

    return Runtime(context=core.deps)


def accepted(o: BlockingOrchestrator, intent: str) -> dict[str, Any]:
    """A plan as `arun` has it before its first step: checked, its index row written."""
    plan = o.new_plan(intent, "staging", ALICE)
    o.index.record({**plan, "status": "planning"})
    return plan


def assert_one_story(o: BlockingOrchestrator, settings, plan_id: str, status: str, last_step: str) -> dict[str, Any]:
    """index status == checkpoint status == what the last audit event says; nothing in flight; no step twice."""
    view = o.show(plan_id)
    assert view["status"] == status, view.get("error")
    assert view["waiting_for"] == (["approval"] if status == "pending_approval" else [])
    assert o.index.get(plan_id).status == status
    recorded = steps(settings, plan_id)
    assert recorded[-1] == last_step, recorded
    assert len(recorded) == len(set(recorded))
    assert plan_id not in o.index.running()
    if last_step == "deploy":
        [event] = [e for e in SqliteAuditLog(settings.app_db).events(plan_id) if e.step == "deploy"]
        assert event.payload["status"] == status
    return view


@pytest.mark.parametrize("nodes_done", range(1, len(AUTO_NODES)))
@pytest.mark.parametrize("audit_wrote", [False, True])
def test_auto_deploy_cut_off_at_any_node_boundary_is_finished_at_start_up(orchestrator, settings, nodes_done, audit_wrote):
    plan = accepted(orchestrator, STAGING_DIRECT)
    cut_off(orchestrator, plan["plan_id"], plan, nodes_done, audit_wrote=audit_wrote)

    assert plan["plan_id"] in orchestrator.recover()
    view = assert_one_story(orchestrator, settings, plan["plan_id"], "deployed", "deploy")
    assert view["deployment"]["mode"] == "dry_run"


@pytest.mark.parametrize("nodes_done", range(1, len(PENDING_NODES) + 1))
def test_a_submission_cut_off_before_it_paused_is_brought_to_its_pause_at_start_up(orchestrator, settings, nodes_done):
    plan = accepted(orchestrator, STAGING_PENDING)
    cut_off(orchestrator, plan["plan_id"], plan, nodes_done, audit_wrote=True)

    orchestrator.recover()
    assert_one_story(orchestrator, settings, plan["plan_id"], "pending_approval", "approval.requested")
    # ...and it can be approved as if nothing had happened.
    assert orchestrator.decide(plan["plan_id"], BOB, True, "capacity reviewed")["status"] == "deployed"
    assert_one_story(orchestrator, settings, plan["plan_id"], "deployed", "deploy")


@pytest.mark.parametrize("nodes_done", range(len(APPROVE_NODES)))
def test_an_approval_cut_off_at_any_node_boundary_is_carried_out_once_at_start_up(orchestrator, settings, nodes_done):
    plan_id = orchestrator.run(STAGING_PENDING, "staging", ALICE)["plan_id"]
    decision = Decision(approved=True, approver=BOB, reason="ok", decided_at=orchestrator.deps.clock())
    assert orchestrator.index.decide(plan_id, decision, orchestrator.deps.clock()) == 1  # the claim, as `decide` makes it
    cut_off(orchestrator, plan_id, Command(resume={"approved": True, "reason": "ok"}), nodes_done, audit_wrote=True)

    orchestrator.recover()
    view = assert_one_story(orchestrator, settings, plan_id, "deployed", "deploy")
    assert [a["approver"] for a in view["approvals"]] == [BOB]


@pytest.mark.parametrize(
    ("intent", "status", "last_step"), [(STAGING_DIRECT, "deployed", "deploy"), (STAGING_PENDING, "pending_approval", "approval.requested")]
)
def test_a_plan_killed_after_its_input_was_saved_is_run_at_start_up_by_its_requester(orchestrator, settings, intent, status, last_step):
    """The service's first durable point: the request, before any node runs. The run start-up gives it
    is the requester's, named by the index row (intake refuses a run nobody authenticated)."""
    plan = accepted(orchestrator, intent)
    orchestrator.index.mark_running(plan["plan_id"], orchestrator.deps.clock())
    config = run_config(plan["plan_id"], Caller(ALICE, frozenset({"requester"})))
    orchestrator.graph.update_state(config, plan, as_node="__input__")
    assert orchestrator.show(plan["plan_id"])["status"] == "planning"

    assert orchestrator.recover() == [plan["plan_id"]]
    view = assert_one_story(orchestrator, settings, plan["plan_id"], status, last_step)
    assert view["requester"] == ALICE


def test_a_plan_whose_first_checkpoint_was_never_saved_ends_failed_on_the_record(orchestrator, settings):
    """Killed before the first step was saved, or the disk was full: the index row is all there is. Shown
    as it is meanwhile (never a 404), and failed with the reason at start-up, through the audit node."""
    plan = accepted(orchestrator, STAGING_DIRECT)
    orchestrator.index.mark_running(plan["plan_id"], orchestrator.deps.clock())
    assert orchestrator.show(plan["plan_id"])["status"] == "planning"

    assert orchestrator.recover() == [plan["plan_id"]]
    view = assert_one_story(orchestrator, settings, plan["plan_id"], "failed", "recovery.failed")
    assert view["error"] == NEVER_SAVED
    assert orchestrator.recover() == []  # nothing left to do: safe to repeat


def test_an_ended_run_whose_index_lags_is_recorded_from_its_checkpoint(orchestrator, settings):
    plan_id = orchestrator.run(STAGING_DIRECT, "staging", ALICE)["plan_id"]
    with orchestrator.index.db.connect() as conn:  # the index row as a crash between two writers could leave it
        conn.execute("UPDATE plans SET status = 'planning' WHERE plan_id = ?", (plan_id,))

    assert orchestrator.recover() == [plan_id]
    assert_one_story(orchestrator, settings, plan_id, "deployed", "deploy")


# --- a full checkpoint database, over HTTP ------------------------------------------------------------


def ended(http: httpx.Client, plan_id: str) -> str | None:
    """The plan's status once its run has ended (the audit node has written it), else None."""
    view = http.get(f"/plans/{plan_id}").json()
    return view["status"] if not view["waiting_for"] and view["status"] != "planning" else None


def fill_the_disk(app_state, pages: int | None = None) -> None:
    """Cap the checkpoint database at its current size (SQLite answers "database or disk is full"), or
    lift the cap. On the service's own connection."""
    saver = app_state.orchestrator.graph.checkpointer
    saver.setup()  # its tables exist before the disk fills
    with saver.lock:
        count = pages or saver.conn.execute("PRAGMA page_count").fetchone()[0]
        saver.conn.execute(f"PRAGMA max_page_count = {count}")


def test_a_full_disk_answers_503_and_the_retry_with_the_same_key_makes_the_plan(settings, live_server):
    from api import create_app
    from api.auth import create_dev_keys

    keys = create_dev_keys(settings.api_keys_path)
    app = create_app(settings)
    url = live_server(app)
    alice = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys[ALICE]}"}, timeout=60)
    fill_the_disk(app.state)

    body = {"intent": STAGING_DIRECT, "env": "staging"}
    refused = alice.post("/plans", json=body, headers={"Idempotency-Key": "k-full-1"})
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "unavailable" and "full" in refused.json()["message"]
    assert "\n" not in refused.json()["message"]
    [row] = alice.get("/plans").json()
    assert row["status"] == "planning"
    assert alice.get(f"/plans/{row['plan_id']}").json()["status"] == "planning"  # shown as it is, not a 404

    fill_the_disk(app.state, pages=1_000_000)  # space again
    retried = alice.post("/plans", json=body, headers={"Idempotency-Key": "k-full-1"})
    assert retried.status_code in (201, 202), retried.text
    assert retried.json()["plan_id"] == row["plan_id"]
    wait_until(lambda: ended(alice, row["plan_id"]) == "deployed", what="the plan to deploy")
    assert [p["plan_id"] for p in alice.get("/plans").json()] == [row["plan_id"]]
    assert steps(settings, row["plan_id"])[-1] == "deploy"


# --- idempotent submissions and decisions ---------------------------------------------------------------


@pytest.fixture
def http(settings, start_service):
    url, keys = start_service()

    def as_(person: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys[person]}"}, timeout=120)

    return as_


def test_sixteen_concurrent_retries_with_one_key_make_one_plan(http, settings):
    alice = http(ALICE)
    body = {"intent": STAGING_DIRECT, "env": "staging"}
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: http(ALICE).post("/plans", json=body, headers={"Idempotency-Key": "retry-1"}), range(16)))

    assert {a.status_code for a in answers} <= {201, 202}, [a.text for a in answers if a.status_code >= 300]
    assert len({a.json()["plan_id"] for a in answers}) == 1
    [plan] = alice.get("/plans").json()
    assert wait_until(lambda: ended(alice, plan["plan_id"]), what="the plan to end") == "deployed"
    assert steps(settings, plan["plan_id"]).count("deploy") == 1

    # The same key with another request is refused and changes nothing; a new key makes a new plan.
    other = alice.post("/plans", json=body | {"intent": STAGING_PENDING}, headers={"Idempotency-Key": "retry-1"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["message"]
    assert len(alice.get("/plans").json()) == 1
    assert alice.post("/plans", json=body, headers={"Idempotency-Key": "retry-2"}).json()["plan_id"] != plan["plan_id"]


@pytest.mark.parametrize("key", ["", "x" * 201, "two words", "caf\u00e9"])
def test_a_malformed_idempotency_key_is_refused_in_one_line(http, key):
    answer = http(ALICE).post("/plans", json={"intent": STAGING_DIRECT, "env": "staging"}, headers={"Idempotency-Key": key.encode()})
    assert answer.status_code == 422, answer.text
    assert http(ALICE).get("/plans").json() == []


def test_a_retried_decision_answers_as_the_first_and_a_changed_one_is_refused(http, settings):
    alice, bob = http(ALICE), http(BOB)
    plan_id = alice.post("/plans", json={"intent": STAGING_PENDING, "env": "staging"}).json()["plan_id"]
    decide = {"approved": True, "reason": "capacity reviewed"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: http(BOB).post(f"/plans/{plan_id}/decisions", json=decide, headers={"Idempotency-Key": "d-1"}), range(8))
        )

    assert {a.status_code for a in answers} <= {200, 202}, [a.text for a in answers if a.status_code >= 300]
    assert wait_until(lambda: ended(bob, plan_id), what="the plan to end") == "deployed"
    view = bob.get(f"/plans/{plan_id}").json()
    assert [a["approver"] for a in view["approvals"]] == [BOB]
    assert steps(settings, plan_id).count("approval.decision.1") == 1 and "approval.decision.2" not in steps(settings, plan_id)

    changed = bob.post(f"/plans/{plan_id}/decisions", json=decide | {"reason": "changed my mind"}, headers={"Idempotency-Key": "d-1"})
    assert changed.status_code == 409
    # Without a key a repeat is what it always was: a refusal, since bob has decided.
    assert bob.post(f"/plans/{plan_id}/decisions", json=decide).status_code == 409


# --- every Postgres connection terminated ---------------------------------------------------------------


def test_every_postgres_connection_terminated_costs_no_request(settings, start_service, postgres_url):
    """The server terminates every connection of this service (a failover, an admin, a restart): the pools
    check a connection before lending it, so 16 clients submitting right after get answers, not 500s."""
    import uuid

    import psycopg

    name = f"agentops-crash-{uuid.uuid4().hex[:8]}"  # only this test's connections are terminated
    url = f"{postgres_url}&application_name={name}"
    base, keys = start_service(database_url=url)

    def client(person: str) -> httpx.Client:
        return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys[person]}"}, timeout=120)

    body = {"intent": STAGING_DIRECT, "env": "staging"}
    assert client(ALICE).post("/plans", json=body).status_code in (201, 202)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        terminated = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()[0]
    assert terminated >= 2  # the checkpointer's pool and the index's, at least

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: client(ALICE).post("/plans", json=body), range(16)))
    assert [a.status_code for a in answers if a.status_code not in (201, 202)] == [], [a.text for a in answers]
    for answer in answers:
        plan_id = answer.json()["plan_id"]
        assert wait_until(lambda plan_id=plan_id: ended(client(VIEWER), plan_id), what="the plan to end") == "deployed"
    assert len(client(ALICE).get("/plans", params={"limit": 100}).json()) == 17


@pytest.mark.parametrize("approved", [True, False])
def test_a_decision_claimed_by_a_process_that_died_before_resuming_is_carried_out(orchestrator, settings, approved):
    """Killed between the claim (the index says approved, or rejected: a terminal status) and the resume."""
    plan_id = orchestrator.run(STAGING_PENDING, "staging", ALICE)["plan_id"]
    core = orchestrator.core
    decision = Decision(approved=approved, approver=BOB, reason="reviewed")
    orchestrator.index.mark_running(plan_id, core.deps.clock())  # what `decide` does before it claims
    core._claim(plan_id, decision, ("approval",))

    orchestrator.recover()
    status = "deployed" if approved else "rejected"
    assert_one_story(orchestrator, settings, plan_id, status, "deploy" if approved else "approval.decision.1")


def test_an_expiry_claimed_by_a_process_that_died_before_resuming_is_carried_out(orchestrator, settings):
    from datetime import timedelta

    plan_id = orchestrator.run(STAGING_PENDING, "staging", ALICE)["plan_id"]
    later = orchestrator.deps.clock() + timedelta(hours=25)
    orchestrator.deps.clock = lambda: later
    assert orchestrator.core._claim_expiries() == [plan_id]  # claimed; the process dies before the run ends

    orchestrator.recover()
    assert_one_story(orchestrator, settings, plan_id, "expired", "approval.expired")
