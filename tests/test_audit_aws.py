"""The audit trail on AWS — DynamoDB mirror, S3 Object Lock digests — against moto's server over HTTP.

The code under test builds its own boto3 clients from Settings, exactly as in production; the only
differences are fake credentials, the endpoint (AGENTOPS_AWS_ENDPOINT_URL = moto) and one attempt per
call. Each test gets its own table and bucket, created from the same definitions the Terraform has
(tests/test_terraform.py checks those agree). moto's server and the clean AWS environment are the
execute-mode tests' fixtures (tests/aws_testing.py).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aws_testing import aws_env, client, moto_server  # noqa: F401  (pytest fixtures)
from botocore.exceptions import ClientError

from agentops.errors import AgentOpsError
from agentops.settings import Settings
from tools.audit.chain import event_hash
from tools.audit.dynamodb import DynamoEventStore, table_definition
from tools.audit.s3 import DIGEST_PREFIX, LOCK_MODE, object_key
from tools.audit.trail import RETRY_AFTER_FAILURE, AuditTrail, build_audit_trail

PLANS = ("p1", "p2", "p3")
STEPS = ("plan.1", "guardrail.1", "deploy")  # p1 holds events 1-3, p2 4-6, p3 7-9


class Aws:
    """Test-side clients, and this test's own table and bucket (as Terraform would create them)."""

    def __init__(self, url: str):
        self.url = url
        self.ddb, self.s3 = client("dynamodb", url), client("s3", url)
        tag = uuid.uuid4().hex[:10]
        self.table, self.bucket = f"audit-{tag}", f"audit-{tag}"

    def create_table(self) -> None:
        self.ddb.create_table(**table_definition(self.table))

    def create_bucket(self) -> None:
        self.s3.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)
        rule = {"DefaultRetention": {"Mode": LOCK_MODE, "Days": 1}}
        self.s3.put_object_lock_configuration(Bucket=self.bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule})

    def items(self) -> list[dict]:
        return sorted(self.ddb.scan(TableName=self.table)["Items"], key=lambda i: int(i["seq"]["N"]))

    def key(self, plan_id: str, seq: int) -> dict:
        return {"plan_id": {"S": plan_id}, "seq": {"N": str(seq)}}

    def digest_versions(self) -> list[dict]:
        return self.s3.list_object_versions(Bucket=self.bucket, Prefix=DIGEST_PREFIX).get("Versions", [])


class Clock:
    """Real time (S3 refuses retention dates in the past), moved on by hand where a test needs days."""

    def __init__(self):
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def aws(aws_env, moto_server):
    aws = Aws(moto_server)
    aws.create_table()
    aws.create_bucket()
    return aws


@pytest.fixture
def make_trail(tmp_path, aws):
    def build(clock=None, **settings):
        values = {
            "home": tmp_path / "home",
            "aws_endpoint_url": aws.url,
            "aws_max_attempts": 1,
            "audit_dynamodb_table": aws.table,
            "audit_s3_bucket": aws.bucket,
            "audit_digest_every": 0,
        }
        return build_audit_trail(Settings(_env_file=None, **(values | settings)), **({"clock": clock} if clock else {}))

    return build


def fill(trail, plans=PLANS) -> None:
    for plan in plans:
        for step in STEPS:
            assert trail.append(plan, step, "tester", {"plan": plan, "step": step}) is True


@pytest.fixture
def trail(make_trail):
    """Nine events of three plans, mirrored to DynamoDB, digested, the digest locked in S3."""
    trail = make_trail()
    fill(trail)
    made, report = trail.digest()
    assert made and made.last_seq == 9 and not report.errors
    return trail


def broken(trail, store: str):
    result = trail.verify()
    assert not result.ok, "tampering went unnoticed"
    assert result.store == store
    return result


# --- writing -------------------------------------------------------------------------------------


def test_events_land_in_dynamodb_once_under_replay(trail, aws):
    before = aws.items()
    assert [int(i["seq"]["N"]) for i in before] == list(range(1, 10))

    fill_again = [trail.append(plan, step, "tester", {"different": "payload"}) for plan in PLANS for step in STEPS]
    assert fill_again == [False] * 9  # the node re-running writes nothing
    # A crash after the puts but before their progress was recorded: the catch-up replays every event.
    sqlite3.connect(trail.log.path).execute("DELETE FROM audit_sync").connection.commit()
    report = trail.sync()
    assert not report.errors and sum(report.written.values()) == 0
    assert aws.items() == before, "a replay wrote or overwrote something"
    assert len(aws.digest_versions()) == 1, "a replayed digest added a version"


def test_the_table_serves_a_plan_in_order_and_a_day(trail, aws):
    table = DynamoEventStore(aws.ddb, aws.table)
    assert [(r["seq"], r["step"]) for r in table.plan_records("p2")] == [(4, "plan.1"), (5, "guardrail.1"), (6, "deploy")]
    today = datetime.now(UTC).date().isoformat()
    assert [r["seq"] for r in table.day_records(today)] == list(range(1, 10))
    assert table.day_records("2001-01-01") == []


def test_a_remote_failure_keeps_the_event_and_a_later_append_catches_up(make_trail, aws, caplog):
    clock = Clock()
    trail = make_trail(clock=clock, audit_dynamodb_table=f"{aws.table}-not-yet")  # a table that does not exist yet
    with caplog.at_level(logging.WARNING, logger="agentops.audit"):
        fill(trail, plans=("p1",))
    assert AuditTrail(trail.log).verify().ok and trail.log.head() == 3  # the local chain is whole
    # One attempt, then appends leave AWS alone for a while (an outage must not slow every transition).
    assert caplog.text.count("not written") == 1 and "-not-yet" in caplog.text
    with pytest.raises(AgentOpsError, match="cannot read dynamodb"):
        trail.verify()  # unreachable is an error, not a verdict

    aws.ddb.create_table(**table_definition(f"{aws.table}-not-yet"))
    clock.offset = RETRY_AFTER_FAILURE + timedelta(seconds=1)
    assert trail.append("p2", "plan.1", "tester", {}) is True  # this append also writes the three it missed
    assert [r["seq"] for r in DynamoEventStore(aws.ddb, f"{aws.table}-not-yet").records()] == [1, 2, 3, 4]
    assert trail.verify().ok


def test_a_copy_that_is_only_behind_verifies_with_a_warning(trail, make_trail):
    offline = make_trail(audit_dynamodb_table=None, audit_s3_bucket=None)  # same local log, AWS not configured
    fill(offline, plans=("p4",))
    offline.log.digest()
    result = trail.verify()
    assert result.ok, result.problem
    assert any("3 event(s) behind" in w for w in result.warnings) and any("1 digest(s) not yet in" in w for w in result.warnings)
    trail.sync()
    assert trail.verify().warnings == []


def test_digests_are_idempotent_and_chain(trail, aws):
    made, _ = trail.digest()
    assert made is None and len(aws.digest_versions()) == 1  # nothing new: no second digest
    fill(trail, plans=("p4", "p1-again"))
    made, _ = trail.digest()
    assert (made.digest_seq, made.first_seq, made.last_seq) == (2, 10, 15)
    assert set(made.plans) == {"p4", "p1-again"}  # only the plans that changed since digest 1
    assert made.prev_digest_hash == trail.log.digests()[0].hash
    result = trail.verify()
    assert result.ok and result.digests == 2 and result.undigested == 0 and not result.warnings


def test_digest_every_n_events_publishes_on_its_own(make_trail, aws):
    trail = make_trail(audit_digest_every=4)
    fill(trail)
    assert [v["Key"] for v in sorted(aws.digest_versions(), key=lambda v: v["Key"])] == [
        object_key(DIGEST_PREFIX, 1),
        object_key(DIGEST_PREFIX, 2),
    ]
    assert trail.verify().undigested == 1


def test_events_can_also_go_to_s3_as_locked_objects(make_trail, aws):
    trail = make_trail(audit_s3_events=True)
    fill(trail)
    head = aws.s3.head_object(Bucket=aws.bucket, Key=object_key("events/", 5))
    assert head["ObjectLockMode"] == LOCK_MODE
    result = trail.verify()
    assert result.ok and f"s3:{aws.bucket}/events" in result.stores


# --- verification on a clean run --------------------------------------------------------------------


def test_a_clean_trail_verifies_every_store(trail, aws):
    result = trail.verify()
    assert result.ok, result.problem
    assert (result.events, result.digests, result.undigested) == (9, 1, 0)
    assert result.stores == ["local log", f"s3:{aws.bucket}", f"dynamodb:{aws.table}"]
    assert result.warnings == []


def test_digests_are_locked_in_compliance_mode(trail, aws):
    head = aws.s3.head_object(Bucket=aws.bucket, Key=object_key(DIGEST_PREFIX, 1))
    assert head["ObjectLockMode"] == LOCK_MODE
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=300)  # the 365-day default


# --- tampering with DynamoDB ------------------------------------------------------------------------


def test_an_edited_item_is_detected(trail, aws):
    aws.ddb.update_item(
        TableName=aws.table,
        Key=aws.key("p2", 5),
        UpdateExpression="SET payload = :p",
        ExpressionAttributeValues={":p": {"S": '{"plan":"p2","step":"approved by nobody"}'}},
    )
    result = broken(trail, f"dynamodb:{aws.table}")
    assert result.seq == 5 and "event 5 (p2 guardrail.1) was changed" in result.problem


def test_a_deleted_item_is_detected(trail, aws):
    aws.ddb.delete_item(TableName=aws.table, Key=aws.key("p1", 2))
    result = broken(trail, f"dynamodb:{aws.table}")
    assert result.seq == 3 and "sequence gap" in result.problem and "deleted" in result.problem


@pytest.mark.parametrize("plan", ["p2", "p3"])  # one in the middle of the chain, one at its end
def test_a_deleted_plan_is_detected(trail, aws, plan):
    for item in aws.items():
        if item["plan_id"]["S"] == plan:
            aws.ddb.delete_item(TableName=aws.table, Key=aws.key(plan, int(item["seq"]["N"])))
    result = broken(trail, f"dynamodb:{aws.table}")
    assert f"plan {plan} is missing" in result.problem and "plan deleted?" in result.problem


def test_a_consistently_rewritten_chain_is_caught_by_the_digest(trail, aws):
    # Edit event 5 and re-hash it and every later event: the table's own chain is valid again.
    prev = None
    for item in aws.items()[4:]:
        values = {k: v.get("S", v.get("N")) for k, v in item.items()}
        if values["seq"] == "5":
            values["payload"] = '{"plan":"p2","step":"forged"}'
        values["prev_hash"] = prev or values["prev_hash"]
        values["hash"] = event_hash(
            int(values["seq"]), *(values[f] for f in ("event_id", "plan_id", "step", "ts", "actor", "payload", "prev_hash"))
        )
        aws.ddb.put_item(
            TableName=aws.table,
            Item={**item, "payload": {"S": values["payload"]}, "prev_hash": {"S": values["prev_hash"]}, "hash": {"S": values["hash"]}},
        )
        prev = values["hash"]
    result = broken(trail, f"dynamodb:{aws.table}")
    assert "not the one digest 1 recorded" in result.problem and "rewritten" in result.problem


def test_an_item_moved_to_another_day_is_detected(trail, aws):
    aws.ddb.update_item(
        TableName=aws.table,
        Key=aws.key("p1", 1),
        UpdateExpression="SET #d = :d",
        ExpressionAttributeNames={"#d": "day"},
        ExpressionAttributeValues={":d": {"S": "2001-01-01"}},
    )
    assert "day that does not match" in broken(trail, f"dynamodb:{aws.table}").problem


def test_deleting_the_synced_tail_of_the_table_is_not_mistaken_for_lag(make_trail, aws):
    trail = make_trail()
    fill(trail)  # no digest: only the record of what was written shows the loss
    aws.ddb.delete_item(TableName=aws.table, Key=aws.key("p3", 9))
    assert "events 9–9 were written here but are gone" in broken(trail, f"dynamodb:{aws.table}").problem


# --- tampering with S3 and the digests ---------------------------------------------------------------


def test_locked_digest_objects_refuse_deletion_of_their_version(trail, aws):
    version = aws.digest_versions()[0]
    with pytest.raises(ClientError) as refused:
        aws.s3.delete_object(Bucket=aws.bucket, Key=version["Key"], VersionId=version["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert trail.verify().ok  # still there, still locked

    aws.s3.delete_object(Bucket=aws.bucket, Key=version["Key"])  # allowed, but only hides it
    result = broken(trail, f"s3:{aws.bucket}")
    assert "delete marker" in result.problem and result.digest == 1


def test_a_digest_chain_with_a_gap_is_detected(make_trail, aws):
    trail = make_trail(audit_s3_bucket=None)  # digests made locally, published below by hand
    for plan in PLANS:
        fill(trail, plans=(plan,))
        trail.log.digest()
    published = make_trail()
    for digest in trail.log.digests():
        if digest.digest_seq != 2:  # digest 2 never reaches the bucket
            published.archive.put_digest(digest)
    result = broken(published, f"s3:{aws.bucket}")
    assert result.digest == 2 and "digest 2 is missing (digest 3 follows digest 1)" in result.problem


def test_a_digest_without_a_compliance_lock_is_detected(make_trail, aws):
    trail = make_trail(audit_s3_bucket=None)
    fill(trail)
    digest = trail.log.digest()
    aws.s3.put_object(
        Bucket=aws.bucket,
        Key=object_key(DIGEST_PREFIX, 1),
        Body=digest.body().encode(),
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1),
    )
    result = broken(make_trail(), f"s3:{aws.bucket}")
    assert "not locked in COMPLIANCE mode (lock: GOVERNANCE)" in result.problem


def test_deleting_the_newest_events_and_the_local_digests_is_caught_by_the_bucket(trail, aws):
    db = sqlite3.connect(trail.log.path)
    with db:
        db.execute("DELETE FROM audit_events WHERE seq = 9")
        db.execute("DELETE FROM audit_digests")  # what the local log alone could never notice
    db.close()
    result = broken(trail, f"s3:{aws.bucket}")
    assert "digest 1 is in the bucket but not in the local log" in result.problem


# --- export ----------------------------------------------------------------------------------------


def test_export_since_a_day_reads_the_day_index(make_trail, aws):
    clock = Clock()
    trail = make_trail(clock=clock)
    fill(trail, plans=("old",))
    clock.offset = timedelta(days=2)
    fill(trail, plans=("new",))
    since = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    since_time = datetime.fromisoformat(since).replace(tzinfo=UTC)
    from_table = trail.export(since_time, source="dynamodb")
    from_log = trail.export(since_time, source="local")
    assert [e.seq for e in from_table] == [e.seq for e in from_log] == [4, 5, 6]
    assert {e.plan_id for e in from_table} == {"new"}


# --- the command line, as a user runs it ---------------------------------------------------------------


def test_the_cli_walkthrough_on_aws(aws, tmp_path):
    """run → approve → digest → verify passes; one edited item → verify fails naming it."""
    env = {
        **os.environ,
        "AGENTOPS_HOME": str(tmp_path / "state"),
        "COLUMNS": "200",
        "AGENTOPS_AWS_ENDPOINT_URL": aws.url,
        "AGENTOPS_AWS_MAX_ATTEMPTS": "1",
        "AGENTOPS_AUDIT_DYNAMODB_TABLE": aws.table,
        "AGENTOPS_AUDIT_S3_BUCKET": aws.bucket,
    }
    env.pop("EXECUTE", None)
    agentops = str(Path(sys.executable).parent / "agentops")

    def cli(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
        result = subprocess.run([agentops, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == expect, f"exit {result.returncode}\nstdout:{result.stdout}\nstderr:{result.stderr}"
        assert "Traceback" not in result.stderr + result.stdout
        return result

    plan_id = json.loads(
        cli(
            "run",
            "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%",
            "--env",
            "prod",
            "--user",
            "alice@example.com",
            "--json",
        ).stdout
    )["plan_id"]
    cli("approve", plan_id, "--as", "bob@example.com", "--reason", "ok")
    assert json.loads(cli("audit", "digest", "--json").stdout)["digest"]["digest_seq"] == 1
    verified = cli("audit", "verify")
    assert "intact" in verified.stdout and f"dynamodb:{aws.table}" in verified.stdout
    assert json.loads(cli("audit", "sync", "--json").stdout)["errors"] == []

    exported = cli(
        "audit", "export", "--since", datetime.now(UTC).date().isoformat(), "--format", "jsonl", "--source", "dynamodb"
    ).stdout.splitlines()
    events = [json.loads(line) for line in exported]
    assert {e["plan_id"] for e in events} == {plan_id} and events[0]["seq"] == 1 and len(events) >= 4
    assert {"seq", "event_id", "plan_id", "step", "ts", "actor", "payload", "prev_hash", "hash"} <= set(events[0])

    item = next(i for i in aws.items() if i["seq"]["N"] == "2")
    aws.ddb.update_item(
        TableName=aws.table,
        Key=aws.key(plan_id, 2),
        UpdateExpression="SET actor = :a",
        ExpressionAttributeValues={":a": {"S": item["actor"]["S"] + "-x"}},
    )
    failed = cli("audit", "verify", expect=15)  # ExitCode.AUDIT_BROKEN
    assert (
        "BROKEN" in failed.stdout and f"dynamodb:{aws.table}" in failed.stdout and "event 2" in failed.stdout and "changed" in failed.stdout
    )

    bad_since = cli("audit", "export", "--since", "last tuesday", expect=1)
    assert "--since must be a date" in bad_since.stderr and bad_since.stderr.strip().count("\n") == 0
