"""An intent whose words cannot all be read ends `needs_clarification`: nothing is planned or deployed, the
requester gets a question quoting the words, and the record keeps it -- through the workflow, the HTTP API
and the CLI alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_api import ALICE, Api

from agentops.settings import Settings
from app.service import Orchestrator
from tools.audit.local import SqliteAuditLog

UNCLEAR = "deploy fraud-detector v3 to prod on two g5.2xlrage, canary 10%"


def test_an_unclear_intent_asks_and_is_on_the_record(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "home")
    with Orchestrator.open(settings) as orchestrator:
        view = orchestrator.run(UNCLEAR, "prod", "alice")
        listed = orchestrator.plans(status="needs_clarification")
    assert view["status"] == "needs_clarification" and view["config"] is None and not view.get("deployment")
    assert "'g5.2xlrage'" in view["question"] and "did you mean ml.g5.2xlarge?" in view["question"]
    # What was read is shown with the words it came from, the stated count included.
    assert view["reading"]["instance_count"] == {"value": 2, "words": "two g5.2xlrage", "start": 36, "end": 50}
    assert view["reading"]["canary_percent"]["words"] == "canary 10%"
    assert [row.plan_id for row in listed] == [view["plan_id"]]
    events = {e.step: e for e in SqliteAuditLog(settings.app_db).events(view["plan_id"])}
    assert list(events) == ["plan.1"]  # straight from the planner to the record: no verdict, no approval
    assert events["plan.1"].payload["question"] == view["question"]


def test_a_ceiling_reaches_the_guardrail_as_a_constraint(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "home")
    with Orchestrator.open(settings) as orchestrator:
        view = orchestrator.run("deploy churn-predictor to prod with at most 1 instance", "prod", "alice")
    # Prod's minimum of two breaks the requester's own ceiling: blocked for that, never planned as "1 instance".
    assert view["status"] == "blocked" and view["config"]["instance_count"] == 2
    assert "constraint.max_instance_count" in {v["rule"] for v in view["verdict"]["violations"]}
    assert view["reading"]["max_instance_count"]["words"] == "at most 1 instance"


def test_the_http_api_answers_2xx_with_the_question(start_service) -> None:
    url, keys = start_service()
    api = Api(url, keys[ALICE])
    response = api.submit(UNCLEAR, "prod")
    assert response.status_code in (200, 201), response.text
    body = response.json()
    assert body["status"] == "needs_clarification" and "did you mean ml.g5.2xlarge?" in body["question"]
    assert body["config"] is None and body["reading"]["instance_count"]["value"] == 2
    again = api.plan(body["plan_id"])
    assert again["status"] == "needs_clarification" and again["question"] == body["question"]
    assert api.steps(body["plan_id"]) == ["plan.1"]


def test_the_cli_shows_the_question_and_the_reading(tmp_path: Path) -> None:
    agentops = str(Path(sys.executable).parent / "agentops")
    env = {**os.environ, "AGENTOPS_HOME": str(tmp_path / "state"), "COLUMNS": "200"}
    env.pop("EXECUTE", None)
    run = [agentops, "run", UNCLEAR, "--env", "prod", "--user", "alice@example.com"]
    as_json = subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert as_json.returncode == 11, as_json.stderr  # app/exit_codes.py: NEEDS_CLARIFICATION, for scripts
    view = json.loads(as_json.stdout)
    assert view["status"] == "needs_clarification" and "did you mean ml.g5.2xlarge?" in view["question"]
    shown = subprocess.run([agentops, "show", view["plan_id"]], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "Traceback" not in shown.stdout + shown.stderr
    assert "needs clarification:" in shown.stdout and "g5.2xlrage" in shown.stdout
    assert "from your words: two g5.2xlrage -> instance_count 2" in shown.stdout
