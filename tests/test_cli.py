"""The `agentops` commands, run in-process through the real typer app (tests/cli_testing.py); one test runs
the installed console script itself."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from cli_testing import Cli

from app.exit_codes import ExitCode

AGENTOPS = str(Path(sys.executable).parent / "agentops")
PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    return Cli(tmp_path, monkeypatch)


def as_json(result) -> object:
    return json.loads(result.stdout)


def test_plan_json_has_the_documented_fields(cli):
    view = as_json(
        cli("plan", "deploy ranker to staging on 2 ml.m5.large", "--env", "staging", "--budget", "0.1", "--json", expect=ExitCode.BLOCKED)
    )
    assert {"config", "hourly_cost_usd", "peak_cost_usd", "verdict", "requires_approval", "approval_reasons", "evidence"} <= set(view)
    assert view["verdict"]["allowed"] is False
    assert [v["rule"] for v in view["verdict"]["violations"]] == ["constraint.budget"]
    assert {"policy", "section", "text", "score"} <= set(view["evidence"][0])
    # No side effects: nothing in the plan index, nothing on the audit log.
    assert as_json(cli("plans", "--json")) == []
    assert as_json(cli("audit", "verify", "--json"))["events"] == 0


def test_the_done_when_walkthrough(cli):
    """run prod -> pending; another user approves -> deployed; verify passes, then fails after one byte changes."""
    started = as_json(cli("run", PROD_INTENT, "--env", "prod", "--user", "alice@example.com", "--json"))
    plan_id = started["plan_id"]
    assert started["status"] == "pending_approval"
    assert [p["plan_id"] for p in as_json(cli("approvals", "--json"))] == [plan_id]

    refused = cli("approve", plan_id[:8], "--as", "alice@example.com", expect=ExitCode.FORBIDDEN)
    assert refused.stderr.strip().count("\n") == 0 and "cannot decide" in refused.stderr

    done = as_json(cli("approve", plan_id, "--as", "bob@example.com", "--reason", "capacity ok", "--json"))
    assert done["status"] == "deployed" and done["deployment"]["mode"] == "dry_run"
    again = cli("approve", plan_id, "--as", "carol@example.com", expect=ExitCode.CONFLICT)
    assert "not waiting for approval" in again.stderr

    assert "intact" in cli("audit", "verify").stdout
    steps = [e["step"] for e in as_json(cli("audit", "show", plan_id, "--json"))]
    assert steps == ["plan.1", "guardrail.1", "approval.requested", "approval.decision.1", "deploy"]

    db = sqlite3.connect(cli.home / "agentops.sqlite")
    with db:
        db.execute("UPDATE audit_events SET actor = 'bOb@example.com' WHERE step = 'approval.decision.1'")
    db.close()
    broken = cli("audit", "verify", expect=ExitCode.AUDIT_BROKEN)
    assert "BROKEN" in broken.stdout and "changed" in broken.stdout


def test_reject_needs_a_reason_and_ends_the_plan(cli):
    plan_id = as_json(cli("run", PROD_INTENT, "--env", "prod", "--user", "alice", "--json"))["plan_id"]
    cli("reject", plan_id, "--as", "bob", expect=2)  # --reason is required
    view = as_json(cli("reject", plan_id, "--as", "bob", "--reason", "freeze week", "--json"))
    assert view["status"] == "rejected"
    assert as_json(cli("show", plan_id, "--json"))["decision"]["reason"] == "freeze week"


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("run", "", "--env", "prod", "--user", "a"), "intent is empty", ExitCode.INPUT_ERROR),
        (("run", "deploy x", "--env", "qa", "--user", "a"), "unknown environment", ExitCode.INPUT_ERROR),
        (("plan", "deploy x", "--env", "qa"), "unknown environment", ExitCode.INPUT_ERROR),
        (("approve", "nope", "--as", "bob"), "no plan", ExitCode.NOT_FOUND),
        (("approve", "0123456789abcdef", "--as", "bob"), "no plan", ExitCode.NOT_FOUND),
        (("show", "nope"), "no plan", ExitCode.NOT_FOUND),
        (("audit", "show", "nope"), "no audit events", ExitCode.NOT_FOUND),
        (("plans", "--sort", "cost"), "", ExitCode.USAGE),
    ],
)
def test_bad_input_gets_one_line_and_its_exit_code(cli, args, message, code):
    result = cli(*args, expect=code)
    assert message in result.stderr
    if code != ExitCode.USAGE:  # click's usage errors come in a box
        assert result.stderr.strip().count("\n") == 0


def test_validate_a_config_file(cli):
    good = cli.tmp / "good.json"
    good.write_text(
        json.dumps(
            {
                "model_name": "churn-v1",
                "endpoint_name": "churn-dev",
                "instance_type": "ml.m5.large",
                "instance_count": 1,
                "model_data_url": "s3://models/churn/1/model.tar.gz",
                "rollback_alarms": ["ModelMonitorAlarm", "DataDriftAlarm"],
            }
        )
    )
    assert as_json(cli("validate", "--env", "dev", "--config", str(good), "--json"))["verdict"]["allowed"] is True
    blocked = as_json(cli("validate", "--env", "prod", "--config", str(good), "--json", expect=ExitCode.BLOCKED))
    assert "instance_count.range" in {v["rule"] for v in blocked["verdict"]["violations"]}

    broken = cli.tmp / "broken.json"
    broken.write_text("{not json")
    assert "not valid JSON" in cli("validate", "--env", "dev", "--config", str(broken), expect=1).stderr
    assert "no such file" in cli("validate", "--env", "dev", "--config", str(cli.tmp / "missing.json"), expect=1).stderr


def test_kb_search_cites_document_and_section(cli):
    results = as_json(cli("kb", "search", "Which instance types are allowed in staging?", "--k", "3", "--json"))
    assert len(results) == 3 and any("ml.m5.xlarge" in r["text"] for r in results)


def test_human_output_is_a_readable_table(cli):
    out = cli("plan", PROD_INTENT, "--env", "prod").stdout
    assert "deployment config" in out and "ml.g5.xlarge" in out and "needs human approval" in out


def test_resume_carries_out_a_decision_the_index_holds_but_the_run_never_saw(cli):
    from datetime import datetime

    from agentops.schemas import Decision
    from tools.storage.plan_index import PlanIndex

    plan_id = as_json(cli("run", PROD_INTENT, "--env", "prod", "--user", "alice@example.com", "--json"))["plan_id"]
    assert as_json(cli("resume", plan_id, "--json"))["status"] == "pending_approval", "nothing decided: it keeps waiting"
    # What a process leaves when it dies after recording the decision and before resuming the run.
    now = datetime.now(UTC)
    PlanIndex(cli.home / "agentops.sqlite").decide(
        plan_id, Decision(approved=True, approver="bob@example.com", reason="ok", decided_at=now), now
    )
    assert as_json(cli("show", plan_id, "--json"))["waiting_for"] == ["approval"]

    view = as_json(cli("resume", plan_id, "--json"))
    assert view["status"] == "deployed" and view["decision"]["approver"] == "bob@example.com"
    assert as_json(cli("resume", "--all", "--json")) == [], "safe to repeat: nothing is left unfinished"
    assert "name one plan, or pass --all" in cli("resume", expect=1).stderr
    cli("audit", "verify")


@pytest.mark.parametrize("args", [("plans",), ("audit", "verify"), ("serve", "--dev-keys", "--port", "0")])
def test_an_unreachable_database_is_one_line_naming_it_without_the_password(cli, args):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli(*args, expect=ExitCode.ENVIRONMENT, AGENTOPS_DATABASE_URL=f"postgresql://agentops:s3cret@127.0.0.1:{port}/agentops")
    assert f"cannot connect to the database at 127.0.0.1:{port}/agentops" in result.stderr
    assert "s3cret" not in result.stderr and result.stderr.strip().count("\n") == 0


def test_the_console_script_itself_reports_one_line_and_the_exit_code(tmp_path):
    """The installed `agentops` entry point: what every other test reaches in-process."""
    env = {**os.environ, "AGENTOPS_HOME": str(tmp_path / "state"), "COLUMNS": "100"}
    helped = subprocess.run([AGENTOPS, "--help"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "Exit codes" in helped.stdout and " 10  the guardrail blocked" in helped.stdout
    missing = subprocess.run([AGENTOPS, "show", "0123456789ab"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert missing.returncode == ExitCode.NOT_FOUND, missing.stderr
    assert missing.stderr.startswith("error: no plan with id '0123456789ab'") and missing.stderr.count("\n") == 1
    assert "Traceback" not in missing.stdout + missing.stderr
