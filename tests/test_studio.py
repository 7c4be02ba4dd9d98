"""`langgraph dev` (what LangGraph Studio talks to) loads the graph from langgraph.json and runs it,
pausing at the approval interrupt and resuming through the LangGraph SDK — authenticated with the service's
own API keys (api/langgraph_auth.py): the requester and the approver are whoever the key names, never a
name in the input or the resume value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fakes import needs
from langgraph_sdk import get_sync_client
from served import free_port

from agentops.settings import PROJECT_ROOT
from api.auth import hash_key
from tools.audit.local import SqliteAuditLog
from tools.storage.plan_index import SqlitePlanIndex

KEYS = {
    "alice@example.com": ("ak_studio-alice-0123456789abcdef", ["requester", "approver"]),
    "bob@example.com": ("ak_studio-bob-0123456789abcdef0", ["approver"]),
    "victor@example.com": ("ak_studio-victor-0123456789abcd", ["viewer"]),
}
API_KEYS = json.dumps({"keys": [{"name": name, "roles": roles, "sha256": hash_key(key)} for name, (key, roles) in KEYS.items()]})


def client_as(url: str, person: str):
    return get_sync_client(url=url, headers={"X-API-Key": KEYS[person][0]})


LANGGRAPH = Path(sys.executable).parent / "langgraph"
PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge"


@pytest.fixture
def langgraph_dev(tmp_path):
    needs(LANGGRAPH.exists(), "langgraph-cli[inmem] is not installed (pip install -e '.[dev]')")
    port = free_port()
    env = {**os.environ, "AGENTOPS_HOME": str(tmp_path / "state"), "LANGGRAPH_NO_VERSION_CHECK": "true", "AGENTOPS_API_KEYS": API_KEYS}
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
    alice, bob = client_as(langgraph_dev, "alice@example.com"), client_as(langgraph_dev, "bob@example.com")
    [assistant] = alice.assistants.search(graph_id="agentops")
    schema = alice.assistants.get_schemas(assistant["assistant_id"])["input_schema"]
    assert set(schema["properties"]) == {"intent", "env", "constraints"}, "Studio's form: what a run may say"
    thread = alice.threads.create()
    # Every graph-owned field and a requester name in the input: none is taken.
    forged = {"plan_id": "someone-elses", "requester": "carol@example.com", "status": "approved", "decision": {"approved": True}}
    alice.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"intent": PROD_INTENT, "env": "prod", **forged})
    state = alice.threads.get_state(thread["thread_id"])
    assert state["next"] == ["approval"]
    values = state["values"]
    assert (values["plan_id"], values["requester"], values["status"]) == (thread["thread_id"], "alice@example.com", "pending_approval")
    assert not values.get("decision")

    # Someone else's input on the plan's thread would restart it under its id: refused before it runs.
    with pytest.raises(httpx.HTTPStatusError):
        bob.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"intent": "deploy other-model to dev", "env": "dev"})
    state = alice.threads.get_state(thread["thread_id"])
    assert state["next"] == ["approval"] and state["values"]["intent"] == PROD_INTENT

    # The requester resuming their own plan, naming someone else in the answer, does not get past the approval node.
    for answer in ({"approved": True, "approver": "bob@example.com"}, {"approved": True, "reason": "mine"}):
        alice.runs.wait(thread["thread_id"], assistant["assistant_id"], command={"resume": answer})
        assert alice.threads.get_state(thread["thread_id"])["next"] == ["approval"]

    bob.runs.wait(thread["thread_id"], assistant["assistant_id"], command={"resume": {"approved": True, "reason": "ok"}})
    final = bob.threads.get_state(thread["thread_id"])
    assert final["next"] == []
    assert final["values"]["status"] == "deployed" and final["values"]["decision"]["approver"] == "bob@example.com"
    assert final["values"]["deployment"]["mode"] == "dry_run"


def test_studio_plans_are_kept_apart_from_the_services(langgraph_dev, tmp_path):
    alice = client_as(langgraph_dev, "alice@example.com")
    [assistant] = alice.assistants.search(graph_id="agentops")
    thread = alice.threads.create()
    alice.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"intent": PROD_INTENT, "env": "prod"})
    home = tmp_path / "state"
    # Not offered to the service or CLI (which could not resume LangGraph Server's run), but on its own record.
    assert SqlitePlanIndex(home / "agentops.sqlite").list() == []
    assert [p.plan_id for p in SqlitePlanIndex(home / "studio.sqlite").list(status="pending_approval")] == [thread["thread_id"]]
    assert [e.step for e in SqliteAuditLog(home / "studio.sqlite").events(thread["thread_id"])][-1] == "approval.requested"


def test_langgraph_server_refuses_callers_without_a_key_or_a_role_to_run(langgraph_dev):
    anonymous = httpx.post(f"{langgraph_dev}/threads", json={}, timeout=10)
    assert anonymous.status_code == 401
    studio_bypass = httpx.post(f"{langgraph_dev}/threads", json={}, headers={"x-auth-scheme": "langsmith"}, timeout=10)
    assert studio_bypass.status_code == 401, "LangSmith's Studio sign-in is off: it names no AgentOps person"
    # Writing a plan's state directly would skip every node: refused, whoever asks.
    alice = client_as(langgraph_dev, "alice@example.com")
    [assistant] = alice.assistants.search(graph_id="agentops")
    thread = alice.threads.create()
    alice.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"intent": PROD_INTENT, "env": "prod"})
    for person in ("alice@example.com", "bob@example.com"):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            client_as(langgraph_dev, person).threads.update_state(thread["thread_id"], {"status": "approved"}, as_node="approval")
        assert refused.value.response.status_code in (403, 404)
        with pytest.raises(httpx.HTTPStatusError):
            client_as(langgraph_dev, person).threads.delete(thread["thread_id"])
    assert alice.threads.get_state(thread["thread_id"])["values"]["status"] == "pending_approval"

    victor = client_as(langgraph_dev, "victor@example.com")
    thread = victor.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        victor.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"intent": PROD_INTENT, "env": "prod"})
    assert refused.value.response.status_code == 403
