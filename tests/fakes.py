"""Fakes for each node dependency, and configs the default policy allows. Imported by tests as `fakes`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from langgraph.runtime import Runtime

from agentops.approval import Caller
from agentops.policy import Policy
from agentops.ports import Dependencies, PlannerOutput, PlanRequest
from agentops.schemas import Change, Deployed, DeploymentConfig, Evidence
from agentops.settings import PROJECT_ROOT, Settings
from graph.context import run_config
from tools.sagemaker.state import plan_change

FIXED_NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SHARED_EVAL = PROJECT_ROOT.parent / "shared" / "eval"  # the evaluation samples beside the checkout


def needs(available: bool, reason: str) -> None:
    """Skip a test whose outside dependency (a server, a browser) is missing — with the reason — except
    in CI, where `.ci/run` sets AGENTOPS_REQUIRE_ALL_TESTS=1 and a missing dependency is a failure."""
    if available:
        return
    if os.environ.get("AGENTOPS_REQUIRE_ALL_TESTS") == "1":
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


def eval_cases(filename: str) -> list[Any]:
    """The lines of one evaluation sample file, as test parameters. When the file is missing (a checkout
    without ../shared), one skipped parameter says so -- and under AGENTOPS_REQUIRE_ALL_TESTS collection
    fails -- instead of silently collecting nothing."""
    path = SHARED_EVAL / filename
    if path.exists():
        return [line for line in path.read_text().splitlines() if line.strip()]
    reason = f"the evaluation samples {path} are missing (they live beside the checkout, in ../shared/eval)"
    if os.environ.get("AGENTOPS_REQUIRE_ALL_TESTS") == "1":
        raise FileNotFoundError(f"required in CI but unavailable: {reason}")
    return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="missing")]


class FakeRetriever:
    def __init__(self, evidence: list[Evidence] | None = None):
        self.evidence = evidence or [Evidence(policy="deployment-policy", section="Human approval", text="prod always", score=1.0)]
        self.queries: list[str] = []

    def search(self, query: str, k: int = 3) -> list[Evidence]:
        self.queries.append(query)
        return self.evidence[:k]


class ScriptedPlanner:
    """Returns the given outputs in order (the last one repeats)."""

    name = "scripted"

    def __init__(self, *outputs: PlannerOutput):
        self.outputs = list(outputs)
        self.requests: list[PlanRequest] = []

    def plan(self, request: PlanRequest, policy: Policy) -> PlannerOutput:
        self.requests.append(request)
        return self.outputs[min(len(self.requests), len(self.outputs)) - 1]


class RecordingDeployer:
    """Records what it is asked to deploy; cannot see what runs now (like dry-run)."""

    mode = "fake"

    def __init__(self):
        self.deployed: list[tuple[str, DeploymentConfig]] = []

    def current(self, endpoint_name: str) -> dict[str, Any] | None:
        return None

    def change(self, config: Any, plan_id: str, *, vpc: dict | None = None) -> Change:
        return plan_change(config, plan_id, Settings(), current=None, vpc=vpc)

    def deploy(
        self, config: DeploymentConfig, plan_id: str, *, approved: dict | None = None, vpc: dict | None = None, basis: dict | None = None
    ) -> dict[str, Any]:
        self.deployed.append((plan_id, config))
        return {"mode": "fake", "status": "deployed", "resources": {"endpoint": config.endpoint_name}, "calls": []}

    def finish(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return deployment


class MemoryAudit:
    def __init__(self):
        self.events: dict[tuple[str, str], dict[str, Any]] = {}

    def append(self, plan_id: str, step: str, actor: str, payload: dict[str, Any]) -> bool:
        if (plan_id, step) in self.events:
            return False
        self.events[(plan_id, step)] = {"actor": actor, "payload": payload}
        return True

    def steps(self, plan_id: str) -> list[str]:
        return [step for (pid, step) in self.events if pid == plan_id]


class MemoryRecorder:
    """Records rows; `standing` holds the deployments that stand on each (env, endpoint), newest first,
    for a test to set."""

    def __init__(self, standing: dict[tuple[str, str], list[Deployed]] | None = None):
        self.records: dict[str, dict[str, Any]] = {}
        self.deployments = standing or {}

    def record(self, state: dict[str, Any]) -> None:
        self.records[state["plan_id"]] = dict(state)

    def standing(self, env: str, endpoint_name: str, limit: int = 1) -> list[Deployed]:
        return self.deployments.get((env, endpoint_name), [])[:limit]


def runtime_for(deps: Dependencies) -> Runtime:
    return Runtime(context=deps)


def staging_config(**changes: Any) -> dict[str, Any]:
    """A config the default policy allows in staging without approval."""
    base = {
        "model_name": "churn-v1",
        "endpoint_name": "churn-staging",
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "model_data_url": "s3://models/churn/1/model.tar.gz",
        "rollback_alarms": ["ModelMonitorAlarm", "DataDriftAlarm"],
    }
    base.update(changes)
    return base


def prod_config(**changes: Any) -> dict[str, Any]:
    """A config the default policy allows in prod (which always needs approval)."""
    base = {
        "model_name": "fraud-detector-v3",
        "endpoint_name": "fraud-detector-prod",
        "instance_type": "ml.g5.xlarge",
        "instance_count": 2,
        "model_data_url": "s3://models/fraud-detector/v3/model.tar.gz",
        "rollback_alarms": ["ModelMonitorAlarm", "DataDriftAlarm"],
        "deployment_strategy": "canary",
        "canary_percent": 10,
        "data_capture_percent": 20,
        "enable_model_monitor": True,
    }
    base.update(changes)
    return base


def wait_until(condition, timeout: float = 30.0, what: str = "the condition"):
    """Poll `condition` until it returns something truthy (returned), failing after `timeout` seconds.
    For things that happen in another thread or process; never a fixed sleep."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def as_caller(thread_id: str, identity: str, *roles: str) -> dict[str, Any]:
    """A run's config driven by an authenticated `identity` holding `roles` (default: approver), as the
    service and LangGraph Server pass it (graph/context.py)."""
    return run_config(thread_id, Caller(identity, frozenset(roles or ("approver",))))
