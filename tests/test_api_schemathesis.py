"""Schemathesis against the live service's /openapi.json: generated valid and invalid requests to every
operation, with an admin's key (so they get past authentication), must never produce a server error and
must answer as documented. Bounded in examples so the whole run takes a minute or two. A stateful run chains
calls through OpenAPI links (submit a plan, then read it, decide on it, audit it).

(Schemathesis' pytest plugin does not work with this pytest — its lazy fixture reads a private attribute
pytest 9 removed — so the test drives each operation's Hypothesis strategy itself.)
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

EXAMPLES_PER_OPERATION = 25
STATEFUL_SEQUENCES = 30
INTENTS = [
    "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%",
    "deploy churn-predictor to staging on 3 ml.m5.xlarge",
    "deploy image-tagger to prod on 9 ml.p5.48xlarge",
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_input_makes_a_server_error(start_service, mode):
    url, keys = start_service()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = {"Authorization": f"Bearer {keys['admin@example.com']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 16
    if mode is GenerationMode.NEGATIVE:
        # Only operations that take input can be sent invalid input (the credentials are always ours).
        operations = [op for op in operations if len(op.body) or len(op.path_parameters) or len(op.query)]
        assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case):
            # Generated plan ids never exist, so a progress stream ends at once (404) instead of following a run.
            response = case.call(headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS, headers=headers)
            assert "Traceback" not in response.text, response.text

        no_server_error()


# OpenAPI links from a new plan to what can be done with it, so generated sequences reach real plans
# (POST /plans, then read, decide on, audit or follow it) rather than ids that never exist.
FOLLOW_UPS = {
    "Read": "#/paths/~1plans~1{plan_id}/get",
    "Decisions": "#/paths/~1plans~1{plan_id}~1decisions/get",
    "Decide": "#/paths/~1plans~1{plan_id}~1decisions/post",
    "Audit": "#/paths/~1plans~1{plan_id}~1audit/get",
    "Seed": "#/paths/~1plan~1{plan_id}/get",
}


def with_links(spec: dict) -> dict:
    """The service's OpenAPI with links added, and intents/environments narrowed to ones that make real plans
    (a free-text intent or environment is almost always refused, and a refused plan has no follow-ups)."""
    for name in ("IntentIn", "SeedIntentIn"):
        properties = spec["components"]["schemas"][name]["properties"]
        properties["intent"] = {"type": "string", "enum": INTENTS}
        properties["env"] = {"type": "string", "enum": ["prod", "staging"]}
    links = {name: {"operationRef": ref, "parameters": {"plan_id": "$response.body#/plan_id"}} for name, ref in FOLLOW_UPS.items()}
    for path in ("/plans", "/intent"):
        for status in ("201", "202"):
            spec["paths"][path]["post"]["responses"][status]["links"] = links
    return spec


def test_sequences_of_calls_make_no_server_error(start_service):
    """Stateful: generated sequences of calls (a plan submitted, then read, decided on by another person or the
    requester, audited, decided again...), each answered without a server error. Bounded: STATEFUL_SEQUENCES
    sequences of at most 6 calls."""
    from hypothesis.stateful import run_state_machine_as_test

    url, keys = start_service()
    spec = with_links(httpx.get(f"{url}/openapi.json", timeout=30).json())
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=url)
    calls: list[tuple[str, str, int]] = []

    def key_for(case) -> str:
        # Requests come from a requester, decisions from an approver (and sometimes the requester, refused).
        if case.method == "POST" and case.path in ("/plans", "/intent"):
            return keys["alice@example.com"]
        if case.method == "POST":
            return keys["bob@example.com"] if len(calls) % 3 else keys["alice@example.com"]
        return keys["admin@example.com"]

    class Machine(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Bearer {key_for(case)}"}, "timeout": 30}

        def validate_response(self, response, case, additional_checks=(), **kwargs):
            calls.append((case.method, case.path, response.status_code))
            case.validate_response(response, checks=[not_a_server_error])
            assert "Traceback" not in response.text, response.text

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=STATEFUL_SEQUENCES, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck), database=None
        ),
    )
    reached = {(method, path) for method, path, status in calls if status in (200, 201, 202, 403, 409)}
    assert ("POST", "/plans/{plan_id}/decisions") in reached, sorted(set(calls))[:40]
