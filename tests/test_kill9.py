"""kill -9 of a real `agentops serve` (SQLite under its AGENTOPS_HOME, execute mode on moto's server), at
each kind of AWS call of each path (auto-deploy, pending, approve), then a restart: every accepted plan ends
where it should, its index row, checkpoint and last audit event tell one story, and nothing is created
twice on "AWS".

Where to kill is chosen without any hook in the product: a proxy in front of moto holds the first request
of each AWS operation (the request reached moto; the service hears nothing), the test kills the service
there, restarts it, and start-up recovery carries the plan on — re-running the node, whose earlier calls
now pass — until it reaches the next operation not held yet. So one plan is killed once at each kind of
call it makes, in resolve, deploy and watch.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import threading
import urllib.request

import httpx
import pytest
from aws_testing import REGION, ROLE_ARN, aws_env, client, moto, moto_server  # noqa: F401  (pytest fixtures)
from fakes import wait_until
from served import ServedProcess

from api.auth import create_dev_keys
from tools.audit.local import SqliteAuditLog
from tools.storage.plan_index import PlanIndex

STAGING_DIRECT = "deploy churn-predictor v1 to staging on 2 ml.m5.large"
STAGING_PENDING = "deploy churn-predictor v1 to staging on 3 ml.m5.large"  # 3 instances: a human decides
ALICE, BOB, VICTOR = "alice@example.com", "bob@example.com", "victor@example.com"
MAX_KILLS = 40  # a bound: a plan makes far fewer distinct AWS calls


def operation(target: str, path: str, body: bytes) -> str:
    """The AWS operation of a request: JSON protocols name it in X-Amz-Target, rpc-v2-cbor in the path,
    query protocols in the body's Action."""
    if target:
        return target.rsplit(".", 1)[-1]
    if "/operation/" in path:
        return path.rsplit("/", 1)[-1]
    action = re.search(rb"Action=([A-Za-z]+)", body)
    return action.group(1).decode() if action else path


class HoldEachNewCall:
    """A pass-through proxy to moto that holds the answer to the first request of each AWS operation
    until `release()`; `held` is set while one is held."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.seen: set[str] = set()
        self.calls: list[str] = []
        self.held, self.released = threading.Event(), threading.Event()
        self.holding = False  # off until the service is up: start-up reads pass
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                proxy.forward(self)

            def do_GET(self):
                proxy.forward(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        with self.lock:
            self.held.clear()
            self.released.set()
            self.released = threading.Event()

    def forward(self, handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.upstream + handler.path, data=body or None, headers=headers, method=handler.command)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, answer_headers, payload = answer.status, answer.headers.items(), answer.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, payload = error.code, error.headers.items(), error.read()
        call = operation(handler.headers.get("X-Amz-Target", ""), handler.path, body)
        with self.lock:
            self.calls.append(call)
            hold = self.holding and call not in self.seen and not self.held.is_set()
            if hold:
                self.seen.add(call)
                self.held.set()
                released = self.released
        if hold:
            released.wait(timeout=120)
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
        self.holding = False
        self.release()
        self.server.shutdown()


@pytest.fixture
def service(tmp_path, moto):  # noqa: F811  (the fixture imported above)
    proxy = HoldEachNewCall(moto)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTOPS_", "AWS_"))} | {
        "AGENTOPS_HOME": str(home),
        "EXECUTE": "true",
        "AGENTOPS_AWS_ENDPOINT_URL": proxy.url,
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
        "COLUMNS": "200",
    }
    home.mkdir(parents=True)
    keys = create_dev_keys(home / "api-keys.json")
    running = ServedProcess(home, env)
    yield running, proxy, keys
    proxy.close()
    running.stop()
    log = running.log.read_text() if running.log.exists() else ""
    assert "Traceback" not in log, log[-4000:]


def as_(service: ServedProcess, keys: dict[str, str], person: str) -> httpx.Client:
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {keys[person]}"}, timeout=120)


def kill_at_each_new_call(service: ServedProcess, proxy: HoldEachNewCall, act) -> int:
    """Start the service, `act()` (a request whose answer may never come), then kill -9 at each new AWS call
    and restart until the work goes through without one. The number of kills."""
    kills = 0
    service.start()
    proxy.holding = True
    worker = threading.Thread(target=act, daemon=True)
    worker.start()
    while kills < MAX_KILLS:
        if not wait_until(
            lambda: proxy.held.is_set() or not worker.is_alive() and not _busy(service), timeout=120, what="a held call or the end"
        ):
            break
        if not proxy.held.is_set():
            break
        service.kill9()
        kills += 1
        proxy.release()
        service.start()  # start-up recovery carries the plan on, to its next new call
    proxy.holding = False
    return kills


def _busy(service: ServedProcess) -> bool:
    """Whether the service still has a plan in flight (its index marks runs until they pause or end)."""
    return bool(PlanIndex(service.home / "agentops.sqlite").running())


def assert_one_story(service: ServedProcess, keys: dict[str, str], plan_id: str, status: str, last_step: str) -> None:
    view = wait_until(
        lambda: (v := as_(service, keys, VICTOR).get(f"/plans/{plan_id}").json())["status"] == status and not _busy(service) and v,
        timeout=120,
        what=f"plan {plan_id} to be {status}",
    )
    assert view["waiting_for"] == (["approval"] if status == "pending_approval" else []), view
    index = PlanIndex(service.home / "agentops.sqlite")
    assert index.get(plan_id).status == status
    events = SqliteAuditLog(service.home / "agentops.sqlite").events(plan_id)
    steps = [e.step for e in events]
    assert steps[-1] == last_step and len(steps) == len(set(steps)), steps
    if last_step == "watch.result":
        assert events[-1].payload["status"] == status, events[-1].payload


def one_of_each(moto_url: str) -> list[str]:
    sagemaker = client("sagemaker", moto_url)
    endpoints = [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    assert len(sagemaker.list_models()["Models"]) == len(endpoints)
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == len(endpoints)
    return sorted(endpoints)


@pytest.mark.timeout(1200)  # a restart per kill
def test_auto_deploy_killed_at_each_aws_call_deploys_once(service, moto):  # noqa: F811
    running, proxy, keys = service
    submitted: list[str] = []

    def submit() -> None:
        with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {keys[ALICE]}"}, timeout=120) as alice:
            try:
                submitted.append(alice.post("/plans", json={"intent": STAGING_DIRECT, "env": "staging"}).status_code)
            except httpx.TransportError:
                submitted.append(0)  # killed before it answered

    kills = kill_at_each_new_call(running, proxy, submit)
    [plan] = PlanIndex(running.home / "agentops.sqlite").list()
    assert kills >= 3, f"resolve, deploy and watch each call AWS: {proxy.calls}"
    assert_one_story(running, keys, plan.plan_id, "deployed", "watch.result")
    assert one_of_each(moto) == ["churn-predictor-staging"]


@pytest.mark.timeout(1500)
def test_a_pending_plan_then_its_approval_killed_at_each_aws_call_deploy_once(service, moto):  # noqa: F811
    running, proxy, keys = service

    def submit() -> None:
        with contextlib.suppress(httpx.TransportError):  # killed before it answered
            as_(running, keys, ALICE).post("/plans", json={"intent": STAGING_PENDING, "env": "staging"})

    kill_at_each_new_call(running, proxy, submit)
    [plan] = PlanIndex(running.home / "agentops.sqlite").list()
    assert_one_story(running, keys, plan.plan_id, "pending_approval", "approval.requested")
    assert one_of_each(moto) == []
    running.stop()

    def approve() -> None:
        with contextlib.suppress(httpx.TransportError):
            as_(running, keys, BOB).post(f"/plans/{plan.plan_id}/decisions", json={"approved": True, "reason": "ok"})

    kills = kill_at_each_new_call(running, proxy, approve)
    assert kills >= 2, f"deploy and watch each call AWS: {proxy.calls}"
    assert_one_story(running, keys, plan.plan_id, "deployed", "watch.result")
    assert one_of_each(moto) == ["churn-predictor-staging"]
