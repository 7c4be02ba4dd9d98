"""The HTTP service through real HTTP (httpx against uvicorn on 127.0.0.1), with the real checkpointer,
plan index, audit log and dry-run deployer: routes, roles, refusals, progress streams, metrics, OpenAPI."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes import wait_until
from prometheus_client.parser import text_string_to_metric_families

from agentops.settings import PROJECT_ROOT
from api.auth import add_key

PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"
ALICE, BOB, CAROL, VICTOR, ADMIN = "alice@example.com", "bob@example.com", "carol@example.com", "victor@example.com", "admin@example.com"


class Clock:
    """The workflow's clock, moved forward by the test (approval requests expire after 24 h)."""

    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Api:
    """One person's view of the service: an httpx client carrying their API key."""

    def __init__(self, url: str, key: str | None):
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=60)

    def submit(self, intent: str = PROD_INTENT, env: str = "prod", **extra) -> httpx.Response:
        return self.http.post("/plans", json={"intent": intent, "env": env, **extra})

    def decide(self, plan_id: str, approved: bool = True, reason: str = "reviewed") -> httpx.Response:
        return self.http.post(f"/plans/{plan_id}/decisions", json={"approved": approved, "reason": reason})

    def plan(self, plan_id: str) -> dict:
        response = self.http.get(f"/plans/{plan_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def steps(self, plan_id: str) -> list[str]:
        return [e["step"] for e in self.http.get(f"/plans/{plan_id}/audit").json()]

    def stream(self, plan_id: str) -> list[tuple[str, dict]]:
        """Read a plan's event stream to its end: [(event, data)]."""
        events, kind = [], None
        with self.http.stream("GET", f"/plans/{plan_id}/stream") as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))
        return events


@pytest.fixture
def service(start_service):
    """Start the service (optionally with a clock or settings) and get a client per person."""

    def start(clock=None, **changes):
        url, keys = start_service(clock=clock, **changes)

        def as_(person: str | None) -> Api:
            return Api(url, keys.get(person, person))

        as_.url, as_.keys = url, keys
        return as_

    return start


@pytest.fixture
def api(service):
    return service()


def pending_plan(api) -> str:
    response = api(ALICE).submit()
    assert response.status_code == 201 and response.json()["status"] == "pending_approval", response.text
    return response.json()["plan_id"]


def assert_refused(response: httpx.Response, status: int, code: str, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and words in body["message"], body
    assert "Traceback" not in response.text


# --- credentials and roles ----------------------------------------------------------------------------


def test_health_is_open_and_every_other_route_needs_a_key(api):
    anonymous, stranger = api(None), api("ak_not-a-key-anyone-was-given")
    assert anonymous.http.get("/healthz").json() == {"status": "ok"}
    assert anonymous.http.get("/readyz").json()["status"] == "ready"
    routes = anonymous.http.get("/openapi.json").json()["paths"]
    checked = 0
    for path, methods in routes.items():
        if path in ("/healthz", "/readyz"):
            continue
        url = path.replace("{plan_id}", "0123abcd")
        for method in methods:
            for client, words in ((anonymous, "no credentials"), (stranger, "unknown API key")):
                response = client.http.request(method.upper(), url, json={})
                assert_refused(response, 401, "unauthorized", words)
                assert response.headers["www-authenticate"] == "Bearer"
                checked += 1
    assert checked >= 2 * 14, "every documented route was tried"


def test_each_role_may_do_its_part_and_no_more(api):
    plan_id = pending_plan(api)
    viewer, requester, approver = api(VICTOR), api(ALICE), api(BOB)
    for path in ("/plans", "/approvals", f"/plans/{plan_id}", f"/plans/{plan_id}/audit", "/metrics", "/audit/verify", "/me"):
        assert viewer.http.get(path).status_code == 200, path
    assert_refused(viewer.submit(), 403, "forbidden", "victor@example.com has viewer; this needs the requester role")
    assert_refused(viewer.decide(plan_id), 403, "forbidden", "needs the approver role")
    assert_refused(requester.decide(plan_id), 403, "forbidden", "alice@example.com has requester; this needs the approver role")
    assert_refused(approver.submit(), 403, "forbidden", "needs the requester role")
    assert api(ALICE).plan(plan_id)["status"] == "pending_approval"

    # admin may do both — but, like anyone, never decide on a plan they asked for
    admin = api(ADMIN)
    own = admin.submit().json()["plan_id"]
    assert_refused(admin.decide(own), 403, "forbidden", "admin@example.com requested plan")
    assert admin.decide(plan_id).json()["decision"]["approver"] == ADMIN
    assert api(BOB).http.get("/me").json() == {"name": BOB, "display": BOB, "roles": ["approver"], "via": "api_key"}


def test_x_api_key_header_works_too(api):
    response = httpx.get(f"{api.url}/me", headers={"X-API-Key": api.keys[VICTOR]})
    assert response.json()["name"] == VICTOR


# --- the workflow over HTTP -----------------------------------------------------------------------------


def test_a_prod_intent_waits_for_an_approver_then_deploys_in_the_background(api):
    created = api(ALICE).submit()
    assert created.status_code == 201
    plan = created.json()
    plan_id = plan["plan_id"]
    assert created.headers["location"] == f"/plans/{plan_id}" and plan["links"]["stream"] == f"/plans/{plan_id}/stream"
    assert plan["requester"] == ALICE and plan["running"] is False and plan["waiting_for"] == ["approval"]
    assert plan["peak_cost_usd"] == pytest.approx(2.816) and plan["approvers_required"] == 1
    [waiting] = api(VICTOR).http.get("/approvals").json()
    assert waiting["plan_id"] == plan_id and waiting["endpoint_name"] == "fraud-detector-prod"

    detail = api(BOB).plan(plan_id)
    assert detail["evidence"] and detail["config"]["instance_type"] == "ml.g5.xlarge"
    assert "fraud-detector-prod" in detail["change"]["summary"], "what the plan changes on its endpoint"

    decided = api(BOB).decide(plan_id, reason="capacity reviewed")
    assert decided.status_code == 202, "deploying runs off the request path"
    assert decided.json()["running"] is True and decided.json()["decision"]["approver"] == BOB

    events = api(BOB).stream(plan_id)
    assert events[-1][0] == "end" and events[-1][1]["status"] == "deployed"
    assert events[-1][1]["deployment"]["mode"] == "dry_run"
    assert api(VICTOR).steps(plan_id) == ["plan.1", "guardrail.1", "approval.requested", "approval.decision.1", "deploy"]
    assert api(VICTOR).http.get("/approvals").json() == []
    assert api(VICTOR).http.get("/audit/verify").json()["ok"] is True


def test_a_plan_that_needs_no_approval_deploys_and_a_blocked_one_does_not(api):
    staging = api(ALICE).submit("roll out sentiment-bert v2 to staging on 2 ml.m5.xlarge instances", "staging")
    # 202: deploying continues off the request path (how far it got by the time of the answer is a race).
    assert staging.status_code == 202 and staging.json()["running"] is True
    assert staging.json()["links"]["stream"].endswith("/stream")
    assert api(ALICE).stream(staging.json()["plan_id"])[-1][1]["status"] == "deployed"

    blocked = api(ALICE).submit("deploy image-tagger to dev using ml.g5.2xlarge", "dev")
    assert blocked.status_code == 201 and blocked.json()["status"] == "blocked"
    assert blocked.json()["verdict"]["violations"][0]["rule"] == "instance_type.not_allowed"


def test_the_stream_of_a_paused_plan_ends_at_once_with_the_plan(api):
    plan_id = pending_plan(api)
    [(kind, data)] = api(VICTOR).stream(plan_id)
    assert kind == "end" and data["status"] == "pending_approval" and data["waiting_for"] == ["approval"]
    assert api(VICTOR).http.get("/plans/0123abcd/stream").status_code == 404


# --- refusals change nothing ------------------------------------------------------------------------------


def snapshot(api, plan_id):
    plan = api(VICTOR).plan(plan_id)
    return plan["status"], plan["approvals"], api(VICTOR).steps(plan_id), api(VICTOR).http.get("/approvals").json()


def test_refused_decisions_change_nothing(api):
    plan_id = pending_plan(api)
    before = snapshot(api, plan_id)
    assert_refused(api(BOB).decide(plan_id, approved=False, reason=" "), 422, "invalid", "a rejection needs a reason")
    assert_refused(api(BOB).decide("0123abcd"), 404, "not_found", "no plan with id '0123abcd'")
    assert_refused(api(ALICE).decide(plan_id), 403, "forbidden", "needs the approver role")
    assert_refused(api("ak_wrong").decide(plan_id), 401, "unauthorized", "unknown API key")
    seed = api(BOB).http.post("/approve", json={"plan_id": plan_id, "approved": True, "approver": CAROL})
    assert_refused(seed, 403, "forbidden", "the approver is always the caller")
    assert snapshot(api, plan_id) == before

    assert api(BOB).decide(plan_id, approved=False, reason="change freeze").status_code == 200
    after = snapshot(api, plan_id)
    assert after[0] == "rejected"
    assert_refused(api(CAROL).decide(plan_id), 409, "conflict", "rejected, not waiting for approval")
    assert_refused(api(BOB).decide(plan_id), 409, "conflict", "not waiting for approval")
    assert snapshot(api, plan_id) == after


def test_nobody_approves_their_own_plan(api, settings):
    # A key added while the service runs is accepted at once (the keys file is re-read when it changes).
    dana = Api(api.url, add_key(settings.api_keys_path, "dana@example.com", ["requester", "approver"]))
    plan_id = dana.submit().json()["plan_id"]
    before = snapshot(api, plan_id)
    assert_refused(dana.decide(plan_id), 403, "forbidden", "dana@example.com requested plan")
    assert snapshot(api, plan_id) == before


def test_racing_approvers_one_wins_the_other_is_told(api):
    plan_id = pending_plan(api)
    results: dict[str, httpx.Response] = {}
    start = threading.Barrier(2)

    def decide(person):
        client = api(person)
        start.wait()
        results[person] = client.decide(plan_id)

    threads = [threading.Thread(target=decide, args=(p,)) for p in (BOB, CAROL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(r.status_code for r in results.values())
    assert codes[0] in (200, 202) and codes[1] == 409, {p: r.text for p, r in results.items()}
    winner = next(p for p, r in results.items() if r.status_code < 400)
    wait_until(lambda: api(VICTOR).plan(plan_id)["status"] == "deployed", what="the deployment")
    assert api(VICTOR).plan(plan_id)["decision"]["approver"] == winner
    assert api(VICTOR).steps(plan_id).count("approval.decision.1") == 1 and "approval.decision.2" not in api(VICTOR).steps(plan_id)


# --- two approvers, expiry ---------------------------------------------------------------------------------


@pytest.fixture
def two_approver_policy(tmp_path):
    """The real knowledge base with the prod rule changed to two approvers."""
    kb = tmp_path / "kb"
    shutil.copytree(PROJECT_ROOT / "knowledge_base", kb)
    doc = kb / "deployment-policy.md"
    text = doc.read_text()
    assert "approvers_required: {prod: 1}" in text
    doc.write_text(text.replace("approvers_required: {prod: 1}", "approvers_required: {prod: 2}"))
    return kb


def test_prod_rule_for_two_approvers_needs_two_different_people(service, two_approver_policy):
    api = service(knowledge_base_dir=two_approver_policy)
    plan_id = pending_plan(api)
    assert api(BOB).plan(plan_id)["approvers_required"] == 2

    first = api(BOB).decide(plan_id, reason="looks right")
    assert first.status_code == 200 and first.json()["status"] == "pending_approval"
    assert [d["approver"] for d in first.json()["approvals"]] == [BOB] and first.json()["waiting_for"] == ["approval"]
    assert [p["plan_id"] for p in api(VICTOR).http.get("/approvals").json()] == [plan_id], "still waiting for a second approver"

    before = snapshot(api, plan_id)
    assert_refused(api(BOB).decide(plan_id), 409, "conflict", "bob@example.com has approved plan")
    assert snapshot(api, plan_id) == before

    second = api(CAROL).decide(plan_id, reason="second pair of eyes")
    assert second.status_code == 202
    assert api(CAROL).stream(plan_id)[-1][1]["status"] == "deployed"
    decisions = api(VICTOR).http.get(f"/plans/{plan_id}/decisions").json()
    assert decisions["approvers_required"] == 2 and [d["approver"] for d in decisions["decisions"]] == [BOB, CAROL]
    steps = api(VICTOR).steps(plan_id)
    assert steps[-3:] == ["approval.decision.1", "approval.decision.2", "deploy"]


def test_an_unanswered_request_expires_on_a_timer_and_on_the_record(service):
    clock = Clock()
    api = service(clock=clock, expiry_check_seconds=0.05)
    plan_id = pending_plan(api)
    clock.now += timedelta(hours=25)
    wait_until(lambda: api(VICTOR).plan(plan_id)["status"] == "expired", what="the expiry timer")
    assert api(VICTOR).steps(plan_id)[-1] == "approval.expired"
    assert api(VICTOR).http.get("/approvals").json() == []
    before = snapshot(api, plan_id)
    assert_refused(api(BOB).decide(plan_id), 409, "expired", "expired at")
    assert snapshot(api, plan_id) == before


def test_a_decision_after_the_deadline_expires_the_plan_instead(service):
    clock = Clock()
    api = service(clock=clock)  # the timer's default period is far longer than this test
    plan_id = pending_plan(api)
    clock.now += timedelta(hours=24, seconds=1)
    assert_refused(api(BOB).decide(plan_id), 409, "expired", "expired at")
    plan = api(VICTOR).plan(plan_id)
    assert plan["status"] == "expired" and not plan.get("decision") and not plan.get("deployment")
    assert "approval.expired" in api(VICTOR).steps(plan_id)


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"intent": "x" * 2001, "env": "prod"}, "body.intent", "at most 2000 characters"),
        ({"intent": "   ", "env": "prod"}, "body.intent", "at least 1 character"),
        ({"intent": "deploy x"}, "body.env", "Field required"),
        ({"intent": "deploy x", "env": "qa"}, "body.env", "unknown environment 'qa'"),
        ({"intent": "deploy x", "env": "prod", "constraints": {"max_gpus": 2}}, "body.constraints.max_gpus", "Extra inputs"),
        (
            {"intent": "deploy x", "env": "prod", "constraints": {"max_instance_count": 0}},
            "body.constraints.max_instance_count",
            "greater than or equal to 1",
        ),
        ({"intent": "deploy x", "env": "prod", "requester": "mallory"}, "body.requester", "Extra inputs"),
        ({"intent": 42, "env": "prod"}, "body.intent", "valid string"),
    ],
)
def test_invalid_intents_are_422s_that_name_the_field(api, body, field, words):
    response = api(ALICE).http.post("/plans", json=body)
    assert response.status_code == 422, response.text
    fields = {f["field"]: f["message"] for f in response.json()["fields"]}
    assert field in fields and words in fields[field], fields
    assert api(VICTOR).http.get("/plans").json() == [], "nothing was created"


def test_malformed_requests_get_clear_4xx_and_never_a_traceback(api):
    alice = api(ALICE).http
    cases = [
        alice.post("/plans", content=b'{"intent": "deploy x", "env": ', headers={"content-type": "application/json"}),
        alice.post(
            "/plans",
            content=b'{"intent": "deploy x", "env": "prod", "constraints": {"budget_usd_per_hour": NaN}}',
            headers={"content-type": "application/json"},
        ),
        alice.post(
            "/plans",
            content=b'{"intent": "deploy x", "env": "prod", "constraints": {"max_instance_count": 1' + b"0" * 400 + b"}}",
            headers={"content-type": "application/json"},
        ),
        alice.post("/plans", content=b"\xff\xfe not json", headers={"content-type": "application/json"}),
        alice.get("/plans", params={"limit": 0}),
        alice.get("/plans", params={"status": "weird"}),
        alice.get("/plans/has spaces and ; semicolons"),
        alice.get("/no/such/route"),
        alice.delete("/plans"),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        assert set(response.json()) >= {"error", "message"} and "Traceback" not in response.text
    assert [r.status_code for r in cases[-3:]] == [422, 404, 405]
    assert api(VICTOR).http.get("/plans").json() == []


def test_a_body_over_the_limit_is_413_declared_or_streamed(api):
    huge = {"intent": "deploy x", "env": "prod", "padding": "x" * 70_000}
    assert_refused(api(ALICE).http.post("/plans", json=huge), 413, "too_large", "larger than 65536 bytes")

    def chunks():
        for _ in range(70):
            yield b"x" * 1000

    streamed = api(ALICE).http.post("/plans", content=chunks(), headers={"content-type": "application/json"})
    assert_refused(streamed, 413, "too_large", "larger than 65536 bytes")


# --- seed routes, lists, metrics, OpenAPI --------------------------------------------------------------------


def test_the_seed_routes_still_work(api):
    created = api(ALICE).http.post("/intent", json={"intent": PROD_INTENT, "env": "prod", "user": ALICE})
    assert created.status_code == 201
    plan_id = created.json()["plan_id"]
    assert_refused(
        api(ALICE).http.post("/intent", json={"intent": PROD_INTENT, "env": "prod", "user": "mallory"}),
        403,
        "forbidden",
        "the requester is always the caller",
    )
    assert [p["plan_id"] for p in api(BOB).http.get("/approvals").json()] == [plan_id]
    assert api(BOB).http.get(f"/plan/{plan_id}").json()["status"] == "pending_approval"
    decided = api(BOB).http.post("/approve", json={"plan_id": plan_id, "approved": True, "reason": "ok"})
    assert decided.status_code == 202 and decided.json()["decision"]["approver"] == BOB


def test_plans_can_be_filtered(api):
    prod = pending_plan(api)
    dev = api(ADMIN).submit("deploy image-tagger to dev using ml.g5.2xlarge", "dev").json()["plan_id"]
    viewer = api(VICTOR).http
    assert [p["plan_id"] for p in viewer.get("/plans", params={"env": "dev"}).json()] == [dev]
    assert [p["plan_id"] for p in viewer.get("/plans", params={"status": "pending_approval"}).json()] == [prod]
    assert [p["plan_id"] for p in viewer.get("/plans", params={"requester": ADMIN}).json()] == [dev]
    assert len(viewer.get("/plans", params={"limit": 1}).json()) == 1


def metric(api, name: str, **labels: str) -> float:
    """One sample from /metrics, read with Prometheus' own parser (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(api(VICTOR).http.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_metrics_count_intents_decisions_deployments_and_time_nodes(api):
    plan_id = pending_plan(api)
    api(ALICE).submit("deploy x", "qa")
    api(BOB).decide(plan_id)
    api(BOB).stream(plan_id)
    assert metric(api, "agentops_intents_total", env="prod", outcome="pending_approval") == 1
    assert metric(api, "agentops_intents_total", env="unknown", outcome="refused") == 1
    assert metric(api, "agentops_decisions_total", env="prod", outcome="approved") == 1
    assert metric(api, "agentops_deployments_total", env="prod", status="deployed") == 1
    assert metric(api, "agentops_node_duration_seconds_count", node="guardrail") == 1
    assert metric(api, "agentops_node_duration_seconds_count", node="deploy") == 1
    assert "agentops_llm_calls_total" in api(VICTOR).http.get("/metrics").text
    assert metric(api, "agentops_http_requests_total", method="POST", route="/plans/{plan_id}/decisions", status="202") == 1
    assert api(None).http.get("/metrics").status_code == 401


def test_openapi_documents_every_route_with_examples(api):
    spec = api(None).http.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    expected = {
        ("post", "/plans"),
        ("get", "/plans"),
        ("get", "/plans/{plan_id}"),
        ("get", "/plans/{plan_id}/decisions"),
        ("post", "/plans/{plan_id}/decisions"),
        ("get", "/plans/{plan_id}/audit"),
        ("get", "/plans/{plan_id}/stream"),
        ("get", "/approvals"),
        ("post", "/intent"),
        ("post", "/approve"),
        ("get", "/plan/{plan_id}"),
        ("get", "/audit/verify"),
        ("get", "/me"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    documented = {(m, p) for p, methods in spec["paths"].items() for m in methods}
    assert documented == expected
    for method, path in documented:
        operation = spec["paths"][path][method]
        assert operation.get("summary"), (method, path)
        ok = operation["responses"].get("200") or operation["responses"].get("201")
        assert any("example" in c or "examples" in c for c in ok["content"].values()), (method, path)
        if path not in ("/healthz", "/readyz"):
            assert operation.get("security") and "401" in operation["responses"], (method, path)
        if "requestBody" in operation:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            assert spec["components"]["schemas"][ref].get("examples"), ref
