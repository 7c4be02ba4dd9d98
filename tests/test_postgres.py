"""Postgres and several replicas: real `agentops serve` processes on two ports over one Postgres schema,
racing approvers, `kill -9` while a plan waits and while it deploys (execute mode on moto's server).

Needs the Postgres server of AGENTOPS_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test);
skipped with that reason where none answers.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from aws_testing import REGION, ROLE_ARN, aws_env, client, moto, moto_server  # noqa: F401  (pytest fixtures)
from fakes import wait_until
from served import AGENTOPS, ServedProcess

from agentops.schemas import TERMINAL_STATUSES, Decision
from api.auth import create_dev_keys
from tools.audit.local import AuditLog
from tools.audit.trail import AuditTrail
from tools.storage.plan_index import PlanIndex

PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"
# Staging with 3 instances needs a human (policy: peak_instance_count_at_least) and runs on moto without stubs.
STAGING_PENDING = "deploy churn-predictor v1 to staging on 3 ml.m5.large"
STAGING_PENDING_2 = "deploy fraud-scorer v1 to staging on 3 ml.m5.large"
STAGING_DIRECT = "deploy churn-predictor v1 to staging on 2 ml.m5.large"


@pytest.fixture
def cluster(tmp_path, postgres_url):
    """`start(n, **env)`: n replicas over the test's schema, sharing one API keys file; returns
    (replicas, {person: key}). All are stopped at the end."""
    keys_file = tmp_path / "api-keys.json"
    keys = create_dev_keys(keys_file)
    replicas: list[ServedProcess] = []

    def start(n: int, **extra_env: str) -> tuple[list[ServedProcess], dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_")}
        env |= {"AGENTOPS_DATABASE_URL": postgres_url, "AGENTOPS_API_KEYS_FILE": str(keys_file), "COLUMNS": "200", **extra_env}
        for _i in range(n):
            replicas.append(ServedProcess(tmp_path / f"replica-{len(replicas)}", env).start())
        return replicas, keys

    yield start
    for replica in replicas:
        replica.stop()
    logs = "".join(r.log.read_text() for r in replicas if r.log.exists())
    assert "Traceback" not in logs, logs[-4000:]


def as_(replica: ServedProcess, keys: dict[str, str], person: str) -> httpx.Client:
    return httpx.Client(base_url=replica.url, headers={"Authorization": f"Bearer {keys[person]}"}, timeout=120)


def submit(replica: ServedProcess, keys: dict[str, str], intent: str, env: str) -> dict:
    answer = as_(replica, keys, "alice@example.com").post("/plans", json={"intent": intent, "env": env})
    assert answer.status_code in (201, 202), answer.text
    return answer.json()


def terminal(replica: ServedProcess, keys: dict[str, str], plan_id: str) -> dict | None:
    view = as_(replica, keys, "victor@example.com").get(f"/plans/{plan_id}").json()
    return view if view["status"] in TERMINAL_STATUSES and not view["waiting_for"] else None


def audit_verify(postgres_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_")} | {"AGENTOPS_DATABASE_URL": postgres_url}
    return subprocess.run([AGENTOPS, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)


# --- the stores on Postgres ------------------------------------------------------------------------------


def test_concurrent_appends_from_many_writers_keep_one_valid_chain(postgres_url):
    logs = [AuditLog(postgres_url) for _ in range(4)]  # several writers, as several replicas would be
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: logs[i % 4].append(f"plan-{i % 5}", f"step-{i}", "test", {"i": i}), range(80)))
    assert all(results)
    assert logs[0].head() == 80
    assert AuditTrail(logs[0]).verify().ok
    assert not logs[1].append("plan-0", "step-0", "test", {"i": 0}), "an append is idempotent on (plan, step)"


def test_racing_decisions_on_one_plan_have_one_winner(postgres_url):
    index = PlanIndex(postgres_url)
    now = datetime.now(UTC)
    index.record(
        {
            "plan_id": "p1",
            "env": "prod",
            "requester": "alice",
            "intent": PROD_INTENT,
            "status": "pending_approval",
            "created_at": now.isoformat(),
        }
    )
    approvers = [f"approver-{i}" for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        slots = list(pool.map(lambda who: PlanIndex(postgres_url).decide("p1", Decision(approved=True, approver=who), now), approvers))
    assert [s for s in slots if s is not None] == [1]
    assert index.get("p1").status == "approved"
    assert len(index.decisions("p1")) == 1


# --- two replicas ----------------------------------------------------------------------------------------


def test_a_plan_started_on_one_replica_is_approved_on_the_other_and_racing_approvals_deploy_once(cluster, postgres_url):
    (a, b), keys = cluster(2)
    plan = submit(a, keys, PROD_INTENT, "prod")
    assert plan["status"] == "pending_approval"
    assert [p["plan_id"] for p in as_(b, keys, "bob@example.com").get("/approvals").json()] == [plan["plan_id"]]

    gate = threading.Barrier(50)

    def approve(i: int) -> int:
        replica, person = (a, b)[i % 2], ("bob@example.com", "carol@example.com")[i // 2 % 2]
        with as_(replica, keys, person) as http:
            gate.wait(timeout=60)
            return http.post(f"/plans/{plan['plan_id']}/decisions", json={"approved": True, "reason": f"race {i}"}).status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(approve, range(50)))

    assert sorted(set(codes)) in ([202, 409], [200, 409]), codes
    assert sum(code in (200, 202) for code in codes) == 1, codes
    view = wait_until(lambda: terminal(b, keys, plan["plan_id"]), timeout=60, what="the plan to end")
    assert view["status"] == "deployed"
    steps = [e["step"] for e in as_(a, keys, "victor@example.com").get(f"/plans/{plan['plan_id']}/audit").json()]
    assert steps.count("deploy") == 1 and sum(s.startswith("approval.decision.") for s in steps) == 1, steps
    assert len(as_(a, keys, "victor@example.com").get(f"/plans/{plan['plan_id']}/decisions").json()["decisions"]) == 1
    assert audit_verify(postgres_url).returncode == 0


# --- kill -9 (execute mode on moto) ----------------------------------------------------------------------


class GatedAws:
    """A pass-through HTTP proxy to moto that can hold one operation's answer: CreateEndpoint reaches moto
    (the endpoint exists) but the caller hears nothing until the gate opens — where a replica is killed."""

    def __init__(self, upstream: str, hold: str):
        self.upstream, self.hold = upstream, hold
        self.reached, self.release = threading.Event(), threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                proxy.forward(self)

            def do_GET(self):
                proxy.forward(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.upstream + handler.path, data=body or None, headers=headers, method=handler.command)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, answer_headers, payload = answer.status, answer.headers.items(), answer.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, payload = error.code, error.headers.items(), error.read()
        if handler.headers.get("X-Amz-Target", "").endswith(f".{self.hold}") and not self.release.is_set():
            self.reached.set()
            self.release.wait(timeout=120)
        try:
            handler.send_response(status)
            for key, value in answer_headers:
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the caller was killed while held

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


def execute_env(aws_url: str) -> dict[str, str]:
    return {
        "EXECUTE": "true",
        "AGENTOPS_AWS_ENDPOINT_URL": aws_url,
        "AGENTOPS_AWS_REGION": REGION,
        "AGENTOPS_AWS_MAX_ATTEMPTS": "1",
        "AGENTOPS_EXECUTION_ROLE_ARN": ROLE_ARN,
        "AGENTOPS_WATCH_POLL_SECONDS": "0.2",
        "AGENTOPS_WATCH_MAX_POLL_SECONDS": "0.5",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }


def one_of_each(moto_url: str) -> list[str]:
    """The endpoints on moto, after checking that each has exactly one model and one config."""
    sagemaker = client("sagemaker", moto_url)
    endpoints = [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    assert len(sagemaker.list_models()["Models"]) == len(endpoints)
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == len(endpoints)
    return sorted(endpoints)


def test_kill_9_while_plans_wait_loses_nothing_and_a_recorded_decision_is_carried_out(cluster, postgres_url, moto):
    (a, b), keys = cluster(2, **execute_env(moto))
    waiting = submit(a, keys, STAGING_PENDING, "staging")
    decided = submit(a, keys, STAGING_PENDING_2, "staging")
    assert waiting["status"] == decided["status"] == "pending_approval"
    # The state a replica leaves when it dies after recording a decision but before resuming the run.
    now = datetime.now(UTC)
    assert (
        PlanIndex(postgres_url).decide(
            decided["plan_id"], Decision(approved=True, approver="bob@example.com", reason="ok", decided_at=now), now
        )
        == 1
    )

    a.kill9()
    a.start()  # at start-up the replica carries out the recorded decision

    approved = as_(b, keys, "carol@example.com").post(f"/plans/{waiting['plan_id']}/decisions", json={"approved": True, "reason": "ok"})
    assert approved.status_code in (200, 202), approved.text
    for plan in (waiting, decided):
        view = wait_until(lambda plan=plan: terminal(b, keys, plan["plan_id"]), timeout=90, what=f"plan {plan['plan_id']} to end")
        assert view["status"] == "deployed", view.get("error")
    assert one_of_each(moto) == ["churn-predictor-staging", "fraud-scorer-staging"]
    assert audit_verify(postgres_url).returncode == 0


def test_kill_9_in_the_middle_of_a_deploy_finishes_it_on_restart_creating_each_resource_once(cluster, postgres_url, moto):
    gated = GatedAws(moto, hold="CreateEndpoint")
    try:
        (a, b), keys = cluster(2, **execute_env(gated.url))
        plan = submit(a, keys, STAGING_DIRECT, "staging")
        assert wait_until(lambda: gated.reached.is_set(), timeout=60, what="the deploy to reach CreateEndpoint")
        a.kill9()  # CreateEndpoint reached moto; the replica never heard back
        gated.release.set()
        assert as_(b, keys, "victor@example.com").get(f"/plans/{plan['plan_id']}").json()["status"] not in TERMINAL_STATUSES

        a.start()
        view = wait_until(lambda: terminal(b, keys, plan["plan_id"]), timeout=90, what="the plan to end")
        assert view["status"] == "deployed", view.get("error")
        assert one_of_each(moto) == ["churn-predictor-staging"]
        assert audit_verify(postgres_url).returncode == 0
    finally:
        gated.close()
