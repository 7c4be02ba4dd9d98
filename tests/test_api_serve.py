"""`agentops serve --dev-keys` (what `make run` starts), run as a user runs it: the printed address and
demo keys work, a requester's prod intent waits, the requester's own approval is refused, an approver's
deploys it (dry-run)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading

import httpx
from fakes import wait_until
from served import AGENTOPS, free_port


def test_the_done_when_walkthrough(tmp_path):
    env = {**os.environ, "AGENTOPS_HOME": str(tmp_path / "state"), "COLUMNS": "200"}
    env.pop("AGENTOPS_API_KEYS", None)
    server = subprocess.Popen(
        [AGENTOPS, "serve", "--dev-keys", "--port", str(free_port())], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True).start()
    try:
        url = wait_until(
            lambda: next((m.group(1) for line in lines if (m := re.search(r"approvals page\s+(http://\S+/)", line))), None),
            what="the printed address",
        )
        wait_until(lambda: any("Application startup complete" in line for line in lines), what="the server to listen")
        keys = {m.group(1): m.group(2) for line in lines if (m := re.search(r"(\S+@example\.com)\s+(ak_\S+)", line))}
        assert set(keys) >= {"alice@example.com", "bob@example.com"}, lines
        keys_file = (tmp_path / "state" / "api-keys.json").read_text()
        assert not any(key in keys_file for key in keys.values()), "printed once, hashed at rest"

        def as_(person: str) -> httpx.Client:
            return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys[person]}"}, timeout=60)

        assert "<title>AgentOps · Approvals</title>" in httpx.get(url).text
        plan = (
            as_("alice@example.com")
            .post("/plans", json={"intent": "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%", "env": "prod"})
            .json()
        )
        assert plan["status"] == "pending_approval"
        assert [p["plan_id"] for p in as_("bob@example.com").get("/approvals").json()] == [plan["plan_id"]]
        refused = as_("alice@example.com").post(f"/plans/{plan['plan_id']}/decisions", json={"approved": True})
        assert refused.status_code == 403
        assert (
            as_("bob@example.com").post(f"/plans/{plan['plan_id']}/decisions", json={"approved": True, "reason": "ok"}).status_code == 202
        )
        wait_until(lambda: as_("bob@example.com").get(f"/plans/{plan['plan_id']}").json()["status"] == "deployed", what="the deployment")
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)
