"""Execute mode end to end: the whole workflow against moto's server over HTTP on 127.0.0.1, with botocore's
Stubber only for what moto lacks (UpdateEndpoint, monitoring schedules) and for status sequences."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from aws_testing import (  # noqa: F401  (pytest fixtures)
    CallLog,
    FakeClock,
    Routed,
    aws_env,
    client,
    clients_with,
    endpoint_response,
    execute_settings,
    moto,
    moto_server,
    queue_statuses,
    stubbed,
)
from botocore.stub import ANY
from fakes import staging_config

from agentops.errors import AgentOpsError
from agentops.schemas import DeploymentConfig
from agentops.settings import PROJECT_ROOT
from app.exit_codes import ExitCode
from app.service import BlockingOrchestrator, Orchestrator
from graph.wiring import build_dependencies
from tools.audit.local import SqliteAuditLog
from tools.audit.trail import AuditTrail
from tools.sagemaker.aws import AwsClients
from tools.sagemaker.calls import TAG_ENDPOINT, TAG_PREVIOUS_CONFIG
from tools.sagemaker.execute import SageMakerExecutor
from tools.sagemaker.watch import EndpointWatcher

ENDPOINT = "churn-predictor-staging"
V1_INTENT = "deploy churn-predictor v1 to staging on 2 ml.m5.large"
V2_CANARY_INTENT = "deploy churn-predictor v2 to staging on 2 ml.m5.large, canary 20%"
V2_PLAN = "feedbeef000040008000000000000002"
V2_CONFIG = "churn-predictor-v2-feedbeef"  # names come from the plan id


@pytest.fixture
def settings(tmp_path, moto):  # overrides conftest's: execute mode against this test's moto
    return execute_settings(tmp_path / "home", moto)


@contextmanager
def orchestrator_for(settings, *, deployer_clients=None, watcher_clients=None, clock: FakeClock | None = None):
    """The real dependencies, with the executor's and watcher's clients and clock chosen by the test."""
    deps = build_dependencies(settings)
    real = AwsClients(settings)
    clock = clock or FakeClock()
    deps = replace(
        deps,
        deployer=SageMakerExecutor(settings, deployer_clients or real, sleep=clock.sleep),
        watcher=EndpointWatcher(settings, watcher_clients or real, sleep=clock.sleep, monotonic=clock.monotonic),
    )
    with Orchestrator.open(settings, deps) as orchestrator:
        yield orchestrator


def run_plan(orchestrator: BlockingOrchestrator, intent: str, env: str, requester: str, plan_id: str) -> dict[str, Any]:
    """Orchestrator.run with a plan id of the test's choosing, so the names the plan creates are known."""
    state = orchestrator.new_plan(intent, env, requester) | {"plan_id": plan_id}
    return orchestrator.portal.call(orchestrator.core.arun, state)


def steps(settings, plan_id: str) -> list[str]:
    return [e.step for e in SqliteAuditLog(settings.app_db).events(plan_id)]


def audit_payload(settings, plan_id: str, step: str) -> dict[str, Any]:
    return next(e.payload for e in SqliteAuditLog(settings.app_db).events(plan_id) if e.step == step)


def tags_of(sagemaker, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}


def deploy_v1(settings) -> dict[str, Any]:
    with orchestrator_for(settings) as orchestrator:
        view = orchestrator.run(V1_INTENT, "staging", "carol")
    assert view["status"] == "deployed", view.get("error")
    return view


def update_stubs(moto_url: str, settings, operations: set[str]):
    """The executor's sagemaker client with `operations` stubbed (the rest on moto), and a fully stubbed
    sagemaker client for the watcher's DescribeEndpoint sequence."""
    real = AwsClients(settings)
    exec_stub_client, exec_stub = stubbed("sagemaker", moto_url)
    watch_client, watch_stub = stubbed("sagemaker", moto_url)
    deployer_clients = clients_with(real, sagemaker=Routed(real("sagemaker"), exec_stub_client, operations))
    watcher_clients = clients_with(real, sagemaker=watch_client)
    return deployer_clients, exec_stub, watcher_clients, watch_stub


# --- a new endpoint --------------------------------------------------------------------------------------


def test_staging_intent_creates_exactly_one_model_config_and_endpoint(settings, moto):
    log = CallLog()
    real = AwsClients(settings)
    log.watch(real("sagemaker"), real("cloudwatch"))
    with orchestrator_for(settings, deployer_clients=real, watcher_clients=real) as orchestrator:
        view = orchestrator.run(V1_INTENT, "staging", "carol")

    assert view["status"] == "deployed"
    sagemaker = client("sagemaker", moto)
    [model] = sagemaker.list_models()["Models"]
    [config] = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    [endpoint] = sagemaker.list_endpoints()["Endpoints"]
    assert endpoint["EndpointName"] == ENDPOINT and endpoint["EndpointStatus"] == "InService"
    assert model["ModelName"] == config["EndpointConfigName"] == view["deployment"]["target_endpoint_config"]
    assert (log.operations["CreateModel"], log.operations["CreateEndpointConfig"], log.operations["CreateEndpoint"]) == (1, 1, 1)
    assert log.operations["UpdateEndpoint"] == 0
    described = sagemaker.describe_model(ModelName=model["ModelName"])
    assert described["ExecutionRoleArn"] == settings.execution_role_arn
    assert "VpcConfig" not in described or not described["VpcConfig"], "staging models run outside a VPC"
    assert tags_of(sagemaker, endpoint["EndpointArn"])[TAG_ENDPOINT] == ENDPOINT
    alarms = client("cloudwatch", moto).describe_alarms()["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == [f"{ENDPOINT}-DataDriftAlarm", f"{ENDPOINT}-ModelMonitorAlarm"]


def test_a_new_endpoint_is_planned_as_create_and_followed_on_the_record(settings):
    view = deploy_v1(settings)

    change = view["change"]
    assert change["known"] is True and change["action"] == "create"
    assert "nothing runs there now" in change["summary"]
    assert {row["field"]: row["current"] for row in change["diff"]}["instance_type"] is None
    deployment = view["deployment"]
    assert deployment["mode"] == "execute" and deployment["action"] == "create"
    assert [(e["operation"], e["outcome"]) for e in deployment["executed"]][:2] == [
        ("CreateModel", "created"),
        ("CreateEndpointConfig", "created"),
    ]
    assert deployment["watch"]["transitions"][-1]["status"] == "InService"
    assert steps(settings, view["plan_id"]) == ["plan.1", "resolve.1", "guardrail.1", "deploy", "watch.InService", "watch.result"]
    assert audit_payload(settings, view["plan_id"], "watch.result")["status"] == "deployed"
    assert AuditTrail(SqliteAuditLog(settings.app_db)).verify().ok


def test_a_new_endpoint_that_fails_ends_failed_with_sagemakers_reason(settings, moto):
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    watch_client, watch_stub = stubbed("sagemaker", moto)
    for status in ("Creating", "Creating"):
        watch_stub.add_response("describe_endpoint", endpoint_response(ENDPOINT, status, None))
    watch_stub.add_response("describe_endpoint", endpoint_response(ENDPOINT, "Failed", None, reason=reason))
    clock = FakeClock()

    with orchestrator_for(
        settings, watcher_clients=clients_with(AwsClients(settings), sagemaker=watch_client), clock=clock
    ) as orchestrator:
        view = orchestrator.run(V1_INTENT, "staging", "carol")

    assert view["status"] == "failed"
    assert reason in view["error"] and "\n" not in view["error"]
    assert clock.sleeps == [15.0, 22.5], "polls back off between DescribeEndpoint calls"
    assert steps(settings, view["plan_id"])[-3:] == ["watch.Creating", "watch.Failed", "watch.result"]
    watch_stub.assert_no_pending_responses()


# --- an update ---------------------------------------------------------------------------------------------


def test_update_with_canary_switches_the_endpoint_blue_green_and_remembers_the_old_config(settings, moto):
    v1 = deploy_v1(settings)
    old_config = v1["deployment"]["target_endpoint_config"]
    deployer_clients, exec_stub, watcher_clients, watch_stub = update_stubs(moto, settings, {"update_endpoint"})
    exec_stub.add_response(
        "update_endpoint",
        {"EndpointArn": endpoint_response(ENDPOINT, "Updating", None)["EndpointArn"]},
        expected_params={"EndpointName": ENDPOINT, "EndpointConfigName": V2_CONFIG, "DeploymentConfig": ANY},
    )
    queue_statuses(watch_stub, ENDPOINT, [("Updating", old_config), ("Updating", old_config), ("InService", V2_CONFIG)])

    with orchestrator_for(settings, deployer_clients=deployer_clients, watcher_clients=watcher_clients) as orchestrator:
        view = run_plan(orchestrator, V2_CANARY_INTENT, "staging", "carol", V2_PLAN)

    assert view["status"] == "deployed", view.get("error")
    change = view["change"]
    assert change["action"] == "update" and change["summary"].startswith(f"update endpoint {ENDPOINT} (InService) from churn-predictor-v1-")
    diff = {row["field"]: (row["current"], row["planned"]) for row in change["diff"]}
    assert diff["endpoint_config"] == (old_config, V2_CONFIG)
    assert diff["model"] == (old_config, V2_CONFIG)
    assert "instance_type" not in diff, "only what changes is listed"
    [update] = [c for c in view["deployment"]["calls"] if c["operation"] == "UpdateEndpoint"]
    routing = update["params"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY" and routing["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 20}
    assert update["params"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": f"{ENDPOINT}-ModelMonitorAlarm"},
        {"AlarmName": f"{ENDPOINT}-DataDriftAlarm"},
    ]
    sagemaker = client("sagemaker", moto)
    endpoint_arn = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    assert tags_of(sagemaker, endpoint_arn)[TAG_PREVIOUS_CONFIG] == old_config
    assert len(sagemaker.list_models()["Models"]) == 2 and len(sagemaker.list_endpoints()["Endpoints"]) == 1
    assert [e["outcome"] for e in view["deployment"]["executed"] if e["operation"] == "PutMetricAlarm"] == ["exists", "exists"]
    exec_stub.assert_no_pending_responses()
    watch_stub.assert_no_pending_responses()


def test_update_rolled_back_by_an_alarm_ends_rolled_back_naming_the_alarm(settings, moto):
    v1 = deploy_v1(settings)
    old_config = v1["deployment"]["target_endpoint_config"]
    client("cloudwatch", moto).set_alarm_state(AlarmName=f"{ENDPOINT}-ModelMonitorAlarm", StateValue="ALARM", StateReason="5xx errors")
    deployer_clients, exec_stub, watcher_clients, watch_stub = update_stubs(moto, settings, {"update_endpoint"})
    exec_stub.add_response("update_endpoint", {"EndpointArn": endpoint_response(ENDPOINT, "Updating", None)["EndpointArn"]})
    queue_statuses(watch_stub, ENDPOINT, [("Updating", old_config), ("RollingBack", old_config), ("InService", old_config)])

    with orchestrator_for(settings, deployer_clients=deployer_clients, watcher_clients=watcher_clients) as orchestrator:
        view = run_plan(orchestrator, V2_CANARY_INTENT, "staging", "carol", V2_PLAN)

    assert view["status"] == "rolled_back"
    outcome = view["deployment"]["watch"]
    assert outcome["alarms"] == [f"{ENDPOINT}-ModelMonitorAlarm"]
    assert f"{ENDPOINT}-ModelMonitorAlarm" in outcome["reason"]
    assert outcome["endpoint_config"] == old_config
    assert steps(settings, view["plan_id"])[-4:] == ["watch.Updating", "watch.RollingBack", "watch.InService", "watch.result"]
    assert audit_payload(settings, view["plan_id"], "watch.result")["alarms"] == [f"{ENDPOINT}-ModelMonitorAlarm"]
    assert orchestrator_plans_status(settings, view["plan_id"]) == "rolled_back"
    watch_stub.assert_no_pending_responses()


def orchestrator_plans_status(settings, plan_id: str) -> str:
    with orchestrator_for(settings) as orchestrator:
        return next(p.status for p in orchestrator.plans() if p.plan_id == plan_id)


# --- rollback and teardown -----------------------------------------------------------------------------------


def test_rollback_returns_the_endpoint_to_the_recorded_previous_config(settings, moto):
    v1 = deploy_v1(settings)
    current_config = v1["deployment"]["target_endpoint_config"]
    sagemaker = client("sagemaker", moto)
    # An earlier config the endpoint ran (as an earlier update would have left it), recorded on the endpoint.
    sagemaker.create_endpoint_config(
        EndpointConfigName="churn-predictor-v0-0000aaaa",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": current_config, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    arn = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": TAG_PREVIOUS_CONFIG, "Value": "churn-predictor-v0-0000aaaa"}])
    deployer_clients, exec_stub, watcher_clients, watch_stub = update_stubs(moto, settings, {"update_endpoint"})
    exec_stub.add_response(
        "update_endpoint",
        {"EndpointArn": arn},
        expected_params={
            "EndpointName": ENDPOINT,
            "EndpointConfigName": "churn-predictor-v0-0000aaaa",
            # All at once, no rollback alarms: they may still fire for the version being left.
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}}
            },
        },
    )
    queue_statuses(watch_stub, ENDPOINT, [("Updating", current_config), ("InService", "churn-predictor-v0-0000aaaa")])

    with orchestrator_for(settings, deployer_clients=deployer_clients, watcher_clients=watcher_clients) as orchestrator:
        view = orchestrator.run("roll back churn-predictor in staging", "staging", "carol")

    assert view["status"] == "rolled_back", view.get("error")
    assert view["change"]["action"] == "rollback"
    assert view["change"]["diff"] == [{"field": "endpoint_config", "current": current_config, "planned": "churn-predictor-v0-0000aaaa"}]
    assert tags_of(sagemaker, arn)[TAG_PREVIOUS_CONFIG] == current_config, "a second rollback can undo this one"
    exec_stub.assert_no_pending_responses()
    watch_stub.assert_no_pending_responses()


def test_teardown_removes_what_agentops_created_and_nothing_else(settings, moto):
    deploy_v1(settings)
    sagemaker, cloudwatch = client("sagemaker", moto), client("cloudwatch", moto)
    # Someone else's resources: one beside the endpoint, one with a name that starts like its alarms.
    sagemaker.create_model(ModelName="other-model", ExecutionRoleArn="arn:aws:iam::123456789012:role/x", PrimaryContainer={"Image": "i"})
    sagemaker.create_endpoint_config(
        EndpointConfigName="other-config",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "other-model", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    sagemaker.create_endpoint(EndpointName="other-endpoint", EndpointConfigName="other-config")
    cloudwatch.put_metric_alarm(
        AlarmName=f"{ENDPOINT}-LatencyByHand",
        MetricName="ModelLatency",
        Namespace="AWS/SageMaker",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )

    with orchestrator_for(settings) as orchestrator:
        view = orchestrator.run(f"tear down {ENDPOINT}", "staging", "carol")

    assert view["status"] == "torn_down", view.get("error")
    removes = view["change"]["removes"]
    assert removes[0] == f"endpoint {ENDPOINT}"
    assert sum(r.startswith("endpoint config ") for r in removes) == 1 and sum(r.startswith("model ") for r in removes) == 1
    assert any(r.startswith("alarms ") and "ModelMonitorAlarm" in r and "LatencyByHand" not in r for r in removes)
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == ["other-endpoint"]
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == ["other-config"]
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["other-model"]
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]] == [f"{ENDPOINT}-LatencyByHand"]
    assert steps(settings, view["plan_id"])[-2:] == ["watch.Deleted", "watch.result"]


def test_teardown_refuses_an_endpoint_agentops_did_not_create(settings, moto):
    sagemaker = client("sagemaker", moto)
    sagemaker.create_model(ModelName="hand-made", ExecutionRoleArn="arn:aws:iam::123456789012:role/x", PrimaryContainer={"Image": "i"})
    sagemaker.create_endpoint_config(
        EndpointConfigName="hand-made",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "hand-made", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    sagemaker.create_endpoint(EndpointName="hand-made-staging", EndpointConfigName="hand-made")

    with orchestrator_for(settings) as orchestrator:
        view = orchestrator.run("tear down hand-made-staging", "staging", "carol")

    assert view["status"] == "failed"
    assert "not created by AgentOps" in view["error"] and "\n" not in view["error"]
    assert "not created by AgentOps" in view["change"]["error"], "the approver is told before anything runs"
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == ["hand-made-staging"]


def test_an_endpoint_changed_since_approval_is_refused_not_overwritten(settings, moto):
    deploy_v1(settings)
    log = CallLog()
    real = AwsClients(settings)
    log.watch(real("sagemaker"))
    with orchestrator_for(settings, deployer_clients=real) as orchestrator:
        pending = orchestrator.run("deploy churn-predictor v2 to staging on 3 ml.m5.large", "staging", "carol")  # 3 instances: approval
        assert pending["status"] == "pending_approval" and pending["change"]["action"] == "update"
        # Meanwhile someone else puts the endpoint on a config of their own.
        sagemaker = client("sagemaker", moto)
        [model] = sagemaker.list_models()["Models"]
        sagemaker.create_endpoint_config(
            EndpointConfigName="hotfix-by-hand",
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": model["ModelName"], "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
            ],
        )
        sagemaker.delete_endpoint(EndpointName=ENDPOINT)
        sagemaker.create_endpoint(
            EndpointName=ENDPOINT, EndpointConfigName="hotfix-by-hand", Tags=[{"Key": TAG_ENDPOINT, "Value": ENDPOINT}]
        )
        view = orchestrator.decide(pending["plan_id"], "dave", True, "ok")

    assert view["status"] == "failed"
    assert view["error"].startswith(f"endpoint {ENDPOINT} changed since the plan was approved") and "now hotfix-by-hand" in view["error"]
    assert log.operations["CreateModel"] == 0 and log.operations["UpdateEndpoint"] == 0


# --- idempotency --------------------------------------------------------------------------------------------


class SimulatedCrash(Exception):
    """The process dying mid-deploy (not an AgentOpsError, so nothing catches it)."""


def test_a_deploy_resumed_after_a_crash_creates_nothing_twice(settings, moto):
    log = CallLog()
    real = AwsClients(settings)
    log.watch(real("sagemaker"), real("cloudwatch"))
    crashed = []

    def crash_once(**kwargs: Any) -> None:
        if not crashed:
            crashed.append(True)
            raise SimulatedCrash("killed between CreateEndpointConfig and CreateEndpoint")

    real("sagemaker").meta.events.register("after-call.sagemaker.CreateEndpointConfig", crash_once)
    with orchestrator_for(settings, deployer_clients=real, watcher_clients=real) as orchestrator:
        with pytest.raises(SimulatedCrash):
            orchestrator.run(V1_INTENT, "staging", "carol")
        [summary] = orchestrator.plans()
        assert client("sagemaker", moto).list_endpoints()["Endpoints"] == []
        # What start-up does: the run is still marked in flight, so recovery continues it (deploy re-runs).
        assert orchestrator.recover() == [summary.plan_id]
        view = orchestrator.show(summary.plan_id)

    assert view["status"] == "deployed"
    assert (log.operations["CreateModel"], log.operations["CreateEndpointConfig"], log.operations["CreateEndpoint"]) == (1, 1, 1)
    sagemaker = client("sagemaker", moto)
    assert (
        len(sagemaker.list_models()["Models"]),
        len(sagemaker.list_endpoint_configs()["EndpointConfigs"]),
        len(sagemaker.list_endpoints()["Endpoints"]),
    ) == (1, 1, 1)
    outcomes = {e["operation"]: e["outcome"] for e in view["deployment"]["executed"]}
    assert outcomes["CreateModel"] == "exists" and outcomes["CreateEndpointConfig"] == "exists" and outcomes["CreateEndpoint"] == "created"


def test_redeploying_the_same_plan_makes_no_second_endpoint_or_config(settings):
    """The executor alone, twice with one plan id: the second pass only looks."""
    log = CallLog()
    real = AwsClients(settings)
    log.watch(real("sagemaker"))
    executor = SageMakerExecutor(settings, real, sleep=FakeClock().sleep)
    config = DeploymentConfig.model_validate(staging_config())

    first = executor.deploy(config, "plan-1")
    second = executor.deploy(config, "plan-1")

    assert [e["outcome"] for e in first["executed"]] == ["created"] * 5
    assert [e["outcome"] for e in second["executed"]] == ["exists"] * 4, "the endpoint already runs the plan's config: no switch"
    assert (log.operations["CreateEndpoint"], log.operations["CreateEndpointConfig"], log.operations["UpdateEndpoint"]) == (1, 1, 0)


# --- errors ---------------------------------------------------------------------------------------------


def test_access_denied_ends_failed_listing_what_was_created_before(settings, moto):
    real = AwsClients(settings)
    stub_client, stub = stubbed("sagemaker", moto)
    stub.add_client_error(
        "create_endpoint",
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sagemaker:CreateEndpoint",
        400,
    )

    with orchestrator_for(
        settings, deployer_clients=clients_with(real, sagemaker=Routed(real("sagemaker"), stub_client, {"create_endpoint"}))
    ) as orchestrator:
        view = orchestrator.run(V1_INTENT, "staging", "carol")

    assert view["status"] == "failed"
    assert view["error"].startswith("AWS denied CreateEndpoint churn-predictor-staging (AccessDeniedException")
    assert "allow sagemaker:CreateEndpoint" in view["error"] and "\n" not in view["error"]
    [model] = client("sagemaker", moto).list_models()["Models"]
    created = [
        f"model {model['ModelName']}",
        f"endpoint config {model['ModelName']}",
        f"alarm {ENDPOINT}-ModelMonitorAlarm",
        f"alarm {ENDPOINT}-DataDriftAlarm",
    ]
    assert view["deployment"]["created"] == created
    assert audit_payload(settings, view["plan_id"], "deploy")["created"] == created
    assert client("sagemaker", moto).list_endpoints()["Endpoints"] == []


def test_a_validation_error_ends_failed_with_awss_message_and_nothing_created(settings, moto):
    real = AwsClients(settings)
    stub_client, stub = stubbed("sagemaker", moto)
    stub.add_client_error("describe_model", "ValidationException", "Could not find model 'churn-predictor-v1'.", 400)
    stub.add_client_error(
        "create_model",
        "ValidationException",
        "Could not access model data at s3://agentops-model-artifacts/models/churn-predictor-v1/model.tar.gz.",
        400,
    )
    routed = Routed(real("sagemaker"), stub_client, {"create_model", "describe_model"})

    with orchestrator_for(settings, deployer_clients=clients_with(real, sagemaker=routed)) as orchestrator:
        view = orchestrator.run(V1_INTENT, "staging", "carol")

    assert view["status"] == "failed"
    assert view["error"].startswith("AWS rejected CreateModel churn-predictor-v1-")
    assert "Could not access model data" in view["error"]
    assert not view.get("deployment") or view["deployment"]["created"] == []
    assert client("sagemaker", moto).list_endpoint_configs()["EndpointConfigs"] == []


def test_throttling_is_retried_with_backoff_and_then_deploys(settings, moto):
    real = AwsClients(settings)
    stub_client, stub = stubbed("sagemaker", moto)
    for _ in range(2):
        stub.add_client_error("describe_model", "ThrottlingException", "Rate exceeded", 400)
    stub.add_client_error("describe_model", "ValidationException", "Could not find model.", 400)
    clock = FakeClock()

    routed = Routed(real("sagemaker"), stub_client, {"describe_model"})
    with orchestrator_for(settings, deployer_clients=clients_with(real, sagemaker=routed), clock=clock) as orchestrator:
        view = orchestrator.run(V1_INTENT, "staging", "carol")

    assert view["status"] == "deployed", view.get("error")
    assert clock.sleeps == [1.0, 2.0], "exponential backoff between throttled attempts"
    stub.assert_no_pending_responses()


def test_throttling_that_never_stops_fails_the_plan_clearly(settings, moto):
    settings = settings.model_copy(update={"aws_throttle_attempts": 3})
    real = AwsClients(settings)
    stub_client, stub = stubbed("sagemaker", moto)
    for _ in range(3):
        stub.add_client_error("describe_model", "ThrottlingException", "Rate exceeded", 400)

    routed = Routed(real("sagemaker"), stub_client, {"describe_model"})
    with orchestrator_for(settings, deployer_clients=clients_with(real, sagemaker=routed)) as orchestrator:
        view = orchestrator.run(V1_INTENT, "staging", "carol")

    assert view["status"] == "failed"
    assert view["error"].startswith("AWS kept throttling CreateModel") and "after 3 attempts" in view["error"]


def test_a_server_error_fails_fast_with_one_line(settings, moto):
    """moto answers DescribeMonitoringSchedule with a 500 (not implemented): no retries, no HTML, one line."""
    with orchestrator_for(settings) as orchestrator:
        view = orchestrator.run("deploy churn-predictor v1 to staging on 2 ml.m5.large with 10% capture", "staging", "carol")
        executor = orchestrator.deps.deployer
        with pytest.raises(AgentOpsError) as raised:
            executor.current(ENDPOINT)  # capture is on, so the reader looks for the monitoring schedule

    assert view["status"] == "deployed"
    message = str(raised.value)
    assert "DescribeMonitoringSchedule" in message and "HTTP 500" in message and "\n" not in message and "<" not in message


# --- prod: VPC, Model Monitor, autoscaling ---------------------------------------------------------------------


def test_prod_runs_the_model_in_the_vpc_and_adds_scaling_and_the_monitor_once_in_service(tmp_path, moto):
    settings = execute_settings(tmp_path / "home", moto, vpc_subnet_ids=["subnet-0abc", "subnet-0def"], vpc_security_group_ids=["sg-0123"])
    real = AwsClients(settings)
    stub_client, stub = stubbed("sagemaker", moto)
    schedule = "fraud-detector-prod-data-quality"
    # moto has no monitoring schedules: the look before creating it, then the create, are stubbed.
    stub.add_client_error(
        "describe_monitoring_schedule",
        "ResourceNotFound",
        f"Monitoring schedule {schedule} not found",
        400,
        expected_params={"MonitoringScheduleName": schedule},
    )
    stub.add_response(
        "create_monitoring_schedule",
        {"MonitoringScheduleArn": f"arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/{schedule}"},
        expected_params={"MonitoringScheduleName": schedule, "MonitoringScheduleConfig": ANY, "Tags": ANY},
    )
    routed = Routed(real("sagemaker"), stub_client, {"describe_monitoring_schedule", "create_monitoring_schedule"})

    with orchestrator_for(settings, deployer_clients=clients_with(real, sagemaker=routed)) as orchestrator:
        pending = orchestrator.run("deploy fraud-detector v3 to prod on 2 ml.m5.xlarge, canary 10%, autoscale 2-4", "prod", "alice")
        assert pending["status"] == "pending_approval"
        assert {row["field"]: row["planned"] for row in pending["change"]["diff"]}["vpc_subnet_ids"] == ["subnet-0abc", "subnet-0def"]
        view = orchestrator.decide(pending["plan_id"], "bob", True, "reviewed")

    assert view["status"] == "deployed", view.get("error")
    sagemaker = client("sagemaker", moto)
    [model] = sagemaker.list_models()["Models"]
    assert sagemaker.describe_model(ModelName=model["ModelName"])["VpcConfig"] == {
        "Subnets": ["subnet-0abc", "subnet-0def"],
        "SecurityGroupIds": ["sg-0123"],
    }
    config = sagemaker.describe_endpoint_config(EndpointConfigName=model["ModelName"])
    assert config["DataCaptureConfig"]["EnableCapture"] is True and config["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    [target] = client("application-autoscaling", moto).describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == ("endpoint/fraud-detector-prod/variant/AllTraffic", 2, 4)
    [job] = sagemaker.list_data_quality_job_definitions()["JobDefinitionSummaries"]
    job = sagemaker.describe_data_quality_job_definition(JobDefinitionName=job["MonitoringJobDefinitionName"])
    assert job["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == "fraud-detector-prod"
    stub.assert_no_pending_responses()
    outcomes = [(e["operation"], e["outcome"]) for e in view["deployment"]["executed"]]
    assert outcomes[-4:] == [
        ("RegisterScalableTarget", "applied"),
        ("PutScalingPolicy", "applied"),
        ("CreateDataQualityJobDefinition", "created"),
        ("CreateMonitoringSchedule", "created"),
    ]


def test_prod_without_a_configured_vpc_is_refused_before_any_call(settings, moto):
    log = CallLog()
    real = AwsClients(settings)
    log.watch(real("sagemaker"))
    with orchestrator_for(settings, deployer_clients=real) as orchestrator:
        pending = orchestrator.run("deploy fraud-detector v3 to prod on 2 ml.m5.xlarge, canary 10%", "prod", "alice")
        assert "must run in a VPC" in pending["change"]["error"], "the approver sees it before deciding"
        view = orchestrator.decide(pending["plan_id"], "bob", True, "reviewed")

    assert view["status"] == "failed"
    assert "AGENTOPS_VPC_SUBNET_IDS" in view["error"]
    assert log.operations["CreateModel"] == 0


# --- starting execute mode ---------------------------------------------------------------------------------


def test_execute_mode_without_a_role_arn_refuses_to_start(tmp_path, aws_env):
    from agentops.settings import Settings

    with pytest.raises(AgentOpsError, match="AGENTOPS_EXECUTION_ROLE_ARN"):
        build_dependencies(Settings(_env_file=None, home=tmp_path, execute=True))
    with pytest.raises(AgentOpsError, match="is not an IAM role ARN"):
        build_dependencies(Settings(_env_file=None, home=tmp_path, execute=True, execution_role_arn="my-role"))


def test_execute_mode_without_credentials_refuses_to_start(tmp_path, aws_env, monkeypatch):
    from agentops.settings import Settings

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AgentOpsError, match="needs AWS credentials"):
        build_dependencies(Settings(_env_file=None, home=tmp_path, execute=True, execution_role_arn="arn:aws:iam::123456789012:role/r"))


def test_the_cli_refuses_execute_mode_in_one_line(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "AGENTOPS_HOME": str(tmp_path),
        "EXECUTE": "true",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    result = subprocess.run([sys.executable, "-m", "app.cli", "plans", "--json"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)

    assert result.returncode == ExitCode.ENVIRONMENT, "the set-up's fault, with its own exit code"
    assert "AGENTOPS_EXECUTION_ROLE_ARN" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
