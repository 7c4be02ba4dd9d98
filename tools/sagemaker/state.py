"""What runs now on an endpoint, read from AWS, and how a plan changes it (the diff an approver reads).

Reading is execute mode only; in dry-run nothing is read and the change says the current state is unknown
rather than inventing one. Everything here only reads.
"""

from __future__ import annotations

from typing import Any

from agentops.errors import AgentOpsError
from agentops.schemas import Change, DeploymentConfig, FieldChange, PlanConfig
from agentops.settings import Settings
from tools.sagemaker.aws import AwsCaller
from tools.sagemaker.calls import (
    TAG_ENDPOINT,
    TAG_PREVIOUS_CONFIG,
    UNKNOWN_ROLLBACK_TARGET,
    UNKNOWN_TEARDOWN_INVENTORY,
    VARIANT_NAME,
    AwsCall,
    EndpointState,
    OwnedResource,
    call_subject,
    lifecycle_calls,
    monitoring_schedule_name,
    resource_names,
    rollback_target,
    scalable_target,
)
from tools.sagemaker.images import planned_image

# --- reading -----------------------------------------------------------------------------------------


def _tags(aws: AwsCaller, service: str, arn: str) -> dict[str, str]:
    if service == "cloudwatch":
        tags = aws.call("cloudwatch", "list_tags_for_resource", {"ResourceARN": arn}, operation="ListTagsForResource", subject=arn)["Tags"]
    else:
        tags = aws.call("sagemaker", "list_tags", {"ResourceArn": arn}, operation="ListTags", subject=arn)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def _belongs_to(aws: AwsCaller, service: str, arn: str, endpoint: str) -> bool:
    return _tags(aws, service, arn).get(TAG_ENDPOINT) == endpoint


def _describe(aws: AwsCaller, method: str, operation: str, **params: Any) -> dict[str, Any] | None:
    return aws.call_unless_missing("sagemaker", method, params, operation=operation, subject=next(iter(params.values())))


def _variant(variants: list[dict[str, Any]]) -> dict[str, Any]:
    return next((v for v in variants if v.get("VariantName") == VARIANT_NAME), variants[0] if variants else {})


def _read_serving(state: EndpointState, endpoint: dict[str, Any], config: dict[str, Any] | None, aws: AwsCaller) -> None:
    if config is None:
        return
    variant = _variant(config.get("ProductionVariants", []))
    live = _variant(endpoint.get("ProductionVariants", []))
    state.instance_type = variant.get("InstanceType")
    state.instance_count = live.get("CurrentInstanceCount") or variant.get("InitialInstanceCount")
    state.configured_instance_count = variant.get("InitialInstanceCount")
    capture = config.get("DataCaptureConfig") or {}
    state.data_capture_percent = capture.get("InitialSamplingPercentage", 0) if capture.get("EnableCapture") else 0
    state.model_name = variant.get("ModelName")
    model = _describe(aws, "describe_model", "DescribeModel", ModelName=state.model_name) if state.model_name else None
    if model:
        container = model.get("PrimaryContainer") or {}
        state.model_data_url = container.get("ModelDataUrl")
        state.image_uri = container.get("Image")
        state.vpc_subnet_ids = (model.get("VpcConfig") or {}).get("Subnets", [])


def _read_scaling(state: EndpointState, aws: AwsCaller) -> None:
    target = scalable_target(state.endpoint_name)
    found = aws.call(
        "application-autoscaling",
        "describe_scalable_targets",
        {
            "ServiceNamespace": target["ServiceNamespace"],
            "ResourceIds": [target["ResourceId"]],
            "ScalableDimension": target["ScalableDimension"],
        },
        operation="DescribeScalableTargets",
        subject=target["ResourceId"],
    )["ScalableTargets"]
    if not found:
        return
    state.autoscaling_min, state.autoscaling_max = found[0]["MinCapacity"], found[0]["MaxCapacity"]
    policies = aws.call(
        "application-autoscaling",
        "describe_scaling_policies",
        {
            "ServiceNamespace": target["ServiceNamespace"],
            "ResourceId": target["ResourceId"],
            "ScalableDimension": target["ScalableDimension"],
        },
        operation="DescribeScalingPolicies",
        subject=target["ResourceId"],
    )["ScalingPolicies"]
    state.scaling_policies = [policy["PolicyName"] for policy in policies]


def _read_monitoring(state: EndpointState, aws: AwsCaller) -> None:
    """The endpoint's schedule (its name is AgentOps's own), when it carries the endpoint's tag."""
    schedule = _describe(
        aws,
        "describe_monitoring_schedule",
        "DescribeMonitoringSchedule",
        MonitoringScheduleName=monitoring_schedule_name(state.endpoint_name),
    )
    if schedule is not None and _belongs_to(aws, "sagemaker", schedule["MonitoringScheduleArn"], state.endpoint_name):
        state.monitoring_schedule = schedule["MonitoringScheduleName"]


def _owned_by_tag(
    aws: AwsCaller, endpoint: str, kind: str, items: list[dict[str, Any]], name_key: str, arn_key: str, service: str = "sagemaker"
) -> list[OwnedResource]:
    return [OwnedResource(kind=kind, name=item[name_key]) for item in items if _belongs_to(aws, service, item[arn_key], endpoint)]


def read_inventory(aws: AwsCaller, endpoint: str) -> list[OwnedResource]:
    """Everything AgentOps created for this endpoint, over every version it ever deployed: every page of
    ListEndpointConfigs / ListModels / ListDataQualityJobDefinitions / DescribeAlarms, and of those only
    what carries TAG_ENDPOINT=endpoint. A name is no proof of ownership (someone may name a config like
    ours); the tag is. This reads one ListTags per config and model in the account, so only a teardown
    (which must find every version, not just the two the endpoint remembers) asks for it."""
    configs = aws.pages("sagemaker", "list_endpoint_configs", {"MaxResults": 100}, "EndpointConfigs", operation="ListEndpointConfigs")
    models = aws.pages("sagemaker", "list_models", {"MaxResults": 100}, "Models", operation="ListModels")
    jobs = aws.pages(
        "sagemaker",
        "list_data_quality_job_definitions",
        {"EndpointName": endpoint, "MaxResults": 100},
        "JobDefinitionSummaries",
        operation="ListDataQualityJobDefinitions",
        subject=endpoint,
    )
    alarms = aws.pages(
        "cloudwatch",
        "describe_alarms",
        {"AlarmNamePrefix": f"{endpoint}-"},
        "MetricAlarms",
        operation="DescribeAlarms",
        subject=f"{endpoint}-*",
    )
    return [
        *_owned_by_tag(aws, endpoint, "endpoint_config", configs, "EndpointConfigName", "EndpointConfigArn"),
        *_owned_by_tag(aws, endpoint, "model", models, "ModelName", "ModelArn"),
        *_owned_by_tag(aws, endpoint, "data_quality_job_definition", jobs, "MonitoringJobDefinitionName", "MonitoringJobDefinitionArn"),
        *_owned_by_tag(aws, endpoint, "alarm", alarms, "AlarmName", "AlarmArn", service="cloudwatch"),
    ]


def read_endpoint_state(aws: AwsCaller, endpoint_name: str, *, inventory: bool = False) -> EndpointState:
    """What runs on the endpoint now; with `inventory`, also every resource AgentOps created for it."""
    endpoint = _describe(aws, "describe_endpoint", "DescribeEndpoint", EndpointName=endpoint_name)
    if endpoint is None:
        return EndpointState(endpoint_name=endpoint_name)
    tags = _tags(aws, "sagemaker", endpoint["EndpointArn"])
    state = EndpointState(
        endpoint_name=endpoint_name,
        exists=True,
        arn=endpoint["EndpointArn"],
        status=endpoint["EndpointStatus"],
        endpoint_config=endpoint.get("EndpointConfigName"),
        pending_endpoint_config=(endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName"),
        failure_reason=endpoint.get("FailureReason"),
        managed=tags.get(TAG_ENDPOINT) == endpoint_name,
        previous_endpoint_config=tags.get(TAG_PREVIOUS_CONFIG),
    )
    config = (
        _describe(aws, "describe_endpoint_config", "DescribeEndpointConfig", EndpointConfigName=state.endpoint_config)
        if state.endpoint_config
        else None
    )
    _read_serving(state, endpoint, config, aws)
    _read_scaling(state, aws)
    # Only endpoints that capture data can have a schedule (Model Monitor reads the captured traffic).
    if state.data_capture_percent > 0:
        _read_monitoring(state, aws)
    if inventory:
        state.owned = read_inventory(aws, endpoint_name)
        state.inventoried = True
    return state


# --- the change ----------------------------------------------------------------------------------------

_REMOVAL_LABELS = {
    "DeleteScalingPolicy": "scaling policy",
    "DeregisterScalableTarget": "autoscaling target",
    "DeleteMonitoringSchedule": "monitoring schedule",
    "DeleteEndpoint": "endpoint",
    "DeleteEndpointConfig": "endpoint config",
    "DeleteModel": "model",
    "DeleteDataQualityJobDefinition": "data quality job definition",
    "DeleteAlarms": "alarms",
}


def removal(call: AwsCall) -> str:
    label = _REMOVAL_LABELS.get(call["operation"], call["operation"])
    subject = call_subject(call)
    if call["operation"] == "DeleteScalingPolicy":
        subject = call["params"]["PolicyName"]
    return f"{label} {subject}"


def _serving_summary(model: str | None, count: int | None, instance_type: str | None) -> str:
    return f"{model or 'unknown model'} on {count or '?'} x {instance_type or '?'}"


def deployment_diff(
    config: DeploymentConfig, plan_id: str, settings: Settings, current: EndpointState, vpc: dict[str, list[str]] | None
) -> list[FieldChange]:
    """Every field whose planned value differs from what runs now (all of them for a new endpoint)."""
    names = resource_names(plan_id, config)
    planned = {
        "endpoint_config": names.endpoint_config,
        "model": names.model,
        "model_data_url": config.model_data_url,
        "image_uri": planned_image(config.image_uri, config.instance_type, settings),
        "instance_type": config.instance_type,
        "instance_count": config.instance_count,
        "autoscaling": f"{config.autoscaling_min}-{config.autoscaling_max}" if config.autoscaling_enabled else None,
        "data_capture_percent": config.data_capture_percent,
        "vpc_subnet_ids": (vpc or {}).get("Subnets", []),
    }
    now = {
        "endpoint_config": current.endpoint_config,
        "model": current.model_name,
        "model_data_url": current.model_data_url,
        "image_uri": current.image_uri,
        "instance_type": current.instance_type,
        "instance_count": current.instance_count,
        "autoscaling": f"{current.autoscaling_min}-{current.autoscaling_max}" if current.autoscaled else None,
        "data_capture_percent": current.data_capture_percent if current.exists else None,
        "vpc_subnet_ids": current.vpc_subnet_ids if current.exists else None,
    }
    return [FieldChange(field=key, current=now[key], planned=value) for key, value in planned.items() if now[key] != value]


def fleet_unchanged(config: DeploymentConfig, settings: Settings, current: EndpointState, vpc: dict[str, list[str]] | None) -> bool:
    """The endpoint already serves what the plan asks for: same model data, image, instance type and count,
    autoscaling, data capture, network and monitoring, settled (InService, no update under way) and ours.
    The traffic-shifting strategy is not compared: it says how to move to a new fleet, and there is none."""
    if not (current.exists and current.managed and current.status == "InService" and current.pending_endpoint_config is None):
        return False
    try:
        image = planned_image(config.image_uri, config.instance_type, settings)
    except AgentOpsError:
        return False  # the plan cannot even name its image: not "the same" as anything
    scaling = (config.autoscaling_min, config.autoscaling_max) if config.autoscaling_enabled else None
    same_model = (
        current.model_name is not None
        and current.model_name.rsplit("-", 1)[0] == resource_names("00000000-0000-0000-0000-000000000000", config).model.rsplit("-", 1)[0]
    )
    return (
        same_model
        and current.model_data_url == config.model_data_url
        and current.image_uri == image
        and current.instance_type == config.instance_type
        and (current.configured_instance_count or current.instance_count) == config.instance_count
        and ((current.autoscaling_min, current.autoscaling_max) if current.autoscaled else None) == scaling
        and current.data_capture_percent == config.data_capture_percent
        and sorted(current.vpc_subnet_ids) == sorted((vpc or {}).get("Subnets", []))
        and (current.monitoring_schedule is not None) == config.enable_model_monitor
    )


def no_change(config: DeploymentConfig, current: EndpointState) -> Change:
    count = current.configured_instance_count or current.instance_count
    summary = (
        f"already running {config.model_name} on {count} x {current.instance_type} "
        f"(endpoint {config.endpoint_name}, config {current.endpoint_config}): nothing to change"
    )
    return Change(action="no_change", known=True, summary=summary, current=current.model_dump(mode="json"))


def scaling_notes(calls: list[AwsCall], current: EndpointState) -> list[str]:
    """What an approver should know about autoscaling around the switch."""
    if not any(c["operation"] == "DeregisterScalableTarget" for c in calls):
        return []
    again = any(c["operation"] == "RegisterScalableTarget" for c in calls)
    return [
        f"autoscaling ({current.autoscaling_min}-{current.autoscaling_max} instances) is deregistered for the switch "
        + ("and registered again once the endpoint is InService" if again else "and not registered again: the plan has none")
        + "; if the switch fails it is put back as it was"
    ]


def unknown_change(config: PlanConfig) -> Change:
    if isinstance(config, DeploymentConfig):
        summary = (
            f"the current state is unknown (dry-run reads nothing from AWS): endpoint {config.endpoint_name} "
            "is created, or updated if it exists"
        )
        return Change(action=None, known=False, summary=summary)
    summary = UNKNOWN_ROLLBACK_TARGET if config.action == "rollback" else UNKNOWN_TEARDOWN_INVENTORY
    return Change(action=config.action, known=False, summary=summary)


def as_deployed(plan_id: str, config: DeploymentConfig, previous: str | None = None) -> EndpointState:
    """The endpoint as AgentOps left it after deploying `config` with plan `plan_id` (`previous`: the
    endpoint config it replaced): what dry-run, which reads nothing from AWS, takes to run on an endpoint
    AgentOps has deployed (the plan's basis), so a new version shows as the update it is and a rollback
    as the switch back it is."""
    names = resource_names(plan_id, config)
    low, high = config.autoscaling_range
    return EndpointState(
        endpoint_name=config.endpoint_name,
        exists=True,
        status="InService",
        endpoint_config=names.endpoint_config,
        managed=True,
        model_name=names.model,
        model_data_url=config.model_data_url,
        image_uri=config.image_uri,
        instance_type=config.instance_type,
        instance_count=config.instance_count,
        configured_instance_count=config.instance_count,
        data_capture_percent=config.data_capture_percent,
        autoscaling_min=low if config.autoscaling_enabled else None,
        autoscaling_max=high if config.autoscaling_enabled else None,
        scaling_policies=[names.scaling_policy] if names.scaling_policy else [],
        monitoring_schedule=names.monitoring_schedule,
        previous_endpoint_config=previous,
    )


def plan_change(
    config: PlanConfig,
    plan_id: str,
    settings: Settings,
    *,
    current: EndpointState | None,
    vpc: dict[str, list[str]] | None = None,
) -> Change:
    """What the plan does to what runs now. A plan the current state makes impossible (an endpoint AgentOps
    did not create, nothing to roll back to) says why in `error`: the deploy step will refuse it."""
    if current is None:
        return unknown_change(config)
    if isinstance(config, DeploymentConfig) and fleet_unchanged(config, settings, current, vpc):
        return no_change(config, current)
    snapshot = current.model_dump(mode="json")
    action = ("update" if current.exists else "create") if isinstance(config, DeploymentConfig) else config.action
    try:
        planned = lifecycle_calls(config, plan_id, settings, current=current, vpc=vpc)
    except AgentOpsError as error:
        return Change(
            action=action,
            known=True,
            summary=f"{action} of endpoint {config.endpoint_name} is not possible: {error}",
            current=snapshot,
            error=str(error),
        )
    name = config.endpoint_name
    if isinstance(config, DeploymentConfig):
        diff = deployment_diff(config, plan_id, settings, current, vpc)
        target = _serving_summary(resource_names(plan_id, config).model, config.instance_count, config.instance_type)
        if current.exists:
            now = _serving_summary(current.model_name, current.instance_count, current.instance_type)
            summary = f"update endpoint {name} ({current.status}) from {now} to {target}, {config.deployment_strategy.replace('_', ' ')}"
        else:
            summary = f"create endpoint {name} with {target}: nothing runs there now"
        return Change(
            action=action, known=True, summary=summary, current=snapshot, diff=diff, warnings=scaling_notes(planned.calls, current)
        )
    if config.action == "rollback":
        target_config = rollback_target(config, current)
        diff = [FieldChange(field="endpoint_config", current=current.endpoint_config, planned=target_config)]
        summary = f"roll back endpoint {name} ({current.status}) from {current.endpoint_config} to {target_config}"
        return Change(
            action="rollback", known=True, summary=summary, current=snapshot, diff=diff, warnings=scaling_notes(planned.calls, current)
        )
    removes = [removal(call) for call in planned.calls]
    summary = f"tear down endpoint {name}: delete {len(removes)} resources AgentOps created for it"
    return Change(action="teardown", known=True, summary=summary, current=snapshot, removes=removes)
