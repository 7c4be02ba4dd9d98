"""Shared fixtures: the real policy from knowledge_base/ and a builder of node dependencies from fakes,
so a node test builds exactly the dependencies it exercises and nothing global."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agentops.policy import Policy, load_policy
from agentops.settings import PROJECT_ROOT, Settings
from fakes import FIXED_NOW, FakeRetriever, MemoryAudit, MemoryRecorder, RecordingDeployer, ScriptedPlanner
from graph.context import Dependencies, PlannerOutput

@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", _env_file=None)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(PROJECT_ROOT / "knowledge_base")


@pytest.fixture
def make_deps(settings: Settings, policy: Policy):
    """Build Dependencies from fakes; pass keyword overrides for the parts a test exercises."""

    def build(**overrides: Any) -> Dependencies:
        deps = Dependencies(
            settings=settings,
            policy=policy,
            retriever=FakeRetriever(),
            planner=ScriptedPlanner(PlannerOutput(planner="scripted", config=None, error="no script")),
            deployer=RecordingDeployer(),
            audit_log=MemoryAudit(),
            plan_index=MemoryRecorder(),
            clock=lambda: FIXED_NOW,
        )
        return replace(deps, **overrides)

    return build


