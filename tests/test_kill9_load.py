"""kill -9 of a real `agentops serve` on the embedded defaults (SQLite, dry-run) while 16 clients submit
plans on every path and an approver approves what waits, then a restart, twice: every plan the service
accepted ends where its path ends (none left planning, approved or deploying), and its index row, its
checkpoint (what GET /plans/{id} shows) and its last audit event tell one story, on a chain that verifies.

Where the kill lands is not chosen: it comes after the k-th answer, wherever the other runs are then —
between two nodes, inside the audit node's transaction, between a decision's claim and its resume. The
assertions hold for any of those points. (tests/test_kill9.py kills at each AWS call in execute mode;
tests/test_crash.py leaves each node boundary's state in-process.)
"""

from __future__ import annotations

import os
import threading
from collections import Counter

import httpx
import pytest
from fakes import wait_until
from served import ServedProcess

from api.auth import create_dev_keys
from tools.audit.local import SqliteAuditLog
from tools.storage.plan_index import PlanIndex

ALICE, BOB, VICTOR = "alice@example.com", "bob@example.com", "victor@example.com"
CLIENTS = 16
ANSWERS_BEFORE_KILL = 40
# One intent per path, and the audit step each path's record ends with.
INTENTS = [
    ("deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%", "prod"),  # pending approval
    ("roll out sentiment-bert v2 to staging on 2 ml.m5.xlarge instances", "staging"),  # auto-deploy
    ("deploy fraud-detector v3 to prod on 6 ml.p4d.24xlarge", "prod"),  # blocked
    ("deploy fraud-detector v3 to prod on two gpu boxes", "prod"),  # needs clarification
]
LAST_STEP = {
    "pending_approval": "approval.requested",
    "deployed": "deploy",
    "blocked": "guardrail.1",
    "needs_clarification": "plan.1",
}
UNFINISHED = ("planning", "approved", "deploying")


class Load:
    """16 requesters and one approver, each on its own connection, until the service stops answering."""

    def __init__(self, service: ServedProcess, keys: dict[str, str]):
        self.service, self.keys = service, keys
        self.lock = threading.Lock()
        self.answered = threading.Semaphore(0)  # one release per 2xx answer
        self.accepted: set[str] = set()
        self.approved: set[str] = set()  # decisions the service answered 2xx
        self.pending: list[str] = []
        self.refused: Counter[int] = Counter()  # non-2xx answers by status (a 409 on a decided plan is fine)
        self.threads = [threading.Thread(target=self._submit, args=(n,), daemon=True) for n in range(CLIENTS)]
        self.threads.append(threading.Thread(target=self._approve, daemon=True))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self.threads:
            thread.join(timeout=120)

    def wait_for_answers(self, count: int) -> None:
        for _ in range(count):
            assert self.answered.acquire(timeout=120), "the service stopped answering before the kill"

    def _client(self, person: str) -> httpx.Client:
        return httpx.Client(base_url=self.service.url, headers={"Authorization": f"Bearer {self.keys[person]}"}, timeout=120)

    def _submit(self, n: int) -> None:
        with self._client(ALICE) as alice:
            for i in range(n, 10_000):
                intent, env = INTENTS[i % len(INTENTS)]
                try:
                    answer = alice.post("/plans", json={"intent": intent, "env": env})
                except httpx.TransportError:
                    return  # killed
                self._count(answer)
                if answer.is_success:
                    view = answer.json()
                    with self.lock:
                        self.accepted.add(view["plan_id"])
                        if view["status"] == "pending_approval":
                            self.pending.append(view["plan_id"])

    def _approve(self) -> None:
        with self._client(BOB) as bob:
            while True:
                with self.lock:
                    plan_id = self.pending.pop() if self.pending else None
                try:
                    if plan_id is None:  # nothing waits: a cheap request, which also notices the kill
                        bob.get("/healthz")
                        continue
                    answer = bob.post(f"/plans/{plan_id}/decisions", json={"approved": True, "reason": "load test"})
                except httpx.TransportError:
                    return
                self._count(answer)
                if answer.is_success:
                    with self.lock:
                        self.approved.add(plan_id)

    def _count(self, answer: httpx.Response) -> None:
        if answer.is_success:
            self.answered.release()
        else:
            with self.lock:
                self.refused[answer.status_code] += 1


@pytest.fixture
def service(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_") and k != "EXECUTE"}
    home.mkdir(parents=True)
    keys = create_dev_keys(home / "api-keys.json")
    running = ServedProcess(home, env)
    yield running, keys
    running.stop()
    log = running.log.read_text() if running.log.exists() else ""
    assert "Traceback" not in log, log[-4000:]


def settled(service: ServedProcess) -> bool:
    """Nothing in flight and nothing left in an unfinished status: start-up recovery is done."""
    index = PlanIndex(service.home / "agentops.sqlite")
    return not index.running() and not any(index.list(status=status, limit=1) for status in UNFINISHED)


@pytest.mark.timeout(600)
def test_killed_twice_under_sixteen_clients_every_plan_ends_where_its_path_ends_on_one_record(service):
    running, keys = service
    accepted: set[str] = set()
    approved: set[str] = set()
    refused: Counter[int] = Counter()
    for _ in range(2):
        running.start()
        with Load(running, keys) as load:
            load.wait_for_answers(ANSWERS_BEFORE_KILL)
            running.kill9()
        accepted |= load.accepted
        approved |= load.approved
        refused += load.refused

    running.start()  # start-up carries on what the kills cut off
    wait_until(lambda: settled(running), timeout=180, what="start-up recovery to finish every cut-off plan")
    # A decision can reach a plan already decided, or one whose approval a kill left unresumed: 409, said in one line.
    assert set(refused) <= {409}, refused

    index = PlanIndex(running.home / "agentops.sqlite")
    audit = SqliteAuditLog(running.home / "agentops.sqlite")
    plans = index.list(limit=10_000)
    assert accepted <= {p.plan_id for p in plans}, "a plan the service answered for is missing"
    with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {keys[VICTOR]}"}, timeout=60) as victor:
        for plan in plans:
            view = victor.get(f"/plans/{plan.plan_id}").json()
            steps = [e.step for e in audit.events(plan.plan_id)]
            assert view["status"] == plan.status, (plan.plan_id, view["status"], plan.status)
            assert len(steps) == len(set(steps)), steps
            if plan.status == "failed":  # accepted, then killed before its first checkpoint was saved
                assert plan.plan_id not in accepted and steps[-1] == "recovery.failed", (plan.plan_id, steps)
            else:
                assert steps and steps[-1] == LAST_STEP[plan.status], (plan.plan_id, plan.status, steps)
            if plan.plan_id in approved or any(d.approved for d in index.decisions(plan.plan_id)):
                # Answered, or claimed by a process killed before it resumed the run: carried out either way.
                assert plan.status == "deployed", (plan.plan_id, plan.status)
        assert victor.get("/audit/verify").json()["ok"] is True
    # Every path ran (the approver may have decided every pending plan by the end).
    assert {"deployed", "blocked", "needs_clarification"} <= {p.status for p in plans} <= {*LAST_STEP, "failed"}
