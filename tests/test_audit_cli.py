"""The `agentops audit` commands on the embedded log, run in-process through the real typer app."""

from __future__ import annotations

import json
import sqlite3

import pytest
from cli_testing import Cli

from app.exit_codes import ExitCode


@pytest.fixture
def cli(tmp_path, monkeypatch):
    return Cli(tmp_path, monkeypatch, {"AGENTOPS_AUDIT_DIGEST_EVERY": "0"})


def test_digest_seals_the_newest_events_and_verify_then_sees_their_deletion(cli):
    plan_id = json.loads(cli("run", "deploy churn-predictor to dev on one ml.m5.large", "--env", "dev", "--user", "a", "--json").stdout)[
        "plan_id"
    ]
    before = json.loads(cli("audit", "verify", "--json").stdout)
    assert before["ok"] and before["digests"] == 0 and before["undigested"] == before["events"] > 0
    assert "not covered by a digest" in cli("audit", "verify").stdout

    digest = json.loads(cli("audit", "digest", "--json").stdout)["digest"]
    assert digest["digest_seq"] == 1 and list(digest["plans"]) == [plan_id]
    assert "no new events" in cli("audit", "digest").stdout  # idempotent
    assert "no remote audit store" in cli("audit", "sync").stdout

    db = sqlite3.connect(cli.home / "agentops.sqlite")
    with db:
        db.execute("DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)")
    db.close()
    broken = cli("audit", "verify", expect=ExitCode.AUDIT_BROKEN)
    assert "BROKEN" in broken.stdout and "newest events deleted" in broken.stdout


def test_export_writes_jsonl_an_auditor_can_rehash(cli):
    from tools.audit.chain import canonical_json, event_hash

    cli("run", "deploy churn-predictor to dev on one ml.m5.large", "--env", "dev", "--user", "a")
    out = cli.tmp / "audit.jsonl"
    summary = json.loads(cli("audit", "export", "--since", "2000-01-01", "--format", "jsonl", "-o", str(out), "--json").stdout)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["events"] == len(events) > 0 and [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for e in events:  # the recipe in docs/audit.md, from the export alone
        fields = (e["seq"], e["event_id"], e["plan_id"], e["step"], e["ts"], e["actor"], canonical_json(e["payload"]), e["prev_hash"])
        assert event_hash(*fields) == e["hash"]
    assert cli("audit", "export", "--since", "2999-01-01").stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("audit", "export", "--since", "yesterday"), "--since must be a date"),
        (("audit", "export", "--since", "2026-01-01", "--format", "csv"), "unknown export format"),
        (("audit", "export", "--since", "2026-01-01", "--source", "dynamodb"), "no DynamoDB table is configured"),
        (("audit", "export", "--since", "2026-01-01", "-o", "/nonexistent/dir/x.jsonl"), "cannot write"),
    ],
)
def test_bad_export_input_gets_one_line_and_exit_1(cli, args, message):
    result = cli(*args, expect=1)
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
