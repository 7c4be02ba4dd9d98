"""The deploy node with the dry-run deployer: the exact boto3 calls a deployment would make, checked against
botocore's service models, offline and with no AWS client created."""

from __future__ import annotations

import re
from typing import Any

import boto3
import botocore.session
import pytest
from fakes import RecordingDeployer, prod_config, runtime_for, staging_config

from agentops.errors import AgentOpsError
from agentops.schemas import DeploymentConfig
from nodes.deploy import deploy
from tools.sagemaker import calls
from tools.sagemaker.calls import aws_call, build_deployment_calls, resource_names
from tools.sagemaker.dry_run import DryRunDeployer
from tools.sagemaker.validation import validate_calls

PLAN_ID = "3f2a9c1b-0d4e-4f5a-9b6c-7d8e9f0a1b2c"
OTHER_PLAN_ID = "c0ffee00-1234-4abc-8def-0123456789ab"
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")

ALLOWED = {"verdict": {"allowed": True, "violations": [], "warnings": []}, "requires_approval": False}
NEEDS_APPROVAL = {"verdict": {"allowed": True, "violations": [], "warnings": []}, "requires_approval": True}
APPROVED = {"approved": True, "approver": "bob", "reason": "looks good"}


def plan_state(
    config: dict[str, Any], *, plan_id: str = PLAN_ID, report: dict | None = None, decision: dict | None = None, env: str = "staging"
) -> dict[str, Any]:
    return {"plan_id": plan_id, "env": env, "config": config, "report": report or ALLOWED, "decision": decision}


def prod_state(**changes: Any) -> dict[str, Any]:
    return plan_state(prod_config(**changes), report=NEEDS_APPROVAL, decision=APPROVED, env="prod")


@pytest.fixture
def run(make_deps, settings):
    def run_node(state: dict[str, Any]) -> dict[str, Any]:
        return deploy(state, runtime_for(make_deps(deployer=DryRunDeployer(settings))))

    return run_node


def operations(update: dict[str, Any]) -> list[str]:
    return [call["operation"] for call in update["deployment"]["calls"]]


def params_of(update: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    return [call["params"] for call in update["deployment"]["calls"] if call["operation"] == operation]


def build(config: dict[str, Any], plan_id: str = PLAN_ID, **overrides: str) -> list[calls.AwsCall]:
    settings = {
        "role_arn": "arn:aws:iam::123456789012:role/sagemaker",
        "default_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference:1",
        "data_capture_bucket": "capture",
        "region": "us-east-1",
    }
    return build_deployment_calls(DeploymentConfig.model_validate(config), plan_id, **{**settings, **overrides})


# --- the calls -----------------------------------------------------------------------------------------


def test_staging_records_model_config_alarms_and_endpoint_only(run):
    update = run(plan_state(staging_config()))

    assert update["status"] == "deployed"
    assert update["deployment"]["mode"] == "dry_run"
    assert operations(update) == ["CreateModel", "CreateEndpointConfig", "PutMetricAlarm", "PutMetricAlarm", "CreateEndpoint"]
    [endpoint_config] = params_of(update, "CreateEndpointConfig")
    assert "DataCaptureConfig" not in endpoint_config
    [endpoint] = params_of(update, "CreateEndpoint")
    assert endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"


def test_staging_calls_are_wired_to_each_other(run, settings):
    update = run(plan_state(staging_config()))

    [model] = params_of(update, "CreateModel")
    [endpoint_config] = params_of(update, "CreateEndpointConfig")
    [endpoint] = params_of(update, "CreateEndpoint")
    assert model["ExecutionRoleArn"] == settings.execution_role_arn
    assert model["PrimaryContainer"] == {
        "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311-ubuntu20.04-sagemaker",
        "ModelDataUrl": "s3://models/churn/1/model.tar.gz",
    }
    assert endpoint_config["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName": model["ModelName"],
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 1.0,
        }
    ]
    assert endpoint["EndpointName"] == "churn-staging"
    assert endpoint["EndpointConfigName"] == endpoint_config["EndpointConfigName"]


def test_everything_created_carries_the_endpoint_and_plan_tags(run):
    update = run(prod_state(autoscaling_max=4))

    tagged = [c["operation"] for c in update["deployment"]["calls"] if "Tags" in c["params"]]
    assert tagged == [
        "CreateModel",
        "CreateEndpointConfig",
        "PutMetricAlarm",
        "PutMetricAlarm",
        "CreateEndpoint",
        "RegisterScalableTarget",
        "CreateDataQualityJobDefinition",
        "CreateMonitoringSchedule",
    ]
    [model] = params_of(update, "CreateModel")
    assert model["Tags"] == [{"Key": "agentops:endpoint", "Value": "fraud-detector-prod"}, {"Key": "agentops:plan", "Value": PLAN_ID}]


def test_config_image_overrides_the_default(run):
    update = run(plan_state(staging_config(image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:7")))

    [model] = params_of(update, "CreateModel")
    assert model["PrimaryContainer"]["Image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:7"


@pytest.mark.parametrize(
    ("instance_type", "framework", "image"),
    [
        ("ml.g5.xlarge", "pytorch", "pytorch-inference:2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker"),
        ("ml.p4d.24xlarge", "pytorch", "pytorch-inference:2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker"),
        ("ml.m5.large", "pytorch", "pytorch-inference:2.3.0-cpu-py311-ubuntu20.04-sagemaker"),
        ("ml.g5.2xlarge", "tensorflow", "tensorflow-inference:2.16.1-gpu-py310-cu122-ubuntu22.04-sagemaker"),
        ("ml.c5.xlarge", "tensorflow", "tensorflow-inference:2.16.1-cpu-py310-ubuntu20.04-sagemaker"),
    ],
)
def test_the_image_follows_the_instance_family_and_framework(make_deps, settings, instance_type, framework, image):
    changed = settings.model_copy(update={"inference_framework": framework, "aws_region": "eu-west-1"})
    deps = make_deps(settings=changed, deployer=DryRunDeployer(changed))
    update = deploy(plan_state(staging_config(instance_type=instance_type)), runtime_for(deps))

    [model] = params_of(update, "CreateModel")
    assert model["PrimaryContainer"]["Image"] == f"763104351884.dkr.ecr.eu-west-1.amazonaws.com/{image}"


def test_a_configured_image_wins_over_the_table_and_the_plans_own_wins_over_both(make_deps, settings):
    ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ours:5"
    changed = settings.model_copy(update={"default_image_uri": ecr})
    deps = make_deps(settings=changed, deployer=DryRunDeployer(changed))

    [model] = params_of(deploy(plan_state(staging_config(instance_type="ml.g5.xlarge")), runtime_for(deps)), "CreateModel")
    assert model["PrimaryContainer"]["Image"] == ecr
    own = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:7"
    [model] = params_of(deploy(plan_state(staging_config(image_uri=own)), runtime_for(deps)), "CreateModel")
    assert model["PrimaryContainer"]["Image"] == own


@pytest.mark.parametrize(
    ("changes", "instance_type", "message"),
    [
        ({}, "ml.inf2.xlarge", "ml.inf2.xlarge runs AWS Neuron.*set image_uri in the plan or AGENTOPS_DEFAULT_IMAGE_URI"),
        (
            {"aws_region": "me-south-1"},
            "ml.m5.large",
            "no Deep Learning Container image is known for region me-south-1: set AGENTOPS_DEFAULT_IMAGE_URI",
        ),
    ],
)
def test_no_image_is_guessed_where_the_table_has_none(make_deps, settings, changes, instance_type, message):
    changed = settings.model_copy(update=changes)
    deps = make_deps(settings=changed, deployer=DryRunDeployer(changed))

    update = deploy(plan_state(staging_config(instance_type=instance_type)), runtime_for(deps))

    assert update["status"] == "failed" and re.search(message, update["error"])


def test_prod_records_canary_capture_rollback_and_monitoring(run, settings):
    update = run(prod_state())

    assert update["status"] == "deployed"
    assert operations(update) == [
        "CreateModel",
        "CreateEndpointConfig",
        "PutMetricAlarm",
        "PutMetricAlarm",
        "CreateEndpoint",
        "CreateDataQualityJobDefinition",
        "CreateMonitoringSchedule",
    ]
    [endpoint_config] = params_of(update, "CreateEndpointConfig")
    assert endpoint_config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": f"s3://{settings.data_capture_bucket}/fraud-detector-prod/",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    assert "AutoRollbackConfiguration" not in str(endpoint_config)

    [endpoint] = params_of(update, "CreateEndpoint")
    policy = endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert policy["TrafficRoutingConfiguration"]["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 10}
    assert endpoint["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "fraud-detector-prod-ModelMonitorAlarm"}, {"AlarmName": "fraud-detector-prod-DataDriftAlarm"}],
    }


def test_prod_monitoring_schedule_runs_hourly_on_the_job_definition(run, settings):
    update = run(prod_state())

    [job] = params_of(update, "CreateDataQualityJobDefinition")
    [schedule] = params_of(update, "CreateMonitoringSchedule")
    assert job["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == "fraud-detector-prod"
    assert job["DataQualityAppSpecification"]["ImageUri"] == "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
    assert job["RoleArn"] == settings.execution_role_arn
    output_uri = job["DataQualityJobOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["S3Uri"]
    assert output_uri.startswith(f"s3://{settings.data_capture_bucket}/")
    assert schedule["MonitoringScheduleConfig"] == {
        "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
        "MonitoringJobDefinitionName": job["JobDefinitionName"],
        "MonitoringType": "DataQuality",
    }


def test_rollback_alarms_watch_errors_and_drift_of_this_endpoint(run):
    update = run(prod_state())

    errors, drift = params_of(update, "PutMetricAlarm")
    [schedule] = params_of(update, "CreateMonitoringSchedule")
    assert (errors["AlarmName"], errors["Namespace"], errors["MetricName"]) == (
        "fraud-detector-prod-ModelMonitorAlarm",
        "AWS/SageMaker",
        "Invocation5XXErrors",
    )
    assert errors["Dimensions"] == [
        {"Name": "EndpointName", "Value": "fraud-detector-prod"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    assert (drift["AlarmName"], drift["Namespace"]) == ("fraud-detector-prod-DataDriftAlarm", "aws/sagemaker/Endpoints/data-metrics")
    assert drift["MetricName"].startswith("feature_baseline_drift")
    assert {"Name": "MonitoringSchedule", "Value": schedule["MonitoringScheduleName"]} in drift["Dimensions"]


def test_unknown_alarm_name_gets_an_endpoint_health_metric(run):
    update = run(plan_state(staging_config(rollback_alarms=["LatencyAlarm"])))

    [alarm] = params_of(update, "PutMetricAlarm")
    assert alarm["AlarmName"] == "churn-staging-LatencyAlarm"
    assert alarm["Namespace"] == "AWS/SageMaker"
    assert {"Name": "EndpointName", "Value": "churn-staging"} in alarm["Dimensions"]


def test_linear_strategy_steps_by_canary_percent(run):
    update = run(plan_state(staging_config(deployment_strategy="linear", canary_percent=25)))

    [endpoint] = params_of(update, "CreateEndpoint")
    routing = endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "LINEAR"
    assert routing["LinearStepSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert "CanarySize" not in routing


def test_autoscaling_calls_only_when_asked(run):
    fixed = run(plan_state(staging_config()))
    scaled = run(plan_state(staging_config(autoscaling_min=2, autoscaling_max=4)))

    assert "RegisterScalableTarget" not in operations(fixed)
    assert "PutScalingPolicy" not in operations(fixed)
    assert operations(scaled)[-2:] == ["RegisterScalableTarget", "PutScalingPolicy"]
    [target] = params_of(scaled, "RegisterScalableTarget")
    assert target == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/churn-staging/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 2,
        "MaxCapacity": 4,
        "Tags": {"agentops:endpoint": "churn-staging"},
    }
    [policy] = params_of(scaled, "PutScalingPolicy")
    assert policy["ResourceId"] == target["ResourceId"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    metric = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}


def test_every_call_names_its_boto3_method():
    for call in build(prod_config(autoscaling_max=4)):
        assert call["method"] == botocore.xform_name(call["operation"])
        assert call["service"] in {"sagemaker", "cloudwatch", "application-autoscaling"}


# --- names ---------------------------------------------------------------------------------------------


def test_same_plan_id_gives_identical_calls():
    assert build(prod_config(), PLAN_ID) == build(prod_config(), PLAN_ID)


def test_other_plan_id_gives_new_model_and_config_on_the_same_endpoint():
    config = DeploymentConfig.model_validate(prod_config())
    first, second = resource_names(PLAN_ID, config), resource_names(OTHER_PLAN_ID, config)

    assert first.model != second.model
    assert first.endpoint_config != second.endpoint_config
    assert first.data_quality_job_definition != second.data_quality_job_definition
    assert (first.endpoint, first.variant, first.alarms, first.monitoring_schedule) == (
        second.endpoint,
        second.variant,
        second.alarms,
        second.monitoring_schedule,
    )
    assert first.endpoint == "fraud-detector-prod"


def test_names_carry_the_plan_id_prefix():
    names = resource_names(PLAN_ID, DeploymentConfig.model_validate(staging_config()))

    assert names.model == "churn-v1-3f2a9c1b"


def test_a_non_uuid_plan_id_still_gives_a_stable_valid_suffix():
    config = DeploymentConfig.model_validate(staging_config())

    assert resource_names("plan #1", config) == resource_names("plan #1", config)
    assert resource_names("plan #1", config).model != resource_names("plan #2", config).model
    assert SAGEMAKER_NAME.match(resource_names("plan #1", config).model)


@pytest.mark.parametrize("model_name", ["m" * 63, "a" * 53 + "-" + "b" * 9, "x" * 200, "fraud_detector.v3"])
def test_names_fit_sagemaker_rules_even_for_long_model_names(model_name):
    config = DeploymentConfig.model_validate(prod_config(model_name=model_name, endpoint_name="e" * 63))
    names = resource_names(PLAN_ID, config)

    for name in (names.model, names.endpoint_config, names.data_quality_job_definition, names.monitoring_schedule):
        assert len(name) <= 63
        assert SAGEMAKER_NAME.match(name), name
    assert names.model.endswith("-3f2a9c1b")
    assert "--" not in names.model  # a cut never leaves a dangling hyphen before the suffix
    validate_calls(build(prod_config(model_name=model_name, endpoint_name="e" * 63)))


# --- validation ----------------------------------------------------------------------------------------


def test_botocore_validation_really_runs_missing_model_name():
    call = aws_call("sagemaker", "CreateModel", {"ExecutionRoleArn": "arn:aws:iam::123456789012:role/sagemaker"})

    with pytest.raises(AgentOpsError, match=r"CreateModel.*ModelName"):
        validate_calls([call])


def test_botocore_validation_rejects_a_wrong_type():
    calls = build(staging_config())
    calls[1]["params"]["ProductionVariants"][0]["InitialInstanceCount"] = "2"

    with pytest.raises(AgentOpsError, match=r"CreateEndpointConfig.*InitialInstanceCount") as raised:
        validate_calls(calls)
    assert "\n" not in str(raised.value)


def test_validation_rejects_auto_rollback_on_the_endpoint_config():
    calls = build(staging_config())
    calls[1]["params"]["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": "x"}]}

    with pytest.raises(AgentOpsError, match=r"CreateEndpointConfig.*AutoRollbackConfiguration"):
        validate_calls(calls)


def test_validation_checks_name_patterns_that_botocore_skips():
    calls = build(staging_config(endpoint_name="churn_staging"))

    with pytest.raises(AgentOpsError, match=r"CreateEndpoint .*EndpointName"):
        validate_calls(calls)


def test_validation_checks_maximum_lengths_that_botocore_skips():
    call = aws_call("sagemaker", "CreateModel", {"ModelName": "m" * 64})

    with pytest.raises(AgentOpsError, match=r"CreateModel.*ModelName.*exceeds 63"):
        validate_calls([call])


def test_validation_rejects_an_unknown_operation_and_a_wrong_method():
    with pytest.raises(AgentOpsError, match="no operation CreateModle"):
        validate_calls([{"service": "sagemaker", "operation": "CreateModle", "method": "create_modle", "params": {}}])
    with pytest.raises(AgentOpsError, match="method"):
        validate_calls([{"service": "sagemaker", "operation": "CreateModel", "method": "create_endpoint", "params": {"ModelName": "m"}}])


def test_all_built_calls_pass_validation():
    validate_calls(build(prod_config(autoscaling_max=4)))
    validate_calls(build(staging_config(deployment_strategy="linear", canary_percent=10)))


def test_model_monitor_in_an_unknown_region_is_an_actionable_error():
    with pytest.raises(AgentOpsError, match="region mars-north-1"):
        build(prod_config(), region="mars-north-1")


# --- the node ------------------------------------------------------------------------------------------


def test_node_records_a_deploy_event_with_the_operations(run):
    update = run(prod_state())

    [event] = update["events"]
    assert (event["step"], event["actor"]) == ("deploy", "agentops")
    assert event["payload"]["mode"] == "dry_run"
    assert event["payload"]["status"] == "deployed"
    assert event["payload"]["operations"] == operations(update)
    assert event["payload"]["resources"]["endpoint"] == "fraud-detector-prod"
    assert event["payload"]["resources"]["alarms"] == ["fraud-detector-prod-ModelMonitorAlarm", "fraud-detector-prod-DataDriftAlarm"]


def test_params_botocore_rejects_fail_the_plan_with_one_line(run):
    update = run(prod_state(canary_percent=0))  # CanarySize.Value has a minimum of 1

    assert update["status"] == "failed"
    assert "CreateEndpoint" in update["error"] and "CanarySize" in update["error"]
    assert "\n" not in update["error"]
    assert "deployment" not in update
    [event] = update["events"]
    assert event["step"] == "deploy"
    assert event["payload"] == {"status": "failed", "error": update["error"]}


def test_a_broken_builder_fails_the_plan_not_the_graph(run, monkeypatch):
    def wrong_type_model_call(config, names, role_arn, default_image_uri, vpc=None, tags=None):
        return aws_call("sagemaker", "CreateModel", {"ModelName": names.model, "PrimaryContainer": "not-a-dict"})

    monkeypatch.setattr(calls, "create_model_call", wrong_type_model_call)
    update = run(plan_state(staging_config()))

    assert update["status"] == "failed"
    assert update["error"].startswith("sagemaker CreateModel rejected:")
    assert "PrimaryContainer" in update["error"]


def test_dry_run_creates_no_aws_client(run, monkeypatch):
    def no_clients(*args: Any, **kwargs: Any):
        raise AssertionError("dry-run must not create an AWS client")

    monkeypatch.setattr(boto3, "client", no_clients)
    monkeypatch.setattr(boto3.session.Session, "client", no_clients)
    monkeypatch.setattr(botocore.session.Session, "create_client", no_clients)

    assert run(prod_state(autoscaling_max=4))["status"] == "deployed"


@pytest.mark.parametrize(
    "report",
    [
        {"verdict": {"allowed": False, "violations": [{"rule": "cost.max"}]}, "requires_approval": False},
        {},
    ],
)
def test_guard_refuses_a_plan_the_guardrail_did_not_allow(make_deps, report):
    deployer = RecordingDeployer()
    state = {"plan_id": PLAN_ID, "config": staging_config(), "report": report}

    update = deploy(state, runtime_for(make_deps(deployer=deployer)))

    assert update["status"] == "failed"
    assert update["error"] == "refusing to deploy a plan the guardrail did not allow"
    assert update["events"][0]["payload"]["error"] == update["error"]
    assert deployer.deployed == []


@pytest.mark.parametrize("decision", [None, {"approved": False, "approver": "bob", "reason": "no"}])
def test_guard_refuses_an_unapproved_plan_that_needs_approval(make_deps, decision):
    deployer = RecordingDeployer()

    update = deploy(plan_state(prod_config(), report=NEEDS_APPROVAL, decision=decision), runtime_for(make_deps(deployer=deployer)))

    assert update["status"] == "failed"
    assert "requires approval" in update["error"]
    assert deployer.deployed == []


def test_an_approved_plan_reaches_the_deployer(make_deps):
    deployer = RecordingDeployer()

    update = deploy(prod_state(), runtime_for(make_deps(deployer=deployer)))

    assert update["status"] == "deployed"
    assert [plan_id for plan_id, _ in deployer.deployed] == [PLAN_ID]
