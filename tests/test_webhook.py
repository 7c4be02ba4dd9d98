"""Webhook notifications, received by a local HTTP server on 127.0.0.1 that can fail or hang on purpose."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fakes import wait_until

PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"


class Receiver:
    """Records every POST; answers with the scripted statuses in turn (then 200); can hold answers back."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received: list[tuple[str, dict]] = []  # (X-AgentOps-Event-Id, body)
        self.answered: list[int] = []
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received.append((self.headers["X-AgentOps-Event-Id"], body))
                receiver.release.wait(60)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.answered.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/slack"

    def events(self) -> list[str]:
        return [body["agentops"]["event"] for _, body in self.received]


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.release.set()
        r.server.shutdown()


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def deploy_one(url: str, keys: dict[str, str]) -> str:
    alice, bob = client(url, keys["alice@example.com"]), client(url, keys["bob@example.com"])
    plan_id = alice.post("/plans", json={"intent": PROD_INTENT, "env": "prod"}).json()["plan_id"]
    assert bob.post(f"/plans/{plan_id}/decisions", json={"approved": True, "reason": "capacity ok"}).status_code == 202
    wait_until(lambda: bob.get(f"/plans/{plan_id}").json()["status"] == "deployed", what="the deployment")
    return plan_id


def test_requested_decided_and_deployed_are_posted_as_slack_messages(start_service, receiver):
    hook = receiver()
    url, keys = start_service(webhook_url=hook.url)
    plan_id = deploy_one(url, keys)
    wait_until(lambda: len(hook.received) == 3, what="three notifications")
    assert hook.events() == ["approval.requested", "approval.decided", "deployment.finished"]
    ids = [event_id for event_id, _ in hook.received]
    assert ids == [f"{plan_id}:approval.requested", f"{plan_id}:approval.decision.1", f"{plan_id}:deployment.finished"]
    requested, decided, finished = (body for _, body in hook.received)
    assert "Approval requested for `fraud-detector-prod` in *prod* by alice@example.com" in requested["text"]
    assert "$2.82/h" in requested["text"] and requested["blocks"][0]["text"]["text"] == requested["text"]
    assert "approved by bob@example.com: capacity ok" in decided["text"]
    assert "ended deployed (dry_run)" in finished["text"] and finished["agentops"]["plan_id"] == plan_id


def test_a_failing_receiver_gets_the_same_message_again_until_it_takes_it(start_service, receiver):
    hook = receiver(statuses=[500, 503])
    url, keys = start_service(webhook_url=hook.url, webhook_backoff_seconds=0.01)
    plan_id = client(url, keys["alice@example.com"]).post("/plans", json={"intent": PROD_INTENT, "env": "prod"}).json()["plan_id"]
    wait_until(lambda: hook.answered == [500, 503, 200], what="two failures, then a delivery")
    assert [event_id for event_id, _ in hook.received] == [f"{plan_id}:approval.requested"] * 3


def test_a_hanging_receiver_never_holds_up_the_workflow(start_service, receiver):
    hook = receiver()
    hook.release.clear()  # every answer waits until the test lets go
    url, keys = start_service(webhook_url=hook.url, webhook_timeout_seconds=60)
    plan_id = deploy_one(url, keys)  # submit, approve and deploy while the first message is still unanswered
    assert len(hook.received) == 1 and hook.answered == []
    hook.release.set()
    wait_until(lambda: len(hook.answered) == 3, what="the held-back messages")
    assert hook.events()[-1] == "deployment.finished" and plan_id in hook.received[-1][0]


def test_an_unreachable_receiver_is_given_up_on_without_harm(start_service):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url, keys = start_service(webhook_url=f"http://127.0.0.1:{port}/hook", webhook_attempts=2, webhook_backoff_seconds=0.01)
    deploy_one(url, keys)
    viewer = client(url, keys["victor@example.com"])
    wait_until(
        lambda: 'agentops_webhook_deliveries_total{outcome="failed"} 3.0' in viewer.get("/metrics").text, what="three messages given up on"
    )


def test_an_expired_request_is_announced(start_service, receiver):
    hook = receiver()
    now = [datetime.now(UTC)]
    url, keys = start_service(clock=lambda: now[0], webhook_url=hook.url, expiry_check_seconds=0.05)
    plan_id = client(url, keys["alice@example.com"]).post("/plans", json={"intent": PROD_INTENT, "env": "prod"}).json()["plan_id"]
    now[0] += timedelta(hours=25)
    wait_until(lambda: "approval.expired" in hook.events(), what="the expiry notice")
    body = dict(hook.received)[f"{plan_id}:approval.expired"]
    assert "expired; nothing was deployed" in body["text"]
