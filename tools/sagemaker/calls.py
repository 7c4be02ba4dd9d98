"""A SageMaker deployment — or an update, rollback or teardown — as a list of boto3 calls, checked against
botocore's service models.

The call list is the one description of what a plan does. Dry-run records it; execute mode
(tools/sagemaker/execute.py) replays it as `getattr(client(call["service"]), call["method"])(**call["params"])`.
So what a person approved and the audit log shows is exactly what runs — there is no second code path
that could drift from it. Which calls a plan needs depends on what runs now (`EndpointState`, read by
tools/sagemaker/state.py in execute mode; unknown in dry-run): `lifecycle_calls` is that one mapping.

Nothing here creates a boto3 client: service models are read from botocore's bundled JSON files, which
needs neither credentials nor network.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from typing import Any, TypedDict

from botocore import xform_name
from pydantic import BaseModel, ConfigDict, Field

from agentops.errors import AgentOpsError
from agentops.schemas import DeploymentConfig, EndpointAction, PlanConfig
from agentops.settings import Settings
from tools.sagemaker.images import planned_image

MAX_NAME_LENGTH = 63
PLAN_SUFFIX_LENGTH = 8

# Blue/green updates shift traffic between two fleets of the *same* variant, so the name never changes.
VARIANT_NAME = "AllTraffic"

# Blue/green timing. Each traffic step bakes for BAKE_SECONDS while the rollback alarms watch it; the old
# fleet is kept TERMINATION_WAIT_SECONDS after the last step so a late alarm can still roll back cheaply.
BAKE_SECONDS = 300
TERMINATION_WAIT_SECONDS = 300
EXECUTION_TIMEOUT_SLACK_SECONDS = 600
MIN_EXECUTION_TIMEOUT_SECONDS = 600  # SageMaker's bounds for MaximumExecutionTimeoutInSeconds
MAX_EXECUTION_TIMEOUT_SECONDS = 28800
DEFAULT_CANARY_PERCENT = 10

# Ownership. Everything AgentOps creates carries TAG_ENDPOINT (the endpoint it belongs to) and TAG_PLAN: a
# teardown deletes only what carries the endpoint's tag, and an update or rollback refuses an endpoint
# without it. The endpoint also remembers the config it ran before AgentOps last switched it, which is
# what a rollback returns to: SageMaker keeps no history of its own.
TAG_ENDPOINT = "agentops:endpoint"
TAG_PLAN = "agentops:plan"
TAG_PREVIOUS_CONFIG = "agentops:previous-endpoint-config"

# Calls that need a live endpoint: Application Auto Scaling and Model Monitor refuse an endpoint that is
# still Creating. Execute mode makes them once the endpoint is InService on the new config. The version tags
# (AddTags: which config the endpoint left) wait too: history must only name a version the endpoint ran,
# so a refused or rolled-back update leaves it as it was.
AFTER_ENDPOINT_OPERATIONS = frozenset(
    {"AddTags", "RegisterScalableTarget", "PutScalingPolicy", "CreateDataQualityJobDefinition", "CreateMonitoringSchedule"}
)
ENDPOINT_SWITCH_OPERATIONS = frozenset({"CreateEndpoint", "UpdateEndpoint"})
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"

# Autoscaling target: invocations per instance per minute. A starting point, to be tuned by load tests.
INVOCATIONS_PER_INSTANCE_TARGET = 100.0

# Model Monitor. An hourly schedule requires each run to finish within the hour.
MONITOR_SCHEDULE = "cron(0 * ? * * *)"
MONITOR_INSTANCE_TYPE = "ml.m5.xlarge"
MONITOR_VOLUME_GB = 20
MONITOR_MAX_RUNTIME_SECONDS = 3600

# ECR accounts that publish the Model Monitor analyzer image (sagemaker-python-sdk's model-monitor.json).
MODEL_MONITOR_ACCOUNTS: dict[str, str] = {
    "ap-east-1": "001633400207",
    "ap-northeast-1": "574779866223",
    "ap-northeast-2": "709848358524",
    "ap-south-1": "126357580389",
    "ap-southeast-1": "245545462676",
    "ap-southeast-2": "563025443158",
    "ca-central-1": "536280801234",
    "cn-north-1": "453000072557",
    "cn-northwest-1": "453252182341",
    "eu-central-1": "048819808253",
    "eu-north-1": "895015795356",
    "eu-west-1": "468650794304",
    "eu-west-2": "749857270468",
    "eu-west-3": "680080141114",
    "me-south-1": "607024016150",
    "sa-east-1": "539772159869",
    "us-east-1": "156813124566",
    "us-east-2": "777275614652",
    "us-west-1": "890145073186",
    "us-west-2": "159807026194",
}


class AwsCall(TypedDict):
    """One boto3 call, replayable as `getattr(boto3.client(service), method)(**params)`. Plain JSON."""

    service: str
    operation: str
    method: str
    params: dict[str, Any]


class ResourceNames(BaseModel):
    """Every name a deployment creates or touches. Derived only from (plan_id, config): a retried plan
    reuses its names, so a replay finds its own resources instead of creating duplicates."""

    model_config = ConfigDict(frozen=True)

    model: str
    endpoint_config: str
    endpoint: str
    variant: str
    alarms: list[str]
    scalable_target: str | None = None
    scaling_policy: str | None = None
    data_quality_job_definition: str | None = None
    monitoring_schedule: str | None = None


class OwnedResource(BaseModel):
    kind: str  # model | endpoint_config | alarm | data_quality_job_definition
    name: str


class EndpointState(BaseModel):
    """What runs now on one endpoint, as read from AWS (tools.sagemaker.state). Plain data: the plan keeps
    it as the state the approver saw, and the builders below derive update, rollback and teardown calls
    from it."""

    endpoint_name: str
    exists: bool = False
    arn: str | None = None
    status: str | None = None
    endpoint_config: str | None = None
    pending_endpoint_config: str | None = None  # the config an in-progress update is moving to
    failure_reason: str | None = None
    managed: bool = False  # carries TAG_ENDPOINT: AgentOps created it
    previous_endpoint_config: str | None = None  # TAG_PREVIOUS_CONFIG
    model_name: str | None = None
    model_data_url: str | None = None
    image_uri: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None  # serving now (autoscaling moves it)
    configured_instance_count: int | None = None  # the endpoint config's InitialInstanceCount
    data_capture_percent: int = 0
    vpc_subnet_ids: list[str] = Field(default_factory=list)
    autoscaling_min: int | None = None
    autoscaling_max: int | None = None
    scaling_policies: list[str] = Field(default_factory=list)
    monitoring_schedule: str | None = None
    owned: list[OwnedResource] = Field(default_factory=list)  # what AgentOps created for the endpoint
    inventoried: bool = False  # `owned` was read (every version, by tag): only a teardown needs it

    @property
    def autoscaled(self) -> bool:
        return self.autoscaling_min is not None

    def runs(self, endpoint_config: str) -> bool:
        """The endpoint serves this config, or an update is moving it there (a resumed run is past its switch)."""
        return endpoint_config in (self.endpoint_config, self.pending_endpoint_config)


# --- names -------------------------------------------------------------------------------------------


def plan_suffix(plan_id: str) -> str:
    """A short, stable tag of the plan: a UUID's first hex digits (so operators can match it to the plan
    by eye), otherwise a hash prefix (so any plan id still gives a valid, stable tag)."""
    try:
        return uuid.UUID(plan_id).hex[:PLAN_SUFFIX_LENGTH]
    except ValueError:
        return hashlib.sha256(plan_id.encode()).hexdigest()[:PLAN_SUFFIX_LENGTH]


def bounded_name(base: str, tail: str) -> str:
    """`{base}-{tail}` within SageMaker's 63 characters, cutting `base` (never `tail`, which carries the
    uniqueness) and keeping the result on SageMaker's name pattern."""
    cleaned = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")
    room = MAX_NAME_LENGTH - len(tail) - 1
    head = cleaned[:room].rstrip("-")
    return f"{head}-{tail}" if head else tail


def monitoring_schedule_name(endpoint: str) -> str:
    return bounded_name(endpoint, "data-quality")


def resource_names(plan_id: str, config: DeploymentConfig) -> ResourceNames:
    suffix = plan_suffix(plan_id)
    endpoint = config.endpoint_name
    # SageMaker keeps models and endpoint configs in separate namespaces; sharing one per-version name makes
    # "which model does this config serve" obvious in the console.
    versioned = bounded_name(config.model_name, suffix)
    autoscaled = config.autoscaling_enabled
    monitored = config.enable_model_monitor
    return ResourceNames(
        model=versioned,
        endpoint_config=versioned,
        endpoint=endpoint,
        variant=VARIANT_NAME,
        # Alarms, scaling and the monitoring schedule belong to the endpoint, not to a version: a new
        # version updates them in place (PutMetricAlarm and the autoscaling calls are upserts).
        alarms=[f"{endpoint}-{alarm}" for alarm in config.rollback_alarms],
        scalable_target=f"endpoint/{endpoint}/variant/{VARIANT_NAME}" if autoscaled else None,
        scaling_policy=scaling_policy_name(endpoint) if autoscaled else None,
        # The job definition records this version's monitoring setup; the schedule stays per endpoint so the
        # drift alarm's MonitoringSchedule dimension and the schedule itself survive new versions.
        data_quality_job_definition=bounded_name(f"{endpoint}-dq", suffix) if monitored else None,
        monitoring_schedule=monitoring_schedule_name(endpoint) if monitored else None,
    )


# --- calls -------------------------------------------------------------------------------------------


def aws_call(service: str, operation: str, params: dict[str, Any]) -> AwsCall:
    return AwsCall(service=service, operation=operation, method=xform_name(operation), params=params)


def model_monitor_image_uri(region: str) -> str:
    account = MODEL_MONITOR_ACCOUNTS.get(region)
    if account is None:
        raise AgentOpsError(f"no Model Monitor analyzer image is known for region {region}")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/sagemaker-model-monitor-analyzer"


def data_capture_uri(bucket: str, endpoint: str) -> str:
    return f"s3://{bucket}/{endpoint}/"


def monitoring_output_uri(bucket: str, endpoint: str) -> str:
    return f"s3://{bucket}/model-monitor/{endpoint}/data-quality/"


def ownership_tags(endpoint: str, plan_id: str) -> list[dict[str, str]]:
    return [{"Key": TAG_ENDPOINT, "Value": endpoint}, {"Key": TAG_PLAN, "Value": plan_id}]


def create_model_call(
    config: DeploymentConfig,
    names: ResourceNames,
    role_arn: str,
    default_image_uri: str,
    vpc: dict[str, list[str]] | None = None,
    tags: list[dict[str, str]] | None = None,
) -> AwsCall:
    params: dict[str, Any] = {
        "ModelName": names.model,
        "ExecutionRoleArn": role_arn,
        "PrimaryContainer": {"Image": config.image_uri or default_image_uri, "ModelDataUrl": config.model_data_url},
    }
    if vpc:
        params["VpcConfig"] = vpc
    if tags:
        params["Tags"] = tags
    return aws_call("sagemaker", "CreateModel", params)


def create_endpoint_config_call(
    config: DeploymentConfig, names: ResourceNames, data_capture_bucket: str, tags: list[dict[str, str]] | None = None
) -> AwsCall:
    params: dict[str, Any] = {
        "EndpointConfigName": names.endpoint_config,
        "ProductionVariants": [
            {
                "VariantName": names.variant,
                "ModelName": names.model,
                "InstanceType": config.instance_type,
                "InitialInstanceCount": config.instance_count,
                "InitialVariantWeight": 1.0,
            }
        ],
    }
    if config.data_capture_percent > 0:
        params["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": config.data_capture_percent,
            "DestinationS3Uri": data_capture_uri(data_capture_bucket, names.endpoint),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    if tags:
        params["Tags"] = tags
    # No AutoRollbackConfiguration here: SageMaker only takes it in CreateEndpoint/UpdateEndpoint.
    return aws_call("sagemaker", "CreateEndpointConfig", params)


def alarm_metric(alarm: str, names: ResourceNames) -> dict[str, Any]:
    """What a rollback alarm watches. Unknown alarm names watch server errors: every rollback alarm must at
    least catch a version that fails its requests."""
    if alarm == "DataDriftAlarm":
        # The built-in Model Monitor container publishes drift per endpoint and schedule, after each hourly
        # run, and only when the baseline's constraints enable metrics.
        dimensions = [{"Name": "Endpoint", "Value": names.endpoint}]
        if names.monitoring_schedule:
            dimensions.append({"Name": "MonitoringSchedule", "Value": names.monitoring_schedule})
        return {
            "Namespace": "aws/sagemaker/Endpoints/data-metrics",
            "MetricName": "feature_baseline_drift",
            "Dimensions": dimensions,
            "Statistic": "Maximum",
            "Period": 3600,
            "EvaluationPeriods": 1,
            "Threshold": 0.1,  # Model Monitor's default distribution-distance threshold
            "ComparisonOperator": "GreaterThanThreshold",
        }
    return {
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocation5XXErrors",
        "Dimensions": [{"Name": "EndpointName", "Value": names.endpoint}, {"Name": "VariantName", "Value": names.variant}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }


def put_metric_alarm_call(alarm: str, alarm_name: str, names: ResourceNames, tags: list[dict[str, str]] | None = None) -> AwsCall:
    params: dict[str, Any] = {
        "AlarmName": alarm_name,
        "AlarmDescription": f"AgentOps rollback alarm {alarm} for SageMaker endpoint {names.endpoint}",
        # No traffic means no errors and no drift: a quiet endpoint must not roll itself back.
        "TreatMissingData": "notBreaching",
        **alarm_metric(alarm, names),
    }
    if tags:
        params["Tags"] = tags
    return aws_call("cloudwatch", "PutMetricAlarm", params)


def traffic_steps(config: DeploymentConfig, step_percent: int) -> int:
    if config.deployment_strategy == "canary":
        return 2
    if config.deployment_strategy == "linear":
        return math.ceil(100 / max(step_percent, 1))
    return 1


def traffic_routing(config: DeploymentConfig, step_percent: int) -> dict[str, Any]:
    routing: dict[str, Any] = {"Type": config.deployment_strategy.upper(), "WaitIntervalInSeconds": BAKE_SECONDS}
    size = {"Type": "CAPACITY_PERCENT", "Value": step_percent}
    if config.deployment_strategy == "canary":
        routing["CanarySize"] = size
    elif config.deployment_strategy == "linear":
        routing["LinearStepSize"] = size
    return routing


def execution_timeout(config: DeploymentConfig, step_percent: int) -> int:
    """Long enough for every bake step plus the termination wait, within SageMaker's bounds."""
    needed = traffic_steps(config, step_percent) * BAKE_SECONDS + TERMINATION_WAIT_SECONDS + EXECUTION_TIMEOUT_SLACK_SECONDS
    return min(max(needed, MIN_EXECUTION_TIMEOUT_SECONDS), MAX_EXECUTION_TIMEOUT_SECONDS)


def blue_green_deployment(config: DeploymentConfig, names: ResourceNames) -> dict[str, Any]:
    """How SageMaker shifts traffic to this version and what rolls it back. CreateEndpoint accepts it too
    (and ignores the traffic routing), so the first version's settings are on record like any update's."""
    step_percent = config.canary_percent if config.canary_percent is not None else DEFAULT_CANARY_PERCENT
    deployment: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": traffic_routing(config, step_percent),
            "TerminationWaitInSeconds": TERMINATION_WAIT_SECONDS,
            "MaximumExecutionTimeoutInSeconds": execution_timeout(config, step_percent),
        },
    }
    if names.alarms:
        deployment["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in names.alarms]}
    return deployment


def create_endpoint_call(config: DeploymentConfig, names: ResourceNames, tags: list[dict[str, str]] | None = None) -> AwsCall:
    params: dict[str, Any] = {
        "EndpointName": names.endpoint,
        "EndpointConfigName": names.endpoint_config,
        "DeploymentConfig": blue_green_deployment(config, names),
    }
    if tags:
        params["Tags"] = tags
    return aws_call("sagemaker", "CreateEndpoint", params)


def switch_call(current: EndpointState, endpoint_config: str, deployment: dict[str, Any]) -> list[AwsCall]:
    """Move an existing endpoint to `endpoint_config`; nothing when it is there already (a resumed run must
    not switch twice)."""
    if current.runs(endpoint_config):
        return []
    params = {"EndpointName": current.endpoint_name, "EndpointConfigName": endpoint_config, "DeploymentConfig": deployment}
    return [aws_call("sagemaker", "UpdateEndpoint", params)]


def version_tag_calls(current: EndpointState, previous: str | None, target: str, plan_id: str) -> list[AwsCall]:
    """Remember on the endpoint which config it left (what a later rollback returns to). Made only once the
    endpoint is InService on `target` (AFTER_ENDPOINT_OPERATIONS): a failed update leaves history unchanged.
    `previous` is the config the endpoint ran when the plan was approved, so a resumed run, which finds the
    endpoint already on `target`, still records where it came from."""
    if not previous or previous == target or current.arn is None:
        return []
    tags = [{"Key": TAG_PREVIOUS_CONFIG, "Value": previous}, {"Key": TAG_PLAN, "Value": plan_id}]
    return [aws_call("sagemaker", "AddTags", {"ResourceArn": current.arn, "Tags": tags})]


def scalable_target(endpoint: str) -> dict[str, str]:
    return {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"endpoint/{endpoint}/variant/{VARIANT_NAME}",
        "ScalableDimension": SCALABLE_DIMENSION,
    }


def deregister_scaling_calls(current: EndpointState) -> list[AwsCall]:
    target = scalable_target(current.endpoint_name)
    return [
        *(aws_call("application-autoscaling", "DeleteScalingPolicy", {**target, "PolicyName": name}) for name in current.scaling_policies),
        aws_call("application-autoscaling", "DeregisterScalableTarget", target),
    ]


def scaling_policy_name(endpoint: str) -> str:
    return f"{endpoint}-invocations-target-tracking"


def register_scaling_calls(endpoint: str, minimum: int, maximum: int) -> list[AwsCall]:
    target = scalable_target(endpoint)
    return [
        aws_call(
            "application-autoscaling",
            "RegisterScalableTarget",
            # Tagged like everything else AgentOps creates: terraform/iam.tf scopes the orchestrator by this tag.
            {**target, "MinCapacity": minimum, "MaxCapacity": maximum, "Tags": {TAG_ENDPOINT: endpoint}},
        ),
        aws_call(
            "application-autoscaling",
            "PutScalingPolicy",
            {
                **target,
                "PolicyName": scaling_policy_name(endpoint),
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": INVOCATIONS_PER_INSTANCE_TARGET,
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                    # Scale out fast for load, scale in slowly so a lull does not drop capacity mid-traffic.
                    "ScaleOutCooldown": 60,
                    "ScaleInCooldown": 300,
                },
            },
        ),
    ]


def autoscaling_calls(config: DeploymentConfig, names: ResourceNames) -> list[AwsCall]:
    return register_scaling_calls(
        names.endpoint, config.autoscaling_min or config.instance_count, config.autoscaling_max or config.instance_count
    )


def restore_scaling_calls(current: EndpointState) -> list[AwsCall]:
    """What puts autoscaling back as it was when a change that deregistered it fails (the endpoint stays on
    its old config, which must not be left without the scaling it had)."""
    if not current.autoscaled:
        return []
    return register_scaling_calls(current.endpoint_name, current.autoscaling_min or 1, current.autoscaling_max or 1)


def model_monitor_calls(
    config: DeploymentConfig,
    names: ResourceNames,
    role_arn: str,
    data_capture_bucket: str,
    region: str,
    tags: list[dict[str, str]] | None = None,
) -> list[AwsCall]:
    if config.data_capture_percent <= 0:
        # Model Monitor analyses captured traffic; without capture every run would have nothing to read.
        raise AgentOpsError("enable_model_monitor needs data capture: set data_capture_percent above 0")
    job_definition = aws_call(
        "sagemaker",
        "CreateDataQualityJobDefinition",
        {
            "JobDefinitionName": names.data_quality_job_definition,
            "DataQualityAppSpecification": {
                "ImageUri": model_monitor_image_uri(region),
                # Without this the analyzer publishes no CloudWatch metrics, and the drift alarm never sees data.
                "Environment": {"publish_cloudwatch_metrics": "Enabled"},
            },
            "DataQualityJobInput": {
                "EndpointInput": {
                    "EndpointName": names.endpoint,
                    "LocalPath": "/opt/ml/processing/input/endpoint",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            },
            "DataQualityJobOutputConfig": {
                "MonitoringOutputs": [
                    {
                        "S3Output": {
                            "S3Uri": monitoring_output_uri(data_capture_bucket, names.endpoint),
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
            },
            "JobResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": MONITOR_INSTANCE_TYPE, "VolumeSizeInGB": MONITOR_VOLUME_GB},
            },
            "RoleArn": role_arn,
            "StoppingCondition": {"MaxRuntimeInSeconds": MONITOR_MAX_RUNTIME_SECONDS},
            **({"Tags": tags} if tags else {}),
        },
    )
    schedule = aws_call(
        "sagemaker",
        "CreateMonitoringSchedule",
        {
            "MonitoringScheduleName": names.monitoring_schedule,
            "MonitoringScheduleConfig": {
                "ScheduleConfig": {"ScheduleExpression": MONITOR_SCHEDULE},
                "MonitoringJobDefinitionName": names.data_quality_job_definition,
                "MonitoringType": "DataQuality",
            },
            **({"Tags": tags} if tags else {}),
        },
    )
    return [job_definition, schedule]


def build_deployment_calls(
    config: DeploymentConfig,
    plan_id: str,
    *,
    role_arn: str,
    default_image_uri: str,
    data_capture_bucket: str,
    region: str,
    vpc: dict[str, list[str]] | None = None,
    current: EndpointState | None = None,
    previous: str | None = None,
) -> list[AwsCall]:
    """The calls in execution order: each one only references resources that earlier calls created (the
    alarms exist before the endpoint that rolls back on them; the endpoint before its scaling and monitor).

    `current` is what runs now: None or a missing endpoint gives CreateEndpoint; an existing one gives the
    switch (UpdateEndpoint), preceded by deregistering autoscaling where SageMaker requires it and followed
    (once InService) by the version tags. `previous` is the config the endpoint ran when the plan was
    approved (default: what it runs now)."""
    names = resource_names(plan_id, config)
    tags = ownership_tags(names.endpoint, plan_id)
    calls = [
        create_model_call(config, names, role_arn, default_image_uri, vpc, tags),
        create_endpoint_config_call(config, names, data_capture_bucket, tags),
        *(put_metric_alarm_call(alarm, name, names, tags) for alarm, name in zip(config.rollback_alarms, names.alarms, strict=False)),
    ]
    if current is None or not current.exists:
        calls.append(create_endpoint_call(config, names, tags))
    else:
        calls += update_calls(config, names, current)
        calls += version_tag_calls(current, previous or current.endpoint_config, names.endpoint_config, plan_id)
    if config.autoscaling_enabled:
        calls += autoscaling_calls(config, names)
    if config.enable_model_monitor:
        calls += model_monitor_calls(config, names, role_arn, data_capture_bucket, region, tags)
    return calls


def require_managed(current: EndpointState, doing: str) -> None:
    if not current.exists:
        raise AgentOpsError(f"endpoint {current.endpoint_name} does not exist: there is nothing to {doing}")
    if not current.managed:
        raise AgentOpsError(
            f"endpoint {current.endpoint_name} was not created by AgentOps (no {TAG_ENDPOINT} tag): refusing to {doing} it; "
            f"tag it {TAG_ENDPOINT}={current.endpoint_name} to hand it over"
        )


def update_calls(config: DeploymentConfig, names: ResourceNames, current: EndpointState) -> list[AwsCall]:
    require_managed(current, "update")
    if current.runs(names.endpoint_config):
        return []
    calls: list[AwsCall] = []
    # SageMaker refuses to update an autoscaled variant to another instance type; and a plan without
    # autoscaling must not keep the old policy resizing the new fleet. Re-registered after the switch.
    if current.autoscaled and (current.instance_type != config.instance_type or not config.autoscaling_enabled):
        calls += deregister_scaling_calls(current)
    return calls + switch_call(current, names.endpoint_config, blue_green_deployment(config, names))


def rollback_target(action: EndpointAction, current: EndpointState) -> str:
    target = action.target_endpoint_config or current.previous_endpoint_config
    if target is None:
        raise AgentOpsError(
            f"no previous endpoint config is recorded on {current.endpoint_name} (tag {TAG_PREVIOUS_CONFIG}): "
            f"name the config to return to, e.g. 'roll back {current.endpoint_name} to config NAME'"
        )
    return target


# All at once and without rollback alarms: the alarms may still be firing for the version being left, and
# would turn the rollback around; the config returned to was already serving.
ROLLBACK_DEPLOYMENT = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}}}


def build_rollback_calls(
    action: EndpointAction, current: EndpointState, plan_id: str, *, previous: str | None = None, scaling: EndpointState | None = None
) -> list[AwsCall]:
    """Deregister autoscaling (the config returned to may run another instance type, which SageMaker refuses
    to switch to under a scalable target), switch, and once InService record the version left and register
    the scaling the endpoint had (`scaling`: the state the plan was approved against, default `current`)."""
    require_managed(current, "roll back")
    target = rollback_target(action, current)
    scaling = scaling or current
    calls = deregister_scaling_calls(current) if current.autoscaled and not current.runs(target) else []
    calls += switch_call(current, target, ROLLBACK_DEPLOYMENT)
    calls += version_tag_calls(current, previous or current.endpoint_config, target, plan_id)
    return calls + restore_scaling_calls(scaling)


def build_teardown_calls(current: EndpointState) -> list[AwsCall]:
    """Delete the endpoint and what AgentOps created for it (`current.owned`, found by tag over every version),
    in the order AWS allows: scaling and the monitoring schedule before the endpoint, the endpoint before its
    configs, a config before its models."""
    require_managed(current, "tear down")
    owned = {
        kind: [r.name for r in current.owned if r.kind == kind]
        for kind in ("endpoint_config", "model", "data_quality_job_definition", "alarm")
    }
    calls = deregister_scaling_calls(current) if current.autoscaled else []
    if current.monitoring_schedule:
        calls.append(aws_call("sagemaker", "DeleteMonitoringSchedule", {"MonitoringScheduleName": current.monitoring_schedule}))
    calls.append(aws_call("sagemaker", "DeleteEndpoint", {"EndpointName": current.endpoint_name}))
    calls += [aws_call("sagemaker", "DeleteEndpointConfig", {"EndpointConfigName": name}) for name in owned["endpoint_config"]]
    calls += [aws_call("sagemaker", "DeleteModel", {"ModelName": name}) for name in owned["model"]]
    calls += [
        aws_call("sagemaker", "DeleteDataQualityJobDefinition", {"JobDefinitionName": name})
        for name in owned["data_quality_job_definition"]
    ]
    # DeleteAlarms takes at most 100 names a call.
    alarms = owned["alarm"]
    calls += [aws_call("cloudwatch", "DeleteAlarms", {"AlarmNames": alarms[i : i + 100]}) for i in range(0, len(alarms), 100)]
    return calls


# Most specific first: CreateEndpoint names both an endpoint and a config, and is about the endpoint.
_SUBJECT_PARAMS = (
    "ModelName",
    "EndpointName",
    "EndpointConfigName",
    "AlarmName",
    "JobDefinitionName",
    "MonitoringScheduleName",
    "PolicyName",
    "ResourceId",
    "ResourceArn",
    "AlarmNames",
)


def call_subject(call: AwsCall) -> str:
    """The resource a call is about, for records a person reads ("CreateModel churn-v1-3f2a9c1b")."""
    params = call["params"]
    for key in _SUBJECT_PARAMS:
        if key in params:
            value = params[key]
            return ", ".join(value) if isinstance(value, list) else str(value)
    return ""


# A plan's status once its calls are made and the endpoint settled (dry-run: would be).
SUCCESS_STATUS = {"deploy": "deployed", "rollback": "rolled_back", "teardown": "torn_down"}

UNKNOWN_ROLLBACK_TARGET = (
    "the current state is unknown (dry-run reads nothing from AWS): the endpoint config to return to is the one "
    f"recorded on the endpoint ({TAG_PREVIOUS_CONFIG}), read when the rollback runs"
)
UNKNOWN_TEARDOWN_INVENTORY = (
    "the current state is unknown (dry-run reads nothing from AWS): the endpoint configs, models, alarms, autoscaling "
    f"and monitoring schedule AgentOps created for the endpoint are found by their {TAG_ENDPOINT} tag when the teardown runs"
)


class LifecycleCalls(BaseModel):
    """What a plan does, as calls: `action` is create / update / rollback / teardown, or None when a deploy
    could be either (the current state is unknown). `restore` puts back what the calls took down before the
    switch (autoscaling) when the switch fails or SageMaker rolls it back."""

    action: str | None
    calls: list[dict[str, Any]]
    resources: dict[str, Any]
    restore: list[dict[str, Any]] = Field(default_factory=list)
    note: str | None = None


def _restore(calls: list[AwsCall], current: EndpointState | None, before: EndpointState | None) -> list[AwsCall]:
    """Autoscaling as it was when the plan was approved, if this change takes it down (now, or already in
    an earlier pass of a resumed run: `current` shows it gone while `before` had it)."""
    if before is None or not before.autoscaled:
        return []
    deregisters = any(c["operation"] == "DeregisterScalableTarget" for c in calls)
    return restore_scaling_calls(before) if deregisters or (current is not None and not current.autoscaled) else []


def lifecycle_calls(
    config: PlanConfig,
    plan_id: str,
    settings: Settings,
    *,
    current: EndpointState | None,
    vpc: dict[str, list[str]] | None = None,
    approved: EndpointState | None = None,
) -> LifecycleCalls:
    """The one mapping from a checked plan (and what runs now, when known) to its calls; raises
    AgentOpsError when the current state makes the plan impossible (no endpoint to roll back, …).
    `approved` is the state the plan was approved against, when it differs from `current` only because a
    resumed run already made part of the change: history and autoscaling are restored from it."""
    before = approved if approved is not None and approved.exists else current
    previous = before.endpoint_config if before is not None else None
    if isinstance(config, DeploymentConfig):
        calls = build_deployment_calls(
            config,
            plan_id,
            role_arn=settings.execution_role_arn,
            default_image_uri=planned_image(config.image_uri, config.instance_type, settings),
            data_capture_bucket=settings.data_capture_bucket,
            region=settings.aws_region,
            vpc=vpc,
            current=current,
            previous=previous,
        )
        action = None if current is None else ("update" if current.exists else "create")
        resources = resource_names(plan_id, config).model_dump(exclude_none=True)
        return LifecycleCalls(action=action, calls=calls, resources=resources, restore=_restore(calls, current, before))
    resources = {"endpoint": config.endpoint_name}
    if current is not None:
        if config.action == "rollback":
            calls = build_rollback_calls(config, current, plan_id, previous=previous, scaling=before)
        else:
            calls = build_teardown_calls(current)
        return LifecycleCalls(
            action=config.action,
            calls=calls,
            resources=resources,
            restore=_restore(calls, current, before) if config.action == "rollback" else [],
        )
    if config.action == "teardown":
        calls = [aws_call("sagemaker", "DeleteEndpoint", {"EndpointName": config.endpoint_name})]
        return LifecycleCalls(action="teardown", calls=calls, resources=resources, note=UNKNOWN_TEARDOWN_INVENTORY)
    if config.target_endpoint_config is None:
        return LifecycleCalls(action="rollback", calls=[], resources=resources, note=UNKNOWN_ROLLBACK_TARGET)
    update = aws_call(
        "sagemaker", "UpdateEndpoint", {"EndpointName": config.endpoint_name, "EndpointConfigName": config.target_endpoint_config}
    )
    return LifecycleCalls(action="rollback", calls=[update], resources=resources)
