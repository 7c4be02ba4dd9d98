"""Every call checked against botocore's service models before it is recorded or made: types and
required members (botocore's own ParamValidator), then the maximums, enums and patterns botocore leaves
to the server."""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import botocore
import botocore.session
from botocore import xform_name
from botocore.exceptions import UnknownServiceError
from botocore.model import OperationModel, OperationNotFoundError, ServiceModel, Shape
from botocore.validate import ParamValidator

from agentops.errors import AgentOpsError
from agentops.shapes import SHAPES_FILE, FieldRule, ShapeRules
from tools.sagemaker.calls import AwsCall

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
        too_long = (
            [f"{path}: {len(value)} items exceed {shape.metadata['max']}"] if len(value) > shape.metadata.get("max", math.inf) else []
        )
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


# --- the shape rules the guardrail checks (agentops/shapes.py) ------------------------------------------------

# Config field -> (service, operation, member path) of the API member the deployer puts it in.
SHAPE_SOURCES: dict[str, tuple[str, str, str]] = {
    "endpoint_name": ("sagemaker", "CreateEndpoint", "EndpointName"),
    "target_endpoint_config": ("sagemaker", "UpdateEndpoint", "EndpointConfigName"),
    "image_uri": ("sagemaker", "CreateModel", "PrimaryContainer.Image"),
    "model_data_url": ("sagemaker", "CreateModel", "PrimaryContainer.ModelDataUrl"),
    "instance_type": ("sagemaker", "CreateEndpointConfig", "ProductionVariants.InstanceType"),
}


def member_shape(service: str, operation: str, path: str) -> Shape:
    shape = service_model(service).operation_model(operation).input_shape
    for key in path.split("."):
        shape = shape.members[key]
        while shape.type_name == "list":
            shape = shape.member
    return shape


def shape_rules() -> ShapeRules:
    """The rules, from the installed botocore's service models."""
    fields = {}
    for field, (service, operation, path) in SHAPE_SOURCES.items():
        limits = member_shape(service, operation, path).metadata
        pattern = limits.get("pattern")
        fields[field] = FieldRule(
            source=f"{service} {operation} {path}",
            max_length=limits.get("max"),
            # Java patterns Python cannot compile are left to the deployer's check (see compiled_pattern).
            pattern=pattern if pattern is not None and compiled_pattern(pattern) is not None else None,
            enum=limits.get("enum"),
        )
    return ShapeRules(botocore=botocore.__version__, fields=fields)


def write_shape_rules(path: Path = SHAPES_FILE) -> None:
    path.write_text(json.dumps(shape_rules().model_dump(mode="json", exclude_none=True), indent=1) + "\n")


if __name__ == "__main__":  # python -m tools.sagemaker.validation: regenerate agentops/sagemaker_shapes.json
    write_shape_rules()
    print(f"wrote {SHAPES_FILE}")
