"""The `agentops` commands, run in-process through the real typer app (tests/cli_testing.py); one test runs
the installed console script itself."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_testing import Cli
from served import AGENTOPS

from app.exit_codes import ExitCode

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
        (("plans", "--status", "done"), "unknown status 'done': expected one of planning, blocked", ExitCode.INPUT_ERROR),
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


# --- API keys: by id, atomic, live on the running service, fail closed ------------------------------------


def hash_key(key: str) -> str:
    from api.keys import hash_key

    return hash_key(key)


def _me(url: str, key: str):
    import httpx

    return httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_keys_revoked_and_rotated_with_the_cli_take_effect_on_the_running_service(cli, settings, start_service):
    url, demo = start_service()
    home = {"AGENTOPS_HOME": str(settings.home)}
    erin = cli.json("keys", "add", "erin@example.com", "--role", "approver", **home)
    erin_again = cli.json("keys", "add", "erin@example.com", "--role", "viewer", **home)  # names may repeat; ids do not
    assert erin["id"] != erin_again["id"] and erin["key"].startswith("ak_")
    assert _me(url, erin["key"]).json() == {
        "name": "erin@example.com",
        "display": "erin@example.com",
        "roles": ["approver"],
        "via": "api_key",
    }
    listed = cli.json("keys", "list", **home)
    assert [k["id"] for k in listed if k["name"] == "erin@example.com"] == [erin["id"], erin_again["id"]]
    assert all("key" not in k and "sha256" not in k for k in listed)
    assert erin["id"] in cli("keys", "list", **home, COLUMNS="80").stdout, "the table shows whole ids"

    revoked = cli.json("keys", "revoke", erin["id"][:6], **home)
    assert revoked["id"] == erin["id"]
    assert _me(url, erin["key"]).status_code == 401, "refused on the very next request, no restart"
    assert _me(url, erin_again["key"]).status_code == 200, "the other key of the same person still works"

    rotated = cli.json("keys", "rotate", erin_again["id"], **home)
    assert rotated["replaces"] == erin_again["id"] and rotated["roles"] == ["viewer"]
    assert _me(url, erin_again["key"]).status_code == 401
    assert _me(url, rotated["key"]).json()["name"] == "erin@example.com"
    assert _me(url, demo["bob@example.com"]).status_code == 200

    assert "no API key with id" in cli("keys", "revoke", erin["id"], expect=ExitCode.NOT_FOUND, **home).stderr
    assert "at least 6 characters" in cli("keys", "revoke", "abc", expect=ExitCode.INPUT_ERROR, **home).stderr
    assert settings.api_keys_path.stat().st_mode & 0o077 == 0, "still readable by its owner only"


@pytest.mark.parametrize("damage", ["delete_a_line", "truncate", "bad_role"])
def test_a_broken_keys_file_refuses_every_key_until_it_is_fixed(cli, settings, start_service, caplog, damage):
    url, demo = start_service()
    home = {"AGENTOPS_HOME": str(settings.home)}
    gone = cli.json("keys", "add", "mallory@example.com", "--role", "admin", **home)
    cli("keys", "revoke", gone["id"], **home)
    assert _me(url, gone["key"]).status_code == 401
    good_text = settings.api_keys_path.read_text()

    lines = good_text.splitlines()
    demo_hash = hash_key(demo["alice@example.com"])
    broken = {
        # What the old runbook told operators to do to revoke a key: delete "its line".
        "delete_a_line": "\n".join(line for line in lines if '"sha256"' not in line or demo_hash not in line),
        "truncate": good_text[: len(good_text) // 2],
        "bad_role": good_text.replace('"viewer"', '"superuser"'),
    }[damage]
    settings.api_keys_path.write_text(broken)
    with caplog.at_level("ERROR", logger="agentops.api"):
        for key in [gone["key"], *demo.values()]:  # the revoked key above all, but none at all
            answer = _me(url, key)
            assert answer.status_code == 503 and answer.json()["error"] == "keys_unavailable"
    refusals = [r for r in caplog.records if "refusing every API key" in r.getMessage()]
    assert len(refusals) == 1, "one log line per broken version of the file, not one per request"
    assert cli("keys", "add", "x", "--role", "viewer", expect=ExitCode.INPUT_ERROR, **home).stderr.startswith("error: API keys in"), (
        "the CLI refuses to build on a broken file rather than overwrite it"
    )

    settings.api_keys_path.write_text(good_text)
    assert _me(url, gone["key"]).status_code == 401, "fixed: the revoked key stays revoked"
    metrics = httpx_get(url, "/metrics", demo["victor@example.com"])
    assert "agentops_api_key_file_errors_total 1.0" in metrics
    assert 'agentops_webhook_deliveries_total{outcome="failed"} 0.0' in metrics, "documented metrics exist from the start"


def httpx_get(url: str, path: str, key: str) -> str:
    import httpx

    answer = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_concurrent_key_changes_lose_nothing(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from api.keys import KeyStore

    store = KeyStore(tmp_path / "api-keys.json")
    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(lambda i: store.add(f"bot-{i % 4}", ["viewer"]), range(32)))
    assert sorted(e.id for e in store.list()) == sorted(e.id for e, _ in made)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda pair: store.revoke(pair[0].id), made[:16]))
    assert sorted(e.id for e in store.list()) == sorted(e.id for e, _ in made[16:])
    assert not list(tmp_path.glob("*.tmp")), "no temporary file left behind"


# --- ids a person can use ----------------------------------------------------------------------------------


def test_show_and_approve_take_the_id_as_an_80_column_table_prints_it(cli):
    import re

    plan_id = cli.json("run", PROD_INTENT, "--env", "prod", "--user", "alice@example.com")["plan_id"]
    table = cli("approvals", COLUMNS="80").stdout
    assert max(len(line) for line in table.splitlines()) <= 80
    [shown] = re.findall(r"│ ([0-9a-f]{6,}) ", table)
    assert plan_id.startswith(shown) and len(shown) >= 6
    assert cli.json("show", shown)["plan_id"] == plan_id
    assert cli.json("audit", "show", shown)[0]["plan_id"] == plan_id
    assert cli.json("approve", shown, "--as", "bob@example.com")["status"] == "deployed"


def test_an_ambiguous_or_too_short_prefix_names_the_matching_plans(cli):
    from tools.storage.plan_index import PlanIndex

    cli("plans")  # creates the state directory and its tables
    index = PlanIndex(cli.home / "agentops.sqlite")
    for plan_id in ("abcdef0000000000000000000000000a", "abcdef1111111111111111111111111b"):
        index.record(
            {
                "plan_id": plan_id,
                "env": "dev",
                "requester": "a",
                "intent": "x",
                "status": "blocked",
                "created_at": "2026-12-01T00:00:00+00:00",
            }
        )
    ambiguous = cli("show", "abcdef", expect=ExitCode.INPUT_ERROR).stderr
    assert "abcdef0000000000000000000000000a" in ambiguous and "abcdef1111111111111111111111111b" in ambiguous
    assert "at least 6 characters" in cli("show", "abcde", expect=ExitCode.NOT_FOUND).stderr
    assert "no plan with id 'abcdef2'" in cli("approve", "abcdef2", "--as", "bob", expect=ExitCode.NOT_FOUND).stderr


def test_lists_filter_and_sort_as_documented(cli):
    first = cli.json("run", PROD_INTENT, "--env", "prod", "--user", "alice@example.com")["plan_id"]
    second = cli.json(
        "run", "deploy fraud-detector v4 to prod on 2 ml.g5.xlarge, canary 10%", "--env", "prod", "--user", "alice@example.com"
    )["plan_id"]
    dev = cli.json("run", "deploy churn-predictor to dev on one ml.m5.large", "--env", "dev", "--user", "dan")["plan_id"]
    ids = lambda rows: [r["plan_id"] for r in rows]  # noqa: E731
    assert ids(cli.json("approvals")) == [first, second], "default: the soonest deadline first"
    assert ids(cli.json("approvals", "--sort", "created")) == [second, first]
    assert cli.json("approvals", "--env", "dev") == []
    assert ids(cli.json("plans")) == [dev, second, first], "default: newest first"
    assert ids(cli.json("plans", "--env", "dev")) == [dev]
    assert ids(cli.json("plans", "--status", "pending_approval", "--sort", "expires")) == [first, second]
    assert ids(cli.json("plans", "--sort", "expires"))[-1] == dev, "a plan without a deadline comes last"


# --- exit codes: one test per code ---------------------------------------------------------------------------


def test_exit_0_for_done_and_for_waiting(cli):
    assert cli.json("run", "deploy churn-predictor to dev on one ml.m5.large", "--env", "dev", "--user", "dan")["status"] == "deployed"
    assert cli.json("run", PROD_INTENT, "--env", "prod", "--user", "alice")["status"] == "pending_approval"


def test_exit_10_when_the_guardrail_blocks_a_run(cli):
    view = cli.json("run", "deploy ranker to dev on 9 ml.p5.48xlarge", "--env", "dev", "--user", "dan", expect=ExitCode.BLOCKED)
    assert view["status"] == "blocked"
    assert "status blocked" in cli("show", view["plan_id"]).stdout, "show shows; it does not judge (exit 0)"


def test_exit_12_when_the_request_expired(cli, monkeypatch):
    import app.service

    plan_id = cli.json("run", PROD_INTENT, "--env", "prod", "--user", "alice")["plan_id"]
    # A day and more later (the clock, not the index or an answer, says a request ran out: nodes/approval.py).
    later = datetime.now(UTC) + timedelta(hours=25)
    build = app.service.build_dependencies
    monkeypatch.setattr(app.service, "build_dependencies", lambda settings: replace(build(settings), clock=lambda: later))
    late = cli("approve", plan_id, "--as", "bob", expect=ExitCode.CONFLICT)
    assert "expired" in late.stderr
    assert cli.json("resume", plan_id, expect=ExitCode.NOT_APPROVED)["status"] == "expired"


def test_exit_12_is_not_used_for_a_rejection_that_was_asked_for(cli):
    plan_id = cli.json("run", PROD_INTENT, "--env", "prod", "--user", "alice")["plan_id"]
    assert cli.json("reject", plan_id, "--as", "bob", "--reason", "freeze")["status"] == "rejected"
    assert cli("reject", plan_id, "--as", "bob", "--reason", " ", expect=ExitCode.INPUT_ERROR).stderr.strip() == (
        "error: a rejection needs a reason (--reason)"
    ), "the CLI names its option; the domain's message names none (HTTP says the same without it)"
    assert cli.json("resume", plan_id, expect=ExitCode.NOT_APPROVED)["status"] == "rejected"


def test_exit_13_when_the_plan_failed(cli):
    from test_nim_cli import closed_url

    view = cli.json(
        "run",
        PROD_INTENT,
        "--env",
        "prod",
        "--user",
        "alice",
        expect=ExitCode.FAILED,
        AGENTOPS_PLANNER="nim",
        AGENTOPS_PLANNER_BASE_URL=closed_url(),
        NVIDIA_API_KEY="nvapi-test",
        AGENTOPS_NIM_ON_FAILURE="fail",
        AGENTOPS_NIM_RETRIES="0",
    )
    assert view["status"] == "failed" and "NVIDIA planner endpoint" in view["error"]


@pytest.mark.parametrize(("status", "code"), [("needs_clarification", ExitCode.NEEDS_CLARIFICATION), ("rolled_back", ExitCode.ROLLED_BACK)])
def test_exit_11_and_14_for_outcomes_the_embedded_defaults_cannot_reach(cli, monkeypatch, status, code):
    """`needs_clarification` (the intent reader) and `rolled_back` (execute mode, SageMaker's auto-rollback) are
    not reachable offline; the command's path from the plan's status to the exit code is what is checked."""
    from app.service import BlockingOrchestrator

    real_run = BlockingOrchestrator.run
    monkeypatch.setattr(BlockingOrchestrator, "run", lambda self, *a, **kw: real_run(self, *a, **kw) | {"status": status})
    assert (
        cli.json("run", "deploy churn-predictor to dev on one ml.m5.large", "--env", "dev", "--user", "dan", expect=code)["status"]
        == status
    )


def test_exit_70_for_a_bug_in_one_line(cli, monkeypatch):
    from app.service import Orchestrator

    def broken(self, *args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(Orchestrator, "plans", broken)
    result = cli("plans", expect=ExitCode.INTERNAL)
    assert result.stderr == "internal error: KeyError: 'a bug'\n"


def test_the_exit_code_table_is_in_help_and_in_the_readme():
    from app.exit_codes import MEANINGS

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` | {MEANINGS[code]} |" in readme, f"README row for {code.name}"


def test_http_refusals_name_no_cli_option(start_service):
    import httpx

    url, keys = start_service()
    plan = httpx.post(
        f"{url}/plans", json={"intent": PROD_INTENT, "env": "prod"}, headers={"X-API-Key": keys["alice@example.com"]}, timeout=60
    )
    refused = httpx.post(
        f"{url}/plans/{plan.json()['plan_id']}/decisions",
        json={"approved": False, "reason": "  "},
        headers={"X-API-Key": keys["bob@example.com"]},
        timeout=60,
    )
    assert refused.status_code == 422 and refused.json()["message"] == "a rejection needs a reason"


@pytest.fixture(params=["sqlite", "postgres"])
def plan_index(request, tmp_path):
    from tools.storage.plan_index import PlanIndex

    if request.param == "sqlite":
        return PlanIndex(tmp_path / "agentops.sqlite")
    return PlanIndex(request.getfixturevalue("postgres_url"))


def test_prefix_resolution_agrees_with_the_ids_on_both_backends(plan_index):
    """Generated ids sharing prefixes: any start of >= 6 characters resolves to its plan when only it has that
    start, and is refused naming every plan that does otherwise."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    from agentops.errors import AgentOpsError, NotFound
    from app.service import resolve_plan_id

    hex_id = st.text("0123456789abcdef", min_size=32, max_size=32)

    @hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(base=hex_id, tails=st.lists(st.integers(6, 31), min_size=1, max_size=4), pick=st.integers(0, 3), cut=st.integers(6, 32))
    def check(base, tails, pick, cut):
        # Ids that share the first n characters of `base`, then differ.
        ids = {base} | {base[:n] + ("0" if base[n] != "0" else "1") + base[n + 1 :] for n in tails}
        for plan_id in ids:
            plan_index.record(
                {
                    "plan_id": plan_id,
                    "env": "dev",
                    "requester": "a",
                    "intent": "x",
                    "status": "blocked",
                    "created_at": "2026-12-01T00:00:00+00:00",
                }
            )
        target = sorted(ids)[pick % len(ids)]
        prefix = target[:cut]
        everyone = [p.plan_id for p in plan_index.list(limit=100_000)]
        matching = sorted(p for p in everyone if p.startswith(prefix))
        if prefix in everyone or matching == [target]:
            assert resolve_plan_id(plan_index, prefix) == (prefix if prefix in everyone else target)
        else:
            with pytest.raises(AgentOpsError) as refused:
                resolve_plan_id(plan_index, prefix)
            assert not isinstance(refused.value, NotFound)
            assert all(p in str(refused.value) for p in matching[:10])

    check()


def test_list_order_on_both_backends(plan_index):
    rows = [
        ("a" * 32, "2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"),
        ("b" * 32, "2026-12-01T01:00:00+00:00", "2026-12-01T12:00:00+00:00"),  # newer, but due sooner
        ("c" * 32, "2026-12-01T02:00:00+00:00", None),  # never asked for approval
    ]
    for plan_id, created, expires in rows:
        plan_index.record(
            {"plan_id": plan_id, "env": "prod", "requester": "a", "intent": "x", "status": "pending_approval", "created_at": created}
            | ({"expires_at": expires} if expires else {})
        )
    assert [p.plan_id[0] for p in plan_index.list()] == ["c", "b", "a"]
    assert [p.plan_id[0] for p in plan_index.list(sort="expires")] == ["b", "a", "c"]
    assert plan_index.resolve_prefix("aaaaaa") == ["a" * 32] and plan_index.resolve_prefix("abcdef") == []
