"""Lifecycle actions offline: the planner reads deploy / update / rollback / teardown from the intent, the
guardrail checks each one, the builders derive their calls from what runs now, and the plan shows the change
(or says the current state is unknown)."""

from __future__ import annotations

import pytest
from fakes import MemoryAudit, RecordingDeployer, prod_config, runtime_for, staging_config

from agentops.errors import AgentOpsError
from agentops.guardrails import check_config
from agentops.ports import PlanRequest
from agentops.schemas import DeploymentConfig, EndpointAction
from nodes.deploy import deploy
from nodes.resolve import resolve
from tools.planning.rules import RulesPlanner
from tools.sagemaker.calls import (
    AFTER_ENDPOINT_OPERATIONS,
    TAG_PREVIOUS_CONFIG,
    EndpointState,
    OwnedResource,
    build_deployment_calls,
    build_rollback_calls,
    build_teardown_calls,
)
from tools.sagemaker.dry_run import DryRunDeployer
from tools.sagemaker.images import inference_image
from tools.sagemaker.state import plan_change
from tools.sagemaker.validation import validate_calls

PLAN_ID = "3f2a9c1b-0d4e-4f5a-9b6c-7d8e9f0a1b2c"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn-staging"


def running(**changes) -> EndpointState:
    """churn-staging as AgentOps left it after deploying v1 (the model and config share the name)."""
    base = {
        "endpoint_name": "churn-staging",
        "exists": True,
        "arn": ARN,
        "status": "InService",
        "endpoint_config": "churn-v1-0000aaaa",
        "managed": True,
        "model_name": "churn-v1-0000aaaa",
        "model_data_url": "s3://models/churn/1/model.tar.gz",
        "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference:1",
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "owned": [
            OwnedResource(kind="endpoint_config", name="churn-v1-0000aaaa"),
            OwnedResource(kind="model", name="churn-v1-0000aaaa"),
            OwnedResource(kind="alarm", name="churn-staging-ModelMonitorAlarm"),
        ],
    }
    return EndpointState(**(base | changes))


def build(config: dict, current: EndpointState | None = None, **kwargs) -> list[dict]:
    return build_deployment_calls(
        DeploymentConfig.model_validate(config),
        PLAN_ID,
        role_arn="arn:aws:iam::123456789012:role/r",
        default_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/inference:1",
        data_capture_bucket="capture",
        region="us-east-1",
        current=current,
        **kwargs,
    )


def operations(calls: list[dict]) -> list[str]:
    return [c["operation"] for c in calls]


# --- the planner ---------------------------------------------------------------------------------------------


@pytest.fixture
def planner(settings):
    return RulesPlanner(settings)


@pytest.mark.parametrize(
    ("intent", "env", "config"),
    [
        ("roll back fraud-detector in prod", "prod", {"action": "rollback", "endpoint_name": "fraud-detector-prod"}),
        ("revert the model for chatbot-x", "prod", {"action": "rollback", "endpoint_name": "chatbot-x-prod"}),
        (
            "rollback fraud-detector-prod to config fraud-detector-v2-3f2a9c1b",
            "prod",
            {"action": "rollback", "endpoint_name": "fraud-detector-prod", "target_endpoint_config": "fraud-detector-v2-3f2a9c1b"},
        ),
        ("tear down churn-dev", "dev", {"action": "teardown", "endpoint_name": "churn-dev"}),
        ("please tear down the endpoint churn-staging", "staging", {"action": "teardown", "endpoint_name": "churn-staging"}),
        ("decommission ranker", "staging", {"action": "teardown", "endpoint_name": "ranker-staging"}),
    ],
)
def test_planner_reads_rollbacks_and_teardowns(planner, policy, intent, env, config):
    out = planner.plan(PlanRequest(intent=intent, env=env), policy)

    assert out.config == config
    assert set(out.pinned) == set(config)


def test_planner_reads_an_update_to_a_new_version(planner, policy):
    out = planner.plan(PlanRequest(intent="update fraud-detector in prod to v4", env="prod"), policy)

    assert out.config["model_name"] == "fraud-detector-v4" and out.config["endpoint_name"] == "fraud-detector-prod"
    assert out.config.get("action", "deploy") == "deploy", "create or update is decided by what exists"


def test_the_first_verb_decides_the_action(planner, policy):
    out = planner.plan(PlanRequest(intent="deploy churn v2 to dev and delete the old one", env="dev"), policy)

    assert "action" not in out.config and out.config["model_name"] == "churn-v2"


def test_a_teardown_without_an_endpoint_asks_for_one(planner, policy):
    out = planner.plan(PlanRequest(intent="tear down", env="dev"), policy)

    assert out.config is None and "tear down churn-dev" in out.error


# --- the guardrail -----------------------------------------------------------------------------------------


def test_teardown_in_prod_needs_approval_and_ends_the_cost(policy):
    report = check_config({"action": "teardown", "endpoint_name": "fraud-detector-prod"}, "prod", policy)

    assert report.verdict.allowed and report.requires_approval
    assert report.approval_reasons == ["every teardown in prod needs human approval"]
    assert report.hourly_cost_usd == report.peak_cost_usd == 0.0


def test_teardown_and_rollback_in_staging_need_no_approval(policy):
    for action in ("teardown", "rollback"):
        report = check_config({"action": action, "endpoint_name": "churn-staging"}, "staging", policy)
        assert report.verdict.allowed and not report.requires_approval


def test_rollback_in_prod_needs_approval(policy):
    report = check_config({"action": "rollback", "endpoint_name": "fraud-detector-prod"}, "prod", policy)

    assert report.requires_approval and report.peak_cost_usd is None


def test_endpoint_action_names_are_checked_and_cited(policy):
    report = check_config(
        {"action": "rollback", "endpoint_name": "churn_staging", "target_endpoint_config": "bad config"}, "staging", policy
    )

    assert {v.rule for v in report.verdict.violations} == {"naming.endpoint_name", "naming.target_endpoint_config"}
    assert report.verdict.violations[0].policy == "security-policy"


def test_an_endpoint_action_with_deploy_fields_is_a_schema_violation(policy):
    report = check_config({"action": "teardown", "endpoint_name": "churn-staging", "instance_count": 3}, "staging", policy)

    assert [v.rule for v in report.verdict.violations] == ["schema.invalid"]
    assert "instance_count" in report.verdict.violations[0].message


def test_an_explicit_deploy_action_is_still_a_deploy(policy):
    assert check_config(staging_config(action="deploy"), "staging", policy).verdict.allowed


# --- building calls from what runs now ------------------------------------------------------------------------


def test_an_existing_endpoint_is_updated_blue_green_and_remembers_its_config_only_after():
    calls = build(staging_config(model_name="churn-v2"), running())

    # The version tag follows the switch: execute mode makes it once the endpoint is InService on churn-v2,
    # so a refused or rolled-back update leaves the endpoint's history as it was.
    assert operations(calls) == ["CreateModel", "CreateEndpointConfig", "PutMetricAlarm", "PutMetricAlarm", "UpdateEndpoint", "AddTags"]
    assert "AddTags" in AFTER_ENDPOINT_OPERATIONS and "UpdateEndpoint" not in AFTER_ENDPOINT_OPERATIONS
    update, tags = calls[-2]["params"], calls[-1]["params"]
    assert tags == {
        "ResourceArn": ARN,
        "Tags": [{"Key": TAG_PREVIOUS_CONFIG, "Value": "churn-v1-0000aaaa"}, {"Key": "agentops:plan", "Value": PLAN_ID}],
    }
    assert update["EndpointConfigName"] == "churn-v2-3f2a9c1b"
    assert update["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"][0] == {"AlarmName": "churn-staging-ModelMonitorAlarm"}
    validate_calls(calls)


def test_an_endpoint_already_on_the_plans_config_is_not_switched_again():
    calls = build(
        staging_config(model_name="churn-v2"), running(endpoint_config="churn-v1-0000aaaa", pending_endpoint_config="churn-v2-3f2a9c1b")
    )

    assert "UpdateEndpoint" not in operations(calls)
    # A resumed run still records where the endpoint came from, once it is InService on churn-v2.
    assert calls[-1]["params"]["Tags"][0] == {"Key": TAG_PREVIOUS_CONFIG, "Value": "churn-v1-0000aaaa"}


def test_changing_the_instance_type_of_an_autoscaled_endpoint_deregisters_scaling_first():
    current = running(autoscaling_min=2, autoscaling_max=4, scaling_policies=["churn-staging-invocations-target-tracking"])

    calls = build(staging_config(model_name="churn-v2", instance_type="ml.m5.xlarge", autoscaling_max=4), current)

    assert operations(calls)[4:] == [
        "DeleteScalingPolicy",
        "DeregisterScalableTarget",
        "UpdateEndpoint",
        "AddTags",
        "RegisterScalableTarget",
        "PutScalingPolicy",
    ]
    validate_calls(calls)


def test_a_new_model_on_the_same_autoscaled_fleet_keeps_its_scaling():
    current = running(autoscaling_min=2, autoscaling_max=4, scaling_policies=["p"])

    calls = build(staging_config(model_name="churn-v2", autoscaling_max=4), current)

    assert "DeregisterScalableTarget" not in operations(calls)


def test_an_endpoint_agentops_did_not_create_is_never_updated():
    with pytest.raises(AgentOpsError, match=r"churn-staging was not created by AgentOps .*refusing to update it"):
        build(staging_config(), running(managed=False))


def test_the_model_gets_the_vpc_it_is_given():
    calls = build(prod_config(), None, vpc={"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]})

    assert calls[0]["params"]["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    validate_calls(calls)


def test_rollback_switches_to_the_recorded_previous_config_all_at_once():
    calls = build_rollback_calls(
        EndpointAction(action="rollback", endpoint_name="churn-staging"), running(previous_endpoint_config="churn-v0-0000bbbb"), PLAN_ID
    )

    assert operations(calls) == ["UpdateEndpoint", "AddTags"]
    assert calls[0]["params"]["EndpointConfigName"] == "churn-v0-0000bbbb"
    assert "AutoRollbackConfiguration" not in calls[0]["params"]["DeploymentConfig"]
    validate_calls(calls)


def test_rollback_of_an_autoscaled_endpoint_deregisters_before_and_registers_the_same_range_after():
    current = running(
        previous_endpoint_config="churn-v0-0000bbbb",
        autoscaling_min=2,
        autoscaling_max=6,
        scaling_policies=["churn-staging-invocations-target-tracking"],
    )

    calls = build_rollback_calls(EndpointAction(action="rollback", endpoint_name="churn-staging"), current, PLAN_ID)

    assert operations(calls) == [
        "DeleteScalingPolicy",
        "DeregisterScalableTarget",
        "UpdateEndpoint",
        "AddTags",
        "RegisterScalableTarget",
        "PutScalingPolicy",
    ]
    register = calls[4]["params"]
    assert (register["MinCapacity"], register["MaxCapacity"]) == (2, 6)
    assert {"AddTags", "RegisterScalableTarget", "PutScalingPolicy"} <= AFTER_ENDPOINT_OPERATIONS
    validate_calls(calls)


def test_rollback_with_nothing_recorded_says_how_to_name_a_config():
    with pytest.raises(
        AgentOpsError, match=r"no previous endpoint config is recorded on churn-staging.*roll back churn-staging to config NAME"
    ):
        build_rollback_calls(EndpointAction(action="rollback", endpoint_name="churn-staging"), running(), PLAN_ID)


def test_teardown_deletes_only_owned_resources_in_the_order_aws_allows():
    current = running(autoscaling_min=1, autoscaling_max=2, scaling_policies=["p"], monitoring_schedule="churn-staging-data-quality")

    calls = build_teardown_calls(current)

    assert operations(calls) == [
        "DeleteScalingPolicy",
        "DeregisterScalableTarget",
        "DeleteMonitoringSchedule",
        "DeleteEndpoint",
        "DeleteEndpointConfig",
        "DeleteModel",
        "DeleteAlarms",
    ]
    assert calls[-1]["params"] == {"AlarmNames": ["churn-staging-ModelMonitorAlarm"]}
    validate_calls(calls)


def test_teardown_of_a_missing_endpoint_says_there_is_nothing_to_do():
    with pytest.raises(AgentOpsError, match="does not exist: there is nothing to tear down"):
        build_teardown_calls(EndpointState(endpoint_name="churn-staging"))


# --- the change an approver reads ---------------------------------------------------------------------------


def test_update_change_lists_only_what_differs(settings):
    change = plan_change(
        DeploymentConfig.model_validate(staging_config(model_name="churn-v2", instance_count=3)),
        PLAN_ID,
        settings,
        current=running(image_uri=inference_image("ml.m5.large", settings)),
    )

    assert change.action == "update" and change.known
    assert {row.field: (row.current, row.planned) for row in change.diff} == {
        "endpoint_config": ("churn-v1-0000aaaa", "churn-v2-3f2a9c1b"),
        "model": ("churn-v1-0000aaaa", "churn-v2-3f2a9c1b"),
        "instance_count": (2, 3),
    }
    assert change.summary == (
        "update endpoint churn-staging (InService) from churn-v1-0000aaaa on 2 x ml.m5.large "
        "to churn-v2-3f2a9c1b on 3 x ml.m5.large, all at once"
    )


def test_teardown_change_lists_every_resource_it_deletes(settings):
    change = plan_change(EndpointAction(action="teardown", endpoint_name="churn-staging"), PLAN_ID, settings, current=running())

    assert change.removes == [
        "endpoint churn-staging",
        "endpoint config churn-v1-0000aaaa",
        "model churn-v1-0000aaaa",
        "alarms churn-staging-ModelMonitorAlarm",
    ]


def test_an_impossible_plan_says_why_before_anyone_approves_it(settings):
    change = plan_change(
        EndpointAction(action="rollback", endpoint_name="churn-staging"), PLAN_ID, settings, current=running(managed=False)
    )

    assert change.error and "not created by AgentOps" in change.error


def test_resolve_in_dry_run_says_the_current_state_is_unknown(make_deps):
    audit = MemoryAudit()
    state = {"plan_id": PLAN_ID, "env": "staging", "config": staging_config(), "planner": {"rounds": 1}}

    update = resolve(state, runtime_for(make_deps(audit_log=audit)))

    change = update["change"]
    assert change["known"] is False and change["action"] is None and change["current"] is None
    assert change["summary"].startswith("the current state is unknown (dry-run reads nothing from AWS)")
    assert "events" not in update, "nothing was read, so there is nothing to put on the record"


def test_resolve_leaves_an_unusable_config_to_the_guardrail(make_deps):
    assert resolve({"plan_id": PLAN_ID, "env": "staging", "config": None}, runtime_for(make_deps())) == {"change": None}


# --- dry-run records every action -----------------------------------------------------------------------------


def dry_run(make_deps, settings, config: dict, env: str = "staging") -> dict:
    state = {"plan_id": PLAN_ID, "env": env, "config": config, "report": {"verdict": {"allowed": True}, "requires_approval": False}}
    return deploy(state, runtime_for(make_deps(deployer=DryRunDeployer(settings))))


def test_dry_run_teardown_records_the_endpoint_deletion_and_says_what_it_cannot_know(make_deps, settings):
    update = dry_run(make_deps, settings, {"action": "teardown", "endpoint_name": "churn-staging"})

    assert update["status"] == "torn_down"
    assert [c["operation"] for c in update["deployment"]["calls"]] == ["DeleteEndpoint"]
    assert "found by their agentops:endpoint tag" in update["deployment"]["note"]


def test_dry_run_rollback_to_a_named_config_records_the_update(make_deps, settings):
    update = dry_run(
        make_deps, settings, {"action": "rollback", "endpoint_name": "churn-staging", "target_endpoint_config": "churn-v1-0000aaaa"}
    )

    assert update["status"] == "rolled_back"
    [call] = update["deployment"]["calls"]
    assert call["params"] == {"EndpointName": "churn-staging", "EndpointConfigName": "churn-v1-0000aaaa"}


def test_dry_run_prod_without_a_vpc_warns_and_execute_mode_refuses(make_deps, settings):
    update = dry_run(make_deps, settings, prod_config(), env="prod")
    assert update["status"] == "deployed"
    assert "must run in a VPC" in update["deployment"]["warnings"][0]
    assert "VpcConfig" not in update["deployment"]["calls"][0]["params"]

    deployer = RecordingDeployer()
    state = {
        "plan_id": PLAN_ID,
        "env": "prod",
        "config": prod_config(),
        "report": {"verdict": {"allowed": True}, "requires_approval": False},
    }
    refused = deploy(state, runtime_for(make_deps(deployer=deployer, settings=settings.model_copy(update={"execute": True}))))
    assert refused["status"] == "failed" and "AGENTOPS_VPC_SUBNET_IDS" in refused["error"]
    assert deployer.deployed == []


def test_dry_run_prod_with_a_vpc_puts_the_model_in_it(make_deps, settings):
    settings = settings.model_copy(update={"vpc_subnet_ids": ["subnet-1", "subnet-2"], "vpc_security_group_ids": ["sg-1"]})
    state = {
        "plan_id": PLAN_ID,
        "env": "prod",
        "config": prod_config(),
        "report": {"verdict": {"allowed": True}, "requires_approval": False},
    }

    update = deploy(state, runtime_for(make_deps(deployer=DryRunDeployer(settings), settings=settings)))

    assert update["deployment"]["calls"][0]["params"]["VpcConfig"] == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert "warnings" not in update["deployment"]


# --- a repeat: nothing to change --------------------------------------------------------------------------------


def test_a_plan_identical_to_what_runs_is_no_change(settings):
    config = DeploymentConfig.model_validate(staging_config(model_name="churn-v1", model_data_url="s3://models/churn/1/model.tar.gz"))
    current = running(image_uri=inference_image("ml.m5.large", settings), configured_instance_count=2)

    change = plan_change(config, PLAN_ID, settings, current=current)

    assert change.action == "no_change" and change.diff == []
    assert change.summary.startswith("already running churn-v1 on 2 x ml.m5.large")


@pytest.mark.parametrize(
    "difference",
    [
        {"status": "Updating"},
        {"model_data_url": "s3://models/churn/0/model.tar.gz"},
        {"instance_type": "ml.m5.xlarge"},
        {"configured_instance_count": 3},
        {"autoscaling_min": 2, "autoscaling_max": 4},
        {"data_capture_percent": 20},
        {"model_name": "churn-v0-0000aaaa"},
        {"managed": False},
    ],
)
def test_any_difference_in_what_runs_is_not_no_change(settings, difference):
    config = DeploymentConfig.model_validate(staging_config(model_name="churn-v1", model_data_url="s3://models/churn/1/model.tar.gz"))
    current = running(image_uri=inference_image("ml.m5.large", settings), configured_instance_count=2).model_copy(update=difference)

    assert plan_change(config, PLAN_ID, settings, current=current).action != "no_change"


def test_the_guardrail_ends_a_no_change_plan_without_approval_but_still_blocks_what_policy_forbids(make_deps):
    from nodes.guardrail import guardrail

    change = {"action": "no_change", "known": True, "summary": "already running churn-v1 on 2 x ml.m5.large"}
    allowed = guardrail({"plan_id": PLAN_ID, "env": "prod", "config": prod_config(), "change": change}, runtime_for(make_deps()))
    forbidden = guardrail(
        {"plan_id": PLAN_ID, "env": "prod", "config": prod_config(instance_count=1), "change": change}, runtime_for(make_deps())
    )

    assert allowed["status"] == "no_change", "prod needs approval for a change; a no-op changes nothing"
    assert "expires_at" not in allowed and [e["step"] for e in allowed["events"]] == ["guardrail.1"]
    assert forbidden["status"] == "blocked"


def test_the_approver_is_told_autoscaling_is_taken_down_for_a_rollback(settings):
    current = running(previous_endpoint_config="churn-v0-0000bbbb", autoscaling_min=2, autoscaling_max=6, scaling_policies=["p"])

    change = plan_change(EndpointAction(action="rollback", endpoint_name="churn-staging"), PLAN_ID, settings, current=current)

    assert change.warnings == [
        "autoscaling (2-6 instances) is deregistered for the switch and registered again once the endpoint is InService; "
        "if the switch fails it is put back as it was"
    ]
