"""The HTTP service under concurrent clients, through real HTTP (httpx.AsyncClient against uvicorn on
127.0.0.1): every answer is 2xx and says where the plan stands, and every plan ends exactly once — on
the auto-deploy path (staging), the approval path (prod, then approved by another person), the
blocked path (dev) and the unclear one (a typo the planner asks about)."""

from __future__ import annotations

import asyncio
import typing

import httpx
import pytest
from fakes import wait_until

from agentops.schemas import TERMINAL_STATUSES, PlanStatus
from api.observe import Metrics, Observer
from api.routes import accepted
from api.runs import Runs

CLIENTS = 16
ALICE, BOB = "alice@example.com", "bob@example.com"
INTENTS = {
    "staging": ("roll out sentiment-bert v2 to staging on 2 ml.m5.xlarge instances", "staging"),
    "prod": ("deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%", "prod"),
    "dev": ("deploy image-tagger to dev using ml.g5.2xlarge", "dev"),
    "unclear": ("deploy sentiment-bert v2 to staging on 2 ml.m5.xlrage", "staging"),
}


def client(url: str, key: str) -> httpx.AsyncClient:
    # One connection per client (a pool of one): a connection the server dropped would fail the next request.
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=httpx.Limits(max_connections=1))


async def together(url: str, key: str, requests: list[tuple[str, str, dict | None]]) -> list[httpx.Response]:
    """Each (method, path, body) from its own client, all at once."""
    clients = [client(url, key) for _ in requests]
    try:
        return await asyncio.gather(*(c.request(m, path, json=body) for c, (m, path, body) in zip(clients, requests, strict=True)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def submit_all(url: str, key: str, path_name: str, n: int = CLIENTS) -> list[httpx.Response]:
    intent, env = INTENTS[path_name]
    return asyncio.run(together(url, key, [("POST", "/plans", {"intent": intent, "env": env})] * n))


def settled(api: httpx.Client, plan_ids: list[str], status: str) -> None:
    """Wait until every plan is in `status` (work continues in the background after a 202)."""
    wait_until(lambda: all(api.get(f"/plans/{p}").json()["status"] == status for p in plan_ids), timeout=120, what=f"plans {status}")


def assert_ended_once(api: httpx.Client, plan_ids: list[str], status: str, final_step: str) -> None:
    """The index lists each plan once, in `status`; its audit trail holds the final step once; the chain verifies."""
    listed = [row["plan_id"] for row in api.get("/plans", params={"status": status, "limit": 500}).json()]
    assert sorted(p for p in listed if p in plan_ids) == sorted(plan_ids)
    for plan_id in plan_ids:
        steps = [e["step"] for e in api.get(f"/plans/{plan_id}/audit").json()]
        assert len(steps) == len(set(steps)), steps
        assert steps.count(final_step) == 1, steps
    assert api.get("/audit/verify").json()["ok"] is True


@pytest.fixture(params=["sqlite", "postgres"])
def served(request):
    # The schema first, so it is dropped after the server has stopped (fixtures end in reverse order).
    changes = {"database_url": request.getfixturevalue("postgres_url")} if request.param == "postgres" else {}
    url, keys = request.getfixturevalue("start_service")(**changes)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys[ALICE]}"}, timeout=60) as api:
        yield url, keys, api


def test_concurrent_auto_deploys_all_answer_and_all_deploy_once(served):
    url, keys, api = served
    answers = submit_all(url, keys[ALICE], "staging")
    assert [a.status_code for a in answers if a.status_code not in (201, 202)] == []
    for answer in answers:
        body = answer.json()
        if answer.status_code == 202:  # deploying in the background: the plan as the deploy step got it
            assert (body["status"], body["waiting_for"], body["running"]) == ("approved", ["deploy"], True)
            assert body["config"]["instance_type"] == "ml.m5.xlarge" and body["verdict"]["allowed"] is True
        else:  # the run ended before the request looked
            assert (body["status"], body["running"]) == ("deployed", False)
    plan_ids = [a.json()["plan_id"] for a in answers]
    assert len(set(plan_ids)) == CLIENTS
    settled(api, plan_ids, "deployed")
    assert_ended_once(api, plan_ids, "deployed", "deploy")


def test_concurrent_prod_intents_pause_then_concurrent_approvals_deploy_each_once(served):
    url, keys, api = served
    answers = submit_all(url, keys[ALICE], "prod")
    assert [a.status_code for a in answers] == [201] * CLIENTS
    assert {(a.json()["status"], tuple(a.json()["waiting_for"])) for a in answers} == {("pending_approval", ("approval",))}
    plan_ids = [a.json()["plan_id"] for a in answers]
    assert_ended_once(api, plan_ids, "pending_approval", "approval.requested")

    decisions = asyncio.run(
        together(url, keys[BOB], [("POST", f"/plans/{p}/decisions", {"approved": True, "reason": "ok"}) for p in plan_ids])
    )
    assert [d.status_code for d in decisions if d.status_code not in (200, 202)] == []
    assert {d.json()["status"] for d in decisions} <= {"approved", "deployed"}
    settled(api, plan_ids, "deployed")
    assert_ended_once(api, plan_ids, "deployed", "deploy")


def test_concurrent_blocked_intents_all_answer_blocked_once(served):
    url, keys, api = served
    answers = submit_all(url, keys[ALICE], "dev")
    assert [a.status_code for a in answers] == [201] * CLIENTS
    assert {a.json()["status"] for a in answers} == {"blocked"}
    assert {a.json()["verdict"]["violations"][0]["rule"] for a in answers} == {"instance_type.not_allowed"}
    assert_ended_once(api, [a.json()["plan_id"] for a in answers], "blocked", "guardrail.1")


def test_concurrent_unclear_intents_all_answer_with_the_question_once(served):
    url, keys, api = served
    answers = submit_all(url, keys[ALICE], "unclear")
    assert [a.status_code for a in answers] == [201] * CLIENTS
    assert {a.json()["status"] for a in answers} == {"needs_clarification"}
    assert all("did you mean ml.m5.xlarge?" in a.json()["question"] for a in answers)
    assert_ended_once(api, [a.json()["plan_id"] for a in answers], "needs_clarification", "plan.1")


def test_all_paths_at_once_answer_2xx(served):
    url, keys, api = served

    async def mixed() -> list[httpx.Response]:
        requests = [("POST", "/plans", {"intent": intent, "env": env}) for intent, env in INTENTS.values()] * 6
        return await together(url, keys[ALICE], requests)

    answers = asyncio.run(mixed())
    assert len(answers) >= CLIENTS
    assert [a.status_code for a in answers if a.status_code not in (201, 202)] == []
    ended = {a.json()["plan_id"] for a in answers if a.json()["status"] != "pending_approval"}
    wait_until(lambda: all(api.get(f"/plans/{p}").json()["status"] in TERMINAL_STATUSES for p in ended), timeout=120, what="plans ended")


@pytest.mark.parametrize("status", typing.get_args(PlanStatus))
def test_the_answer_model_takes_every_status(status):
    """Whatever statuses the domain adds, the HTTP answer can carry them (built from the type itself)."""
    view = {"plan_id": "p1", "status": status, "env": "prod", "requester": ALICE, "intent": "deploy x", "waiting_for": []}
    answer = accepted(view, running=False)
    assert answer.status == status and answer.links.stream == "/plans/p1/stream"


def test_runs_beyond_the_limit_wait_their_turn_and_all_finish():
    """A burst of work queues on the event loop instead of holding database locks and threads all at once."""

    async def burst() -> tuple[int, list[dict]]:
        runs, release = Runs(Observer(Metrics(), None), max_running=3), asyncio.Event()
        running, most = 0, 0

        async def work(on_task) -> dict:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1
            return {"plan_id": "p"}

        started = [runs.start(f"p{n}", work) for n in range(10)]
        await asyncio.sleep(0)  # let the first ones start
        release.set()
        views = [(await runs.settle(run)).view for run in started]
        return most, views

    most, views = asyncio.run(burst())
    assert most == 3 and views == [{"plan_id": "p"}] * 10
