"""`langgraph dev` (what LangGraph Studio talks to) loads the graph from langgraph.json and runs it,
pausing at the approval interrupt and resuming through the LangGraph SDK."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fakes import needs
from langgraph_sdk import get_sync_client

from agentops.settings import PROJECT_ROOT

LANGGRAPH = Path(sys.executable).parent / "langgraph"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def langgraph_dev(tmp_path):
    needs(LANGGRAPH.exists(), "langgraph-cli[inmem] is not installed (pip install -e '.[dev]')")
    port = free_port()
    env = {**os.environ, "AGENTOPS_HOME": str(tmp_path / "state"), "LANGGRAPH_NO_VERSION_CHECK": "true"}
    log = (tmp_path / "langgraph-dev.log").open("w")
    server = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:  # wait until it answers, or give up with its log
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not start:\n{(tmp_path / 'langgraph-dev.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_studio_runs_pause_for_approval_and_resume_through_the_sdk(langgraph_dev):
    client = get_sync_client(url=langgraph_dev)
    [assistant] = client.assistants.search(graph_id="agentops")
    thread = client.threads.create()
    intent = {"intent": "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge", "env": "prod", "requester": "alice"}

    client.runs.wait(thread["thread_id"], assistant["assistant_id"], input=intent)
    state = client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["approval"]
    assert state["values"]["plan_id"] == thread["thread_id"]
    assert state["values"]["status"] == "pending_approval"

    # The requester resuming their own plan does not get past the approval node.
    client.runs.wait(thread["thread_id"], assistant["assistant_id"], command={"resume": {"approved": True, "approver": "alice"}})
    assert client.threads.get_state(thread["thread_id"])["next"] == ["approval"]

    client.runs.wait(
        thread["thread_id"], assistant["assistant_id"], command={"resume": {"approved": True, "approver": "bob", "reason": "ok"}}
    )
    final = client.threads.get_state(thread["thread_id"])
    assert final["next"] == []
    assert final["values"]["status"] == "deployed"
    assert final["values"]["deployment"]["mode"] == "dry_run"
