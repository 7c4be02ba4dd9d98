"""A SageMaker deployment as a list of boto3 calls, checked against botocore's service models.

The call list is the one description of a deployment. Dry-run records it; execute mode replays it as
`getattr(client(call["service"]), call["method"])(**call["params"])`. So what a person approved and the
audit log shows is exactly what would run — there is no second code path that could drift from it.

Nothing here creates a boto3 client: service models are read from botocore's bundled JSON files, which
needs neither credentials nor network.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from functools import cache
from typing import Any, TypedDict

import botocore.session
from botocore import xform_name
from botocore.exceptions import UnknownServiceError
from botocore.model import OperationModel, OperationNotFoundError, ServiceModel, Shape
from botocore.validate import ParamValidator
from pydantic import BaseModel, ConfigDict

from agentops.errors import AgentOpsError
from agentops.schemas import DeploymentConfig
from agentops.settings import Settings

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
        scaling_policy=f"{endpoint}-invocations-target-tracking" if autoscaled else None,
        # The job definition records this version's monitoring setup; the schedule stays per endpoint so the
        # drift alarm's MonitoringSchedule dimension and the schedule itself survive new versions.
        data_quality_job_definition=bounded_name(f"{endpoint}-dq", suffix) if monitored else None,
        monitoring_schedule=bounded_name(endpoint, "data-quality") if monitored else None,
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


def create_model_call(config: DeploymentConfig, names: ResourceNames, role_arn: str, default_image_uri: str) -> AwsCall:
    return aws_call("sagemaker", "CreateModel", {
        "ModelName": names.model,
        "ExecutionRoleArn": role_arn,
        "PrimaryContainer": {"Image": config.image_uri or default_image_uri, "ModelDataUrl": config.model_data_url},
    })


def create_endpoint_config_call(config: DeploymentConfig, names: ResourceNames, data_capture_bucket: str) -> AwsCall:
    params: dict[str, Any] = {
        "EndpointConfigName": names.endpoint_config,
        "ProductionVariants": [{
            "VariantName": names.variant,
            "ModelName": names.model,
            "InstanceType": config.instance_type,
            "InitialInstanceCount": config.instance_count,
            "InitialVariantWeight": 1.0,
        }],
    }
    if config.data_capture_percent > 0:
        params["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": config.data_capture_percent,
            "DestinationS3Uri": data_capture_uri(data_capture_bucket, names.endpoint),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
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


def put_metric_alarm_call(alarm: str, alarm_name: str, names: ResourceNames) -> AwsCall:
    return aws_call("cloudwatch", "PutMetricAlarm", {
        "AlarmName": alarm_name,
        "AlarmDescription": f"AgentOps rollback alarm {alarm} for SageMaker endpoint {names.endpoint}",
        # No traffic means no errors and no drift: a quiet endpoint must not roll itself back.
        "TreatMissingData": "notBreaching",
        **alarm_metric(alarm, names),
    })


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


def create_endpoint_call(config: DeploymentConfig, names: ResourceNames) -> AwsCall:
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
    return aws_call("sagemaker", "CreateEndpoint", {
        "EndpointName": names.endpoint,
        "EndpointConfigName": names.endpoint_config,
        "DeploymentConfig": deployment,
    })


def autoscaling_calls(config: DeploymentConfig, names: ResourceNames) -> list[AwsCall]:
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": names.scalable_target,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    return [
        aws_call("application-autoscaling", "RegisterScalableTarget", {
            **target,
            "MinCapacity": config.autoscaling_min,
            "MaxCapacity": config.autoscaling_max,
        }),
        aws_call("application-autoscaling", "PutScalingPolicy", {
            **target,
            "PolicyName": names.scaling_policy,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": INVOCATIONS_PER_INSTANCE_TARGET,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                # Scale out fast for load, scale in slowly so a lull does not drop capacity mid-traffic.
                "ScaleOutCooldown": 60,
                "ScaleInCooldown": 300,
            },
        }),
    ]


def model_monitor_calls(config: DeploymentConfig, names: ResourceNames, role_arn: str, data_capture_bucket: str, region: str) -> list[AwsCall]:
    if config.data_capture_percent <= 0:
        # Model Monitor analyses captured traffic; without capture every run would have nothing to read.
        raise AgentOpsError("enable_model_monitor needs data capture: set data_capture_percent above 0")
    job_definition = aws_call("sagemaker", "CreateDataQualityJobDefinition", {
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
            "MonitoringOutputs": [{
                "S3Output": {
                    "S3Uri": monitoring_output_uri(data_capture_bucket, names.endpoint),
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
            }],
        },
        "JobResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": MONITOR_INSTANCE_TYPE, "VolumeSizeInGB": MONITOR_VOLUME_GB},
        },
        "RoleArn": role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": MONITOR_MAX_RUNTIME_SECONDS},
    })
    schedule = aws_call("sagemaker", "CreateMonitoringSchedule", {
        "MonitoringScheduleName": names.monitoring_schedule,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": MONITOR_SCHEDULE},
            "MonitoringJobDefinitionName": names.data_quality_job_definition,
            "MonitoringType": "DataQuality",
        },
    })
    return [job_definition, schedule]


def build_deployment_calls(
    config: DeploymentConfig,
    plan_id: str,
    *,
    role_arn: str,
    default_image_uri: str,
    data_capture_bucket: str,
    region: str,
) -> list[AwsCall]:
    """The calls in execution order: each one only references resources that earlier calls created (the
    alarms exist before the endpoint that rolls back on them; the endpoint before its scaling and monitor)."""
    names = resource_names(plan_id, config)
    calls = [
        create_model_call(config, names, role_arn, default_image_uri),
        create_endpoint_config_call(config, names, data_capture_bucket),
        *(put_metric_alarm_call(alarm, name, names) for alarm, name in zip(config.rollback_alarms, names.alarms)),
        create_endpoint_call(config, names),
    ]
    if config.autoscaling_enabled:
        calls += autoscaling_calls(config, names)
    if config.enable_model_monitor:
        calls += model_monitor_calls(config, names, role_arn, data_capture_bucket, region)
    return calls


# --- validation --------------------------------------------------------------------------------------


@cache
def service_model(service: str) -> ServiceModel:
    """Loading a service model parses megabytes of JSON; every deployment reuses the same few."""
    try:
        return botocore.session.get_session().get_service_model(service)
    except UnknownServiceError as error:
        raise AgentOpsError(f"unknown AWS service {service!r}") from error


@cache
def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """AWS patterns are Java regexes; those Python cannot compile (\\p{...}, UTF-16 surrogate ranges) are
    skipped rather than guessed at — AWS still checks them server-side."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def operation_model(call: AwsCall) -> OperationModel:
    model = service_model(call["service"])
    try:
        operation = model.operation_model(call["operation"])
    except OperationNotFoundError as error:
        raise AgentOpsError(f"{call['service']} has no operation {call['operation']}") from error
    if call["method"] != xform_name(operation.name):
        raise AgentOpsError(f"{call['operation']}: method {call['method']!r} should be {xform_name(operation.name)!r}")
    return operation


def botocore_problems(params: dict[str, Any], shape: Shape) -> list[str]:
    """Types, required members and minimums: what botocore itself checks before sending a request."""
    report = ParamValidator().validate(params, shape)
    if not report.has_errors():
        return []
    return [line.strip() for line in report.generate_report().splitlines() if line.strip()]


def string_problems(value: str, shape: Shape, path: str) -> list[str]:
    problems = []
    limits = shape.metadata
    if "max" in limits and len(value) > limits["max"]:
        problems.append(f"{path}: length {len(value)} exceeds {limits['max']}")
    if "enum" in limits and value not in limits["enum"]:
        problems.append(f"{path}: {value!r} is not one of the service's allowed values")
    pattern = compiled_pattern(limits["pattern"]) if "pattern" in limits else None
    if pattern is not None and not pattern.fullmatch(value):
        problems.append(f"{path}: {value!r} does not match {limits['pattern']}")
    return problems


def member_path(path: str, key: str) -> str:
    """Paths read like botocore's own messages: `ProductionVariants[0].ModelName`."""
    return f"{path}.{key}" if path else key


def constraint_problems(value: Any, shape: Shape, path: str) -> list[str]:
    """Maximums, enums and patterns, which botocore leaves to the server: a bad name should fail the
    dry-run, not the third call of a real deployment."""
    kind = shape.type_name
    if kind == "structure":
        return [
            problem
            for key, member in value.items()
            if key in shape.members
            for problem in constraint_problems(member, shape.members[key], member_path(path, key))
        ]
    if kind == "list":
        too_long = [f"{path}: {len(value)} items exceed {shape.metadata['max']}"] if len(value) > shape.metadata.get("max", math.inf) else []
        return too_long + [problem for i, item in enumerate(value) for problem in constraint_problems(item, shape.member, f"{path}[{i}]")]
    if kind == "map":
        return [problem for key, item in value.items() for problem in constraint_problems(item, shape.value, member_path(path, key))]
    if kind == "string":
        return string_problems(value, shape, path)
    if kind in ("integer", "long", "float", "double") and value > shape.metadata.get("max", math.inf):
        return [f"{path}: {value} exceeds {shape.metadata['max']}"]
    return []


def validate_calls(calls: list[AwsCall]) -> None:
    """Raise AgentOpsError, naming the first bad call and its problems on one line, unless every call's
    params fit its operation's input shape."""
    for call in calls:
        operation = operation_model(call)
        problems = botocore_problems(call["params"], operation.input_shape)
        if not problems:  # the walk below assumes botocore already confirmed the types
            problems = constraint_problems(call["params"], operation.input_shape, "")
        if problems:
            raise AgentOpsError(f"{call['service']} {call['operation']} rejected: " + "; ".join(problems))


# --- deployer ----------------------------------------------------------------------------------------


class DryRunDeployer:
    """The default deployer: returns the validated calls a deployment would make, and makes none."""

    mode = "dry_run"

    def __init__(self, settings: Settings):
        self.settings = settings

    def deploy(self, config: DeploymentConfig, plan_id: str) -> dict[str, Any]:
        calls = build_deployment_calls(
            config,
            plan_id,
            role_arn=self.settings.execution_role_arn,
            default_image_uri=self.settings.default_image_uri,
            data_capture_bucket=self.settings.data_capture_bucket,
            region=self.settings.aws_region,
        )
        validate_calls(calls)
        return {
            "mode": self.mode,
            "status": "deployed",
            "calls": calls,
            "resources": resource_names(plan_id, config).model_dump(exclude_none=True),
        }
