"""The REST side of state integrity, over real HTTP: a body can set no graph-owned field and no identity,
a body of the wrong type or out of range is a 422 naming the field that leaves no plan behind, and every
response (pages, static files, /docs, JSON) carries the security headers."""

from __future__ import annotations

import httpx
import pytest
from test_api import ALICE, BOB, PROD_INTENT, api, pending_plan, service  # noqa: F401  (fixtures)
from test_integrity import forged_state

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def plan_ids(api) -> list[str]:
    return [p["plan_id"] for p in api(BOB).http.get("/plans").json()]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"constraints": {"max_instance_count": 2**64}}, "body.constraints.max_instance_count"),
        ({"constraints": {"max_instance_count": -(2**64)}}, "body.constraints.max_instance_count"),
        ({"constraints": {"max_instance_count": "2"}}, "body.constraints.max_instance_count"),
        ({"constraints": {"budget_usd_per_hour": 10.0**300}}, "body.constraints.budget_usd_per_hour"),
        ({"constraints": {"budget_usd_per_hour": -5}}, "body.constraints.budget_usd_per_hour"),
        ({"constraints": {"budget_usd_per_hour": "5"}}, "body.constraints.budget_usd_per_hour"),
        ({"env": 7}, "body.env"),
        ({"intent": ["deploy"]}, "body.intent"),
    ],
)
def test_a_bad_intent_body_is_a_422_naming_the_field_and_leaves_no_plan(api, body, field):
    before = plan_ids(api)
    response = api(ALICE).http.post("/plans", json={"intent": PROD_INTENT, "env": "prod"} | body)
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]], response.json()
    assert plan_ids(api) == before


def test_a_body_can_set_no_graph_owned_field(api):
    victim = pending_plan(api)
    before = api(BOB).plan(victim)
    for key, value in forged_state(victim).items():
        response = api(ALICE).http.post("/plans", json={"intent": PROD_INTENT, "env": "prod", key: value})
        assert response.status_code == 422 and f"body.{key}" in [f["field"] for f in response.json()["fields"]], (key, response.text)
    assert plan_ids(api) == [victim]
    assert api(BOB).plan(victim) == before


@pytest.mark.parametrize(
    "body",
    [
        {"approved": "yes"},
        {"approved": "true"},
        {"approved": 1},
        {"approved": None},
        {"approved": True, "approver": BOB},
        {"approved": True, "decided_at": "2020-01-01T00:00:00Z"},
        {"approved": True, "expired": True},
        {"approved": True, "reason": 5},
    ],
)
def test_a_decision_body_is_strict_and_names_no_one(api, body):
    plan_id = pending_plan(api)
    response = api(BOB).http.post(f"/plans/{plan_id}/decisions", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"].startswith("body")
    plan = api(BOB).plan(plan_id)
    assert plan["status"] == "pending_approval" and plan["approvals"] == []


def test_every_response_carries_the_security_headers(api):
    for path in (
        "/",
        "/static/approvals.html",
        "/static/approvals.js",
        "/static/approvals.css",
        "/docs",
        "/static/docs.js",
        "/openapi.json",
        "/healthz",
        "/plans",
        "/static/nothing-here",
    ):
        response = httpx.get(api.url + path, timeout=30)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name, response.headers)
        policy = response.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path


def test_the_api_docs_load_nothing_from_another_origin(api):
    page = httpx.get(api.url + "/docs", timeout=30)
    assert page.status_code == 200 and "<script>" not in page.text and "http" not in page.text.replace("http-equiv", "")
    for asset in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css", "/static/docs.js"):
        assert httpx.get(api.url + asset, timeout=30).status_code == 200, asset
    assert httpx.get(api.url + "/redoc", timeout=30).status_code == 404, "ReDoc would load from a CDN"
