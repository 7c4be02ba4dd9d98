"""Shared fixtures: the real policy from knowledge_base/ and a builder of node dependencies from fakes,
so a node test builds exactly the dependencies it exercises and nothing global."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import FIXED_NOW, FakeRetriever, MemoryAudit, MemoryRecorder, RecordingDeployer, ScriptedPlanner

from agentops.policy import Policy, load_policy
from agentops.ports import Dependencies, PlannerOutput
from agentops.settings import PROJECT_ROOT, Settings


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


POSTGRES_URL = os.environ.get("AGENTOPS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url():
    """A fresh schema on the test Postgres server, named in the URL's search_path so every connection
    (pools, the checkpointer, other processes) sees only this test's rows; dropped at the end. Skipped
    with the reason where no server answers (a failure in CI)."""
    import uuid

    from fakes import needs

    from tools.storage.database import postgres_reachable

    needs(postgres_reachable(POSTGRES_URL), f"no Postgres server answers at {POSTGRES_URL} (set AGENTOPS_TEST_DATABASE_URL)")
    import psycopg

    schema = f"agentops_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    yield url
    from tools.storage.database import close_pools

    close_pools(url)  # this process's pools on the schema: idle connections would linger for minutes
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def live_server():
    """Serve ASGI apps with uvicorn on free 127.0.0.1 ports, each in its own thread (its own event loop,
    lifespan included), as a user's client meets them. `start(app)` returns the base URL; all stop at the end."""
    import threading

    import uvicorn
    from fakes import wait_until

    running = []

    def start(app) -> str:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started or not thread.is_alive(), what="the HTTP server to start")
        assert server.started, "the HTTP server did not start (see the log above)"
        running.append((server, thread))
        return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def start_service(settings, live_server):
    """The HTTP service (api.create_app) on a live server with the demo API keys.
    `start(clock=None, **setting_changes)` returns (base URL, {person: API key})."""
    from api import create_app
    from api.auth import create_dev_keys

    def start(clock=None, **changes):
        configured = Settings(home=settings.home, _env_file=None, **changes)
        keys = create_dev_keys(configured.api_keys_path) or {}
        return live_server(create_app(configured, clock=clock)), keys

    return start
