"""The Terraform in terraform/ agrees with the code that uses what it builds.

No terraform binary runs here (none can be installed); python-hcl2 reads the files, and these tests
check what would break AgentOps at run time or weaken the audit trail: the table's keys and index, the
bucket's lock mode, the settings the outputs feed, least privilege. Security scanning is checkov's job
(in .ci/run); this is the contract between the two halves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from pydantic import AliasChoices

from agentops.settings import PROJECT_ROOT, Settings
from tools.audit.dynamodb import table_definition
from tools.audit.s3 import LOCK_MODE
from tools.sagemaker.calls import TAG_ENDPOINT, TAG_PLAN, TAG_PREVIOUS_CONFIG

TERRAFORM = PROJECT_ROOT / "terraform"
_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def _load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return hcl2.load(f, serialization_options=_OPTIONS)


@pytest.fixture(scope="module")
def tf() -> dict[str, dict]:
    """Every block of every .tf file, by kind: resource/data keyed (type, name); variable/output by name."""
    blocks: dict[str, dict] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}}
    for path in sorted(TERRAFORM.glob("*.tf")):
        parsed = _load(path)
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        blocks[kind][(rtype, name)] = body
        for kind in ("variable", "output"):
            for entry in parsed.get(kind, []):
                blocks[kind].update(entry)
        for entry in parsed.get("locals", []):
            blocks["locals"].update(entry)
    return blocks


def statements(tf, document: str) -> list[dict]:
    return tf["data"][("aws_iam_policy_document", document)]["statement"]


def test_the_files_parse_and_hold_the_whole_stack(tf):
    assert {t for t, _ in tf["resource"]} >= {
        "aws_dynamodb_table",
        "aws_s3_bucket",
        "aws_s3_bucket_object_lock_configuration",
        "aws_cloudtrail",
        "aws_kms_key",
        "aws_iam_role",
        "aws_iam_role_policy",
    }


# --- the table ---------------------------------------------------------------------------------------


def test_the_table_has_the_keys_and_index_the_code_writes_and_queries(tf):
    table = tf["resource"][("aws_dynamodb_table", "audit")]
    expected = table_definition("any")
    keys = {k["KeyType"]: k["AttributeName"] for k in expected["KeySchema"]}
    assert (table["hash_key"], table["range_key"]) == (keys["HASH"], keys["RANGE"])
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in expected["AttributeDefinitions"]
    }
    [index] = expected["GlobalSecondaryIndexes"]
    index_keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
    [gsi] = table["global_secondary_index"]
    assert (gsi["name"], gsi["hash_key"], gsi["range_key"]) == (index["IndexName"], index_keys["HASH"], index_keys["RANGE"])
    assert gsi["projection_type"] == index["Projection"]["ProjectionType"]
    assert table["billing_mode"] == expected["BillingMode"]


def test_the_table_is_recoverable_encrypted_and_protected(tf):
    table = tf["resource"][("aws_dynamodb_table", "audit")]
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["server_side_encryption"][0] == {"enabled": True, "kms_key_arn": "${aws_kms_key.audit.arn}"}
    assert table["deletion_protection_enabled"] == "${var.audit_table_deletion_protection}"
    assert tf["variable"]["audit_table_deletion_protection"]["default"] is True


# --- the bucket --------------------------------------------------------------------------------------


def test_the_bucket_locks_in_the_mode_the_code_writes_and_verifies(tf):
    assert tf["resource"][("aws_s3_bucket", "locked")]["object_lock_enabled"] is True
    [rule] = tf["resource"][("aws_s3_bucket_object_lock_configuration", "locked")]["rule"]
    retention = rule["default_retention"][0]
    assert retention["mode"] == LOCK_MODE
    assert retention["days"] == "${each.value.retention_days}"
    assert tf["locals"]["locked_buckets"]["audit"]["retention_days"] == "${var.audit_retention_days}"
    # The per-object lock AgentOps writes and the bucket default last equally long out of the box.
    assert tf["variable"]["audit_retention_days"]["default"] == Settings.model_fields["audit_retention_days"].default


def test_the_bucket_is_versioned_encrypted_private_and_tls_only(tf):
    res = tf["resource"]
    assert res[("aws_s3_bucket_versioning", "locked")]["versioning_configuration"][0]["status"] == "Enabled"
    sse = res[("aws_s3_bucket_server_side_encryption_configuration", "locked")]["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert sse == {"sse_algorithm": "aws:kms", "kms_master_key_id": "${aws_kms_key.audit.arn}"}
    block = res[("aws_s3_bucket_public_access_block", "locked")]
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))
    for document in ("audit_bucket", "trail_bucket"):
        [deny] = [s for s in statements(tf, document) if s.get("sid") == "DenyInsecureTransport"]
        assert deny["effect"] == "Deny" and deny["actions"] == ["s3:*"]
        assert deny["condition"][0] == {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
        assert len(deny["resources"]) == 2  # the bucket and its objects


def test_nothing_expires_the_audit_objects(tf):
    # An expiration rule would add delete markers, which `agentops audit verify` reports as deletions.
    [rule] = tf["resource"][("aws_s3_bucket_lifecycle_configuration", "locked")]["rule"]
    assert "expiration" not in rule and "noncurrent_version_expiration" not in rule


# --- CloudTrail and KMS ------------------------------------------------------------------------------


def test_cloudtrail_validates_its_logs_and_records_the_table_and_the_bucket(tf):
    trail = tf["resource"][("aws_cloudtrail", "audit")]
    assert trail["enable_log_file_validation"] is True and trail["kms_key_id"] == "${aws_kms_key.audit.arn}"
    selectors = {}
    for selector in trail["advanced_event_selector"]:
        fields = {f["field"]: f for f in selector["field_selector"]}
        if fields["eventCategory"]["equals"] == ["Data"]:
            selectors[fields["resources.type"]["equals"][0]] = fields["resources.ARN"]
    assert selectors["AWS::DynamoDB::Table"]["equals"] == ["${aws_dynamodb_table.audit.arn}"]
    assert selectors["AWS::S3::Object"]["starts_with"] == ['${aws_s3_bucket.locked["audit"].arn}/']


def test_the_key_rotates(tf):
    assert tf["resource"][("aws_kms_key", "audit")]["enable_key_rotation"] is True


# --- least privilege ---------------------------------------------------------------------------------


def test_the_orchestrator_passes_only_the_execution_role_and_only_to_sagemaker(tf):
    passing = [s for s in statements(tf, "orchestrator") if "iam:PassRole" in s["actions"]]
    assert len(passing) == 1 and passing[0]["actions"] == ["iam:PassRole"]
    assert passing[0]["resources"] == ["${aws_iam_role.sagemaker_execution.arn}"]
    assert passing[0]["condition"][0] == {"test": "StringEquals", "variable": "iam:PassedToService", "values": ["sagemaker.amazonaws.com"]}


AWS_SERVICES = ("sagemaker:", "application-autoscaling:", "cloudwatch:")
READS = re.compile(r"^[a-z-]+:(Describe|List)")


def tag_conditions(statement: dict) -> set[str]:
    return {c["variable"] for c in statement.get("condition", []) if c["test"] == "Null" and c["values"] == ["false"]}


def test_the_orchestrator_creates_only_with_its_tag_and_changes_only_what_carries_it(tf):
    owner = tf["locals"]["owner_tag"]
    assert owner == TAG_ENDPOINT, "the tag the policy checks is the tag the code sets"
    assert set(tf["locals"]["version_tag_keys"]) == {TAG_PREVIOUS_CONFIG, TAG_PLAN}
    for statement in statements(tf, "orchestrator"):
        writes = [a for a in statement["actions"] if a.startswith(AWS_SERVICES) and not READS.match(a)]
        if not writes:
            continue
        creates = all(re.match(r"^[a-z-]+:(Create|Put|Register|AddTags|TagResource)", a) for a in writes)
        expected = (
            "aws:RequestTag/${local.owner_tag}" if creates and "Record" not in statement["sid"] else "aws:ResourceTag/${local.owner_tag}"
        )
        assert expected in tag_conditions(statement), f"{statement['sid']} lets {writes} act without the owner tag"
        assert "*" not in statement["resources"], f"{statement['sid']} allows every resource"


def test_only_list_and_describe_calls_get_every_resource(tf):
    for statement in statements(tf, "orchestrator"):
        if "*" in statement["resources"]:
            assert all(READS.match(a) for a in statement["actions"]), statement["sid"]


def test_every_call_the_orchestrator_makes_is_allowed(tf):
    """Each operation the call builders emit (a whole lifecycle: create with autoscaling and the monitor, update,
    rollback, teardown) and each read, maps to an action some statement allows."""
    allowed = {a for s in statements(tf, "orchestrator") for a in s["actions"]}
    prefix = {"sagemaker": "sagemaker", "cloudwatch": "cloudwatch", "application-autoscaling": "application-autoscaling"}
    made = {f"{prefix[c['service']]}:{c['operation']}" for c in lifecycle_operations()}
    reads = {
        "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:ListTags",
        "sagemaker:ListModels", "sagemaker:ListEndpointConfigs", "sagemaker:ListDataQualityJobDefinitions",
        "sagemaker:DescribeMonitoringSchedule", "sagemaker:DescribeDataQualityJobDefinition",
        "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies",
        "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource", "sagemaker:UpdateMonitoringSchedule",
    }  # fmt: skip
    assert made | reads <= allowed, sorted((made | reads) - allowed)


def lifecycle_operations() -> list[dict]:
    from agentops.schemas import DeploymentConfig, EndpointAction
    from tools.sagemaker.calls import (
        EndpointState,
        OwnedResource,
        build_deployment_calls,
        build_rollback_calls,
        build_teardown_calls,
    )

    config = DeploymentConfig(
        model_name="churn-v2",
        endpoint_name="churn-prod",
        instance_type="ml.m5.xlarge",
        instance_count=2,
        autoscaling_max=4,
        model_data_url="s3://m/churn/2/model.tar.gz",
        rollback_alarms=["ModelMonitorAlarm"],
        data_capture_percent=10,
        enable_model_monitor=True,
    )
    running = EndpointState(
        endpoint_name="churn-prod",
        exists=True,
        arn="arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn-prod",
        status="InService",
        endpoint_config="churn-v1-0000aaaa",
        previous_endpoint_config="churn-v0-0000bbbb",
        managed=True,
        instance_type="ml.m5.large",
        autoscaling_min=2,
        autoscaling_max=4,
        scaling_policies=["p"],
        monitoring_schedule="churn-prod-data-quality",
        owned=[OwnedResource(kind=k, name="x") for k in ("endpoint_config", "model", "data_quality_job_definition", "alarm")],
    )
    kwargs = {"role_arn": "arn:aws:iam::123456789012:role/r", "default_image_uri": "i", "data_capture_bucket": "c", "region": "us-east-1"}
    return [
        *build_deployment_calls(config, "p1", **kwargs),
        *build_deployment_calls(config, "p2", current=running, **kwargs),
        *build_rollback_calls(EndpointAction(action="rollback", endpoint_name="churn-prod"), running, "p3"),
        *build_teardown_calls(running),
    ]


def test_the_orchestrator_can_write_the_audit_trail_but_never_rewrite_it(tf):
    actions = {a for s in statements(tf, "orchestrator") for a in s["actions"]}
    assert {"dynamodb:PutItem", "s3:PutObject", "s3:PutObjectRetention", "s3:ListBucketVersions"} <= actions
    forbidden = {
        a for a in actions if re.match(r"dynamodb:(Update|Delete|BatchWrite)|s3:(Delete|BypassGovernance|PutBucket|PutObjectLegalHold)", a)
    }
    assert forbidden == set()


# --- what the app reads ------------------------------------------------------------------------------


def _setting_env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        else:
            names.add((alias or f"{Settings.model_config['env_prefix']}{name}").upper())
    return names


def test_the_outputs_feed_settings_the_app_reads(tf):
    environment = tf["output"]["agentops_environment"]["value"]
    assert set(environment) <= _setting_env_names(), "an output names a variable AgentOps does not read"
    assert environment["AGENTOPS_AUDIT_DYNAMODB_TABLE"] == "${aws_dynamodb_table.audit.name}"
    assert environment["AGENTOPS_AUDIT_S3_BUCKET"] == '${aws_s3_bucket.locked["audit"].bucket}'
    assert environment["AGENTOPS_AUDIT_RETENTION_DAYS"] == "${tostring(var.audit_retention_days)}"
    assert environment["AGENTOPS_EXECUTION_ROLE_ARN"] == "${aws_iam_role.sagemaker_execution.arn}"


def test_every_checkov_skip_gives_its_reason():
    for path in TERRAFORM.glob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#checkov:skip=CKV2?_AWS_\d+:\s*\S.{10,}", line), f"{path.name}: a skip without a reason: {line.strip()}"
