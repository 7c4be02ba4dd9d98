"""One endpoint's whole life in execute mode, against moto's server over HTTP with UpdateEndpoint emulated in
front of it (aws_testing.UpdateEndpointEmulator): create -> update -> update to another instance type with
autoscaling -> another type change under autoscaling -> rollback -> teardown, through the real workflow and
Orchestrator; then what a failed update leaves behind, and a repeat that changes nothing."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import boto3
import pytest
from aws_testing import (  # noqa: F401  (pytest fixtures)
    REGION,
    CallLog,
    FakeClock,
    UpdateEndpointEmulator,
    aws_env,
    client,
    execute_settings,
    moto,
    moto_server,
    mutating,
)

from app.service import Orchestrator
from graph.wiring import build_dependencies
from tools.sagemaker.aws import AwsClients
from tools.sagemaker.calls import TAG_ENDPOINT, TAG_PREVIOUS_CONFIG
from tools.sagemaker.execute import SageMakerExecutor
from tools.sagemaker.watch import EndpointWatcher

ENDPOINT = "churn-predictor-staging"
RESOURCE_ID = f"endpoint/{ENDPOINT}/variant/AllTraffic"
V1 = "deploy churn-predictor v1 to staging on 2 ml.m5.large"
V2 = "deploy churn-predictor v2 to staging on 2 ml.m5.large"
V3 = "deploy churn-predictor v3 to staging on 2 ml.m5.xlarge, autoscale 2-4"
V4 = "deploy churn-predictor v4 to staging on 2 ml.m5.large, autoscale 2-4"


@pytest.fixture
def settings(tmp_path, moto):
    return execute_settings(tmp_path / "home", moto)


@pytest.fixture
def emulator(moto):
    return UpdateEndpointEmulator(moto)


@contextmanager
def orchestrator_for(settings, emulator: UpdateEndpointEmulator, log: CallLog | None = None):
    """The real dependencies; the executor's and watcher's clients come from one session carrying the emulator
    (and, when given, a log of every operation those clients attempt)."""
    session = boto3.session.Session(region_name=REGION)
    if log is not None:
        session._session.get_component("event_emitter").register("before-call.*.*", log._record)
    emulator.attach(session)
    clients = AwsClients(settings, session=session)
    clock = FakeClock()
    deps = build_dependencies(settings)
    deps = replace(
        deps,
        deployer=SageMakerExecutor(settings, clients, sleep=clock.sleep),
        watcher=EndpointWatcher(settings, clients, sleep=clock.sleep, monotonic=clock.monotonic),
    )
    with Orchestrator.open(settings, deps) as orchestrator:
        yield orchestrator


def run(settings, emulator, intent: str, log: CallLog | None = None) -> dict[str, Any]:
    """Plan and run `intent`; approve it (as someone other than the requester) when the policy asks."""
    with orchestrator_for(settings, emulator, log) as orchestrator:
        view = orchestrator.run(intent, "staging", "carol")
        if view["status"] == "pending_approval":
            view = orchestrator.decide(view["plan_id"], "dave", True, "lifecycle test")
    return view


def endpoint_tags(moto_url: str) -> dict[str, str]:
    sagemaker = client("sagemaker", moto_url)
    arn = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    return {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}


def serving(moto_url: str) -> tuple[str, str]:
    sagemaker = client("sagemaker", moto_url)
    config = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    return config, variant["InstanceType"]


def scaling(moto_url: str) -> tuple[int, int] | None:
    targets = client("application-autoscaling", moto_url).describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    mine = [(t["MinCapacity"], t["MaxCapacity"]) for t in targets if t["ResourceId"] == RESOURCE_ID]
    return mine[0] if mine else None


def owned_by_agentops(moto_url: str) -> Counter[str]:
    """What in the account carries the orchestrator's ownership tag, by kind (scalable targets: ours by id)."""
    sagemaker, cloudwatch = client("sagemaker", moto_url), client("cloudwatch", moto_url)

    def tagged(arn: str) -> bool:
        return any(t["Key"] == TAG_ENDPOINT for t in sagemaker.list_tags(ResourceArn=arn)["Tags"])

    counts: Counter[str] = Counter()
    counts["model"] = sum(tagged(m["ModelArn"]) for m in sagemaker.list_models()["Models"])
    counts["endpoint_config"] = sum(tagged(c["EndpointConfigArn"]) for c in sagemaker.list_endpoint_configs()["EndpointConfigs"])
    counts["endpoint"] = sum(tagged(e["EndpointArn"]) for e in sagemaker.list_endpoints()["Endpoints"])
    counts["alarm"] = sum(
        any(t["Key"] == TAG_ENDPOINT for t in cloudwatch.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"])
        for a in cloudwatch.describe_alarms()["MetricAlarms"]
    )
    counts["scalable_target"] = int(scaling(moto_url) is not None)
    return +counts


def someone_elses_resources(moto_url: str) -> None:
    """Resources AgentOps must never touch: an untagged model and config, and an alarm named like ours."""
    sagemaker = client("sagemaker", moto_url)
    sagemaker.create_model(ModelName="other-model", ExecutionRoleArn="arn:aws:iam::123456789012:role/x", PrimaryContainer={"Image": "i"})
    sagemaker.create_endpoint_config(
        EndpointConfigName="churn-predictor-v1-byhand",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "other-model", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    client("cloudwatch", moto_url).put_metric_alarm(
        AlarmName=f"{ENDPOINT}-LatencyByHand",
        MetricName="ModelLatency",
        Namespace="AWS/SageMaker",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_an_endpoint_through_four_versions_a_rollback_and_a_teardown_leaves_nothing_behind(settings, emulator, moto):
    someone_elses_resources(moto)

    v1 = run(settings, emulator, V1)
    assert v1["status"] == "deployed", v1.get("error")
    assert v1["change"]["action"] == "create"
    v1_config = v1["deployment"]["target_endpoint_config"]

    v2 = run(settings, emulator, V2)
    assert v2["status"] == "deployed", v2.get("error")
    v2_config = v2["deployment"]["target_endpoint_config"]
    assert serving(moto) == (v2_config, "ml.m5.large")
    assert endpoint_tags(moto)[TAG_PREVIOUS_CONFIG] == v1_config

    # Another instance type, and autoscaling from now on: registered once the endpoint is InService on v3.
    v3 = run(settings, emulator, V3)
    assert v3["status"] == "deployed", v3.get("error")
    v3_config = v3["deployment"]["target_endpoint_config"]
    assert serving(moto) == (v3_config, "ml.m5.xlarge")
    assert scaling(moto) == (2, 4)
    assert endpoint_tags(moto)[TAG_PREVIOUS_CONFIG] == v2_config

    # A type change under autoscaling: SageMaker (the emulator) refuses it unless the target is deregistered
    # first; it is registered again after the switch.
    v4 = run(settings, emulator, V4)
    assert v4["status"] == "deployed", v4.get("error")
    operations = [e["operation"] for e in v4["deployment"]["executed"]]
    assert operations.index("DeregisterScalableTarget") < operations.index("UpdateEndpoint") < operations.index("RegisterScalableTarget")
    assert operations.index("UpdateEndpoint") < operations.index("AddTags")
    assert serving(moto) == (v4["deployment"]["target_endpoint_config"], "ml.m5.large")
    assert scaling(moto) == (2, 4)
    assert endpoint_tags(moto)[TAG_PREVIOUS_CONFIG] == v3_config

    # Rollback to v3: back across the type change, autoscaling taken down and put back around the switch.
    back = run(settings, emulator, "roll back churn-predictor in staging")
    assert back["status"] == "rolled_back", back.get("error")
    assert serving(moto) == (v3_config, "ml.m5.xlarge")
    assert scaling(moto) == (2, 4)
    assert endpoint_tags(moto)[TAG_PREVIOUS_CONFIG] == v4["deployment"]["target_endpoint_config"]
    assert [u["EndpointConfigName"] for u in emulator.updates] == [
        v2_config,
        v3_config,
        v4["deployment"]["target_endpoint_config"],
        v3_config,
    ]

    assert owned_by_agentops(moto) == Counter(model=4, endpoint_config=4, endpoint=1, alarm=2, scalable_target=1)
    down = run(settings, emulator, f"tear down {ENDPOINT}")
    assert down["status"] == "torn_down", down.get("error")
    removes = down["change"]["removes"]
    assert removes[:2] == [f"scaling policy {ENDPOINT}-invocations-target-tracking", f"autoscaling target {RESOURCE_ID}"]
    assert sum(r.startswith("endpoint config ") for r in removes) == 4 and sum(r.startswith("model ") for r in removes) == 4
    assert not any("byhand" in r.lower() or "other-model" in r for r in removes)

    assert owned_by_agentops(moto) == Counter(), "every version of every resource AgentOps made is gone"
    sagemaker = client("sagemaker", moto)
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["other-model"]
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == ["churn-predictor-v1-byhand"]
    assert [a["AlarmName"] for a in client("cloudwatch", moto).describe_alarms()["MetricAlarms"]] == [f"{ENDPOINT}-LatencyByHand"]


def deployed_with_autoscaling(settings, emulator, moto) -> tuple[str, dict[str, str]]:
    """v1, then v3 (another type, autoscaled 2-4): the state the failure tests start from."""
    assert run(settings, emulator, V1)["status"] == "deployed"
    v3 = run(settings, emulator, V3)
    assert v3["status"] == "deployed", v3.get("error")
    return v3["deployment"]["target_endpoint_config"], endpoint_tags(moto)


def test_a_refused_update_leaves_tags_history_and_autoscaling_as_they_were(settings, emulator, moto):
    running, tags_before = deployed_with_autoscaling(settings, emulator, moto)
    emulator.refuse_next("The account-level service limit 'ml.m5.large for endpoint usage' is 0 Instances.")

    view = run(settings, emulator, V4)

    assert view["status"] == "failed"
    assert "ml.m5.large for endpoint usage" in view["error"] and "autoscaling is registered as it was" in view["error"]
    assert "\n" not in view["error"]
    assert serving(moto) == (running, "ml.m5.xlarge")
    assert endpoint_tags(moto) == tags_before, "history names only versions the endpoint ran"
    assert scaling(moto) == (2, 4), "the scaling taken down before the switch is back"


def test_an_update_sagemaker_rolls_back_leaves_tags_history_and_autoscaling_as_they_were(settings, emulator, moto):
    running, tags_before = deployed_with_autoscaling(settings, emulator, moto)
    emulator.roll_back_next()

    view = run(settings, emulator, V4)

    assert view["status"] == "rolled_back", view.get("error")
    assert serving(moto) == (running, "ml.m5.xlarge")
    assert endpoint_tags(moto) == tags_before
    assert scaling(moto) == (2, 4)
    executed = [(e["operation"], e["outcome"]) for e in view["deployment"]["executed"]]
    assert ("AddTags", "updated") not in executed and executed[-2:] == [
        ("RegisterScalableTarget", "applied"),
        ("PutScalingPolicy", "applied"),
    ]


def test_an_identical_redeploy_is_no_change_and_makes_no_aws_call_that_changes_anything(settings, emulator, moto):
    first = run(settings, emulator, V3)
    assert first["status"] == "deployed", first.get("error")
    log = CallLog()

    again = run(settings, emulator, V3, log)

    assert again["status"] == "no_change", again.get("error")
    assert again["change"]["action"] == "no_change"
    assert again["change"]["summary"].startswith("already running churn-predictor-v3 on 2 x ml.m5.xlarge")
    assert again.get("deployment") is None
    assert log.operations["DescribeEndpoint"] >= 1, "the executor did look"
    assert mutating(log.operations) == Counter()


def test_a_redeploy_that_changes_one_thing_is_an_update_not_a_no_op(settings, emulator, moto):
    assert run(settings, emulator, V2)["status"] == "deployed"

    view = run(settings, emulator, "deploy churn-predictor v2 to staging on 3 ml.m5.large")

    assert view["change"]["action"] == "update"
    assert [(d["field"], d["current"], d["planned"]) for d in view["change"]["diff"] if d["field"] == "instance_count"] == [
        ("instance_count", 2, 3)
    ]


def test_the_teardown_inventory_reads_every_page_and_keeps_only_what_carries_the_endpoints_tag(aws_env):
    """Older versions sit on later pages of ListEndpointConfigs / ListModels: an inventory that stopped at the
    first page is how teardown used to leak them."""
    from botocore.stub import Stubber

    from tools.sagemaker.aws import AwsCaller
    from tools.sagemaker.state import read_inventory

    arn = f"arn:aws:sagemaker:{REGION}:123456789012"
    sagemaker, cloudwatch = boto3.client("sagemaker", region_name=REGION), boto3.client("cloudwatch", region_name=REGION)
    sm, cw = Stubber(sagemaker), Stubber(cloudwatch)

    def config(name: str) -> dict[str, Any]:
        return {"EndpointConfigName": name, "EndpointConfigArn": f"{arn}:endpoint-config/{name}", "CreationTime": "2026-01-01"}

    def model(name: str) -> dict[str, Any]:
        return {"ModelName": name, "ModelArn": f"{arn}:model/{name}", "CreationTime": "2026-01-01"}

    sm.add_response("list_endpoint_configs", {"EndpointConfigs": [config("v4"), config("theirs")], "NextToken": "p2"}, {"MaxResults": 100})
    sm.add_response("list_endpoint_configs", {"EndpointConfigs": [config("v1")]}, {"MaxResults": 100, "NextToken": "p2"})
    sm.add_response("list_models", {"Models": [model("v4")], "NextToken": "m2"}, {"MaxResults": 100})
    sm.add_response("list_models", {"Models": [model("v1"), model("theirs")]}, {"MaxResults": 100, "NextToken": "m2"})
    sm.add_response("list_data_quality_job_definitions", {"JobDefinitionSummaries": []}, {"EndpointName": ENDPOINT, "MaxResults": 100})
    cw.add_response("describe_alarms", {"MetricAlarms": []}, {"AlarmNamePrefix": f"{ENDPOINT}-"})
    ours, theirs = {"Tags": [{"Key": TAG_ENDPOINT, "Value": ENDPOINT}]}, {"Tags": [{"Key": TAG_ENDPOINT, "Value": "other-endpoint"}]}
    for tags in (ours, theirs, ours, ours, ours, theirs):  # configs v4, theirs, v1; models v4, v1, theirs
        sm.add_response("list_tags", tags)
    sm.activate()
    cw.activate()
    clients = {"sagemaker": sagemaker, "cloudwatch": cloudwatch}

    owned = read_inventory(AwsCaller(clients.__getitem__, attempts=1, backoff_seconds=0), ENDPOINT)

    assert [(r.kind, r.name) for r in owned] == [("endpoint_config", "v4"), ("endpoint_config", "v1"), ("model", "v4"), ("model", "v1")]
    sm.assert_no_pending_responses()
    cw.assert_no_pending_responses()
