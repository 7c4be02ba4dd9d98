"""Execute mode: replays a plan's calls against AWS, looking before it creates anything.

The calls are the ones `tools.sagemaker.calls.lifecycle_calls` builds — the same builder dry-run records — from
the plan and what runs now. Before each create the executor looks (describe) and skips what exists, so a
retried or resumed deploy continues where it stopped: names come from the plan id, and the switch of the
endpoint (CreateEndpoint / UpdateEndpoint) is skipped once the endpoint runs, or is moving to, the plan's
config. Before anything, the endpoint is read again and compared with the state the plan was approved
against: an endpoint someone changed since is refused, not overwritten.

Calls that need a live endpoint (autoscaling, Model Monitor) wait for `finish`, after the watch saw the
endpoint InService on the new config. Nothing here knows the graph.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.session

from agentops.errors import AgentOpsError, EnvironmentProblem
from agentops.schemas import Change, DeploymentConfig, EndpointAction, PlanConfig
from agentops.settings import Settings
from tools.sagemaker.aws import AwsCaller, AwsClients, AwsError, ClientFactory, caller_from_settings
from tools.sagemaker.calls import (
    AFTER_ENDPOINT_OPERATIONS,
    SUCCESS_STATUS,
    AwsCall,
    EndpointState,
    aws_call,
    call_subject,
    lifecycle_calls,
    resource_names,
    rollback_target,
)
from tools.sagemaker.state import plan_change, read_endpoint_state
from tools.sagemaker.validation import validate_calls
from tools.sagemaker.watch import EndpointWatcher

PLACEHOLDER_ROLE_ARN = Settings.model_fields["execution_role_arn"].default
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")

# What each create looks up first: (describe method, the params naming the resource).
_LOOKS: dict[str, tuple[str, str]] = {
    "CreateModel": ("describe_model", "ModelName"),
    "CreateEndpointConfig": ("describe_endpoint_config", "EndpointConfigName"),
    "CreateDataQualityJobDefinition": ("describe_data_quality_job_definition", "JobDefinitionName"),
    "CreateMonitoringSchedule": ("describe_monitoring_schedule", "MonitoringScheduleName"),
}
_CREATED_LABELS = {
    "CreateModel": "model",
    "CreateEndpointConfig": "endpoint config",
    "PutMetricAlarm": "alarm",
    "CreateEndpoint": "endpoint",
    "CreateDataQualityJobDefinition": "data quality job definition",
    "CreateMonitoringSchedule": "monitoring schedule",
    "RegisterScalableTarget": "autoscaling target",
    "PutScalingPolicy": "scaling policy",
}


class ExecutionFailed(AwsError):
    """A call failed part-way: `executed` says what was done (and created) before it."""

    def __init__(self, message: str, executed: list[dict[str, Any]]):
        super().__init__(message)
        self.executed = executed
        self.created = created(executed)


@dataclass
class Record:
    executed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, call: AwsCall, outcome: str) -> None:
        self.executed.append({"operation": call["operation"], "subject": call_subject(call), "outcome": outcome})


def created(executed: list[dict[str, Any]]) -> list[str]:
    """The resources a run created, for a person: "model churn-v1-3f2a9c1b"."""
    return [f"{_CREATED_LABELS.get(e['operation'], e['operation'])} {e['subject']}" for e in executed if e["outcome"] == "created"]


def is_teardown(config: PlanConfig) -> bool:
    return isinstance(config, EndpointAction) and config.action == "teardown"


def outcome_of(operation: str) -> str:
    if operation.startswith(("Delete", "Deregister")):
        return "deleted"
    if operation.startswith(("Update", "AddTags")):
        return "updated"
    if operation in ("RegisterScalableTarget", "PutScalingPolicy"):
        return "applied"  # upserts: there is no telling created from replaced
    return "created"


def check_execute_ready(settings: Settings, clients: AwsClients | None = None) -> None:
    """Refuse to start execute mode without what every deployment needs; one line each, naming the fix."""
    role = settings.execution_role_arn
    if role == PLACEHOLDER_ROLE_ARN or not ROLE_ARN.match(role):
        problem = "it is unset (the default is a placeholder)" if role == PLACEHOLDER_ROLE_ARN else f"'{role}' is not an IAM role ARN"
        raise EnvironmentProblem(
            "EXECUTE=true needs AGENTOPS_EXECUTION_ROLE_ARN, the IAM role SageMaker runs models with "
            f"(arn:aws:iam::ACCOUNT:role/NAME): {problem}"
        )
    if settings.aws_endpoint_url is None and settings.aws_region not in known_regions():
        raise EnvironmentProblem(
            f"AWS region '{settings.aws_region}' is not one SageMaker runs in: set AWS_REGION (or AGENTOPS_AWS_REGION), e.g. us-east-1"
        )
    if not (clients or AwsClients(settings)).has_credentials():
        raise EnvironmentProblem(
            "EXECUTE=true needs AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role"
        )


def known_regions() -> set[str]:
    """Regions SageMaker has an endpoint in, from botocore's bundled endpoint data (no network)."""
    session = botocore.session.get_session()
    return {region for partition in session.get_available_partitions() for region in session.get_available_regions("sagemaker", partition)}


class SageMakerExecutor:
    """The execute-mode deployer (agentops.ports.Deployer)."""

    mode = "execute"

    def __init__(self, settings: Settings, clients: ClientFactory, *, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.aws: AwsCaller = caller_from_settings(settings, clients, sleep)

    # --- what runs now -----------------------------------------------------------------------------

    def current(self, endpoint_name: str) -> dict[str, Any]:
        return read_endpoint_state(self.aws, endpoint_name, inventory=True).model_dump(mode="json")

    def _read(self, config: PlanConfig) -> EndpointState:
        return read_endpoint_state(self.aws, config.endpoint_name, inventory=is_teardown(config))

    def change(self, config: PlanConfig, plan_id: str, *, vpc: dict[str, list[str]] | None = None) -> Change:
        return plan_change(config, plan_id, self.settings, current=self._read(config), vpc=vpc)

    # --- making the calls --------------------------------------------------------------------------

    def deploy(
        self,
        config: PlanConfig,
        plan_id: str,
        *,
        approved: dict[str, Any] | None = None,
        vpc: dict[str, list[str]] | None = None,
        basis: dict[str, Any] | None = None,  # unused: execute mode reads what runs
    ) -> dict[str, Any]:
        seen = EndpointState.model_validate(approved) if approved else None
        fresh = self._read(config)
        if isinstance(config, EndpointAction) and config.action == "rollback":
            # Pinned before anything runs: once the rollback finishes, the endpoint's previous-config tag names
            # the version it left, so a resumed rollback must not read its target from the tag again.
            config = config.model_copy(update={"target_endpoint_config": rollback_target(config, seen or fresh)})
        target = self._target(config, plan_id)
        if seen is not None:
            self._check_unchanged(config, seen, fresh, target)
        # A teardown deletes what the approver was shown (deletes of what is gone already are skipped);
        # every other action works from the endpoint as it is now, and from the approved state for what it
        # restores (history, autoscaling) when a resumed run finds part of the change made.
        basis = seen if seen is not None and is_teardown(config) and seen.inventoried else fresh
        planned = lifecycle_calls(config, plan_id, self.settings, current=basis, vpc=vpc, approved=seen)
        validate_calls(planned.calls + planned.restore)
        record = self._run([c for c in planned.calls if c["operation"] not in AFTER_ENDPOINT_OPERATIONS], restore=planned.restore)
        origin = seen.endpoint_config if seen is not None and seen.exists else fresh.endpoint_config
        return {
            "mode": self.mode,
            "action": planned.action,
            "status": "deploying",
            "calls": planned.calls,
            "restore": planned.restore,
            "resources": planned.resources,
            "executed": record.executed,
            "created": created(record.executed),
            "endpoint": config.endpoint_name,
            "target_endpoint_config": target,
            "origin_endpoint_config": origin if origin != target else None,
            "alarms": planned.resources.get("alarms", []),
        }

    def finish(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """Once the watch settled. InService on the new config: the calls that needed it live (version tags,
        autoscaling, the Model Monitor schedule). Anything else (rolled back, failed): put back what the change
        took down before the switch (autoscaling), so the endpoint keeps the scaling it had."""
        done = deployment.get("executed", [])
        if deployment.get("status") == SUCCESS_STATUS.get(deployment.get("action") or "", "deployed"):
            calls = [c for c in deployment["calls"] if c["operation"] in AFTER_ENDPOINT_OPERATIONS]
        else:
            calls = deployment.get("restore", [])
        record = self._run(calls, done=done)
        return deployment | {"executed": record.executed, "created": created(record.executed)}

    @staticmethod
    def _target(config: PlanConfig, plan_id: str) -> str | None:
        if isinstance(config, DeploymentConfig):
            return resource_names(plan_id, config).endpoint_config
        return config.target_endpoint_config  # rollback (resolved above); None for a teardown

    @staticmethod
    def _check_unchanged(config: PlanConfig, seen: EndpointState, fresh: EndpointState, target: str | None) -> None:
        """The endpoint must be as the approver saw it, or already where this plan takes it (a resumed run)."""
        if is_teardown(config):
            # Resources that appeared since the approver saw the inventory (one taken before inventories were
            # read has nothing to compare with: the teardown then deletes what it finds now).
            leftovers = {(r.kind, r.name) for r in fresh.owned} - {(r.kind, r.name) for r in seen.owned} if seen.inventoried else set()
            changed = bool(leftovers) or fresh.endpoint_config not in (seen.endpoint_config, None)
        else:
            moved_on = target is not None and fresh.runs(target)
            changed = not moved_on and (fresh.exists, fresh.endpoint_config) != (seen.exists, seen.endpoint_config)
        if changed:
            raise AgentOpsError(
                f"endpoint {config.endpoint_name} changed since the plan was approved (it ran {seen.endpoint_config or 'nothing'}, "
                f"now {fresh.endpoint_config or 'nothing'}): make a new plan"
            )

    def _run(self, calls: list[AwsCall], done: list[dict[str, Any]] | None = None, restore: list[AwsCall] | None = None) -> Record:
        record = Record(list(done or []))
        try:
            for call in calls:
                self._make(call, record)
        except AgentOpsError as error:
            message = str(error)
            if restore:
                # The change takes autoscaling down before the switch; whatever failed, the endpoint still serves
                # its old config and gets its scaling back (RegisterScalableTarget is an upsert: safe to repeat).
                try:
                    for call in restore:
                        self._make(call, record)
                    message += "; autoscaling is registered as it was"
                except AgentOpsError as second:
                    message += f"; restoring autoscaling failed too ({second}): register it again by hand"
            raise ExecutionFailed(message, record.executed) from error
        return record

    def _make(self, call: AwsCall, record: Record) -> None:
        operation, subject = call["operation"], call_subject(call)
        if self._exists(call):
            if operation != "CreateMonitoringSchedule":
                record.add(call, "exists")
                return
            # The schedule is the endpoint's, not the version's: point it at this version's job definition.
            call = aws_call("sagemaker", "UpdateMonitoringSchedule", {k: v for k, v in call["params"].items() if k != "Tags"})
            operation = call["operation"]
        if operation.startswith(("Delete", "Deregister")):
            gone = (
                self.aws.call_unless_missing(call["service"], call["method"], call["params"], operation=operation, subject=subject) is None
            )
            record.add(call, "gone" if gone else "deleted")
            return
        self.aws.call(call["service"], call["method"], call["params"], operation=operation, subject=subject)
        record.add(call, outcome_of(operation))

    def _exists(self, call: AwsCall) -> bool:
        operation = call["operation"]
        if operation == "PutMetricAlarm":
            # Created if missing; an existing alarm (perhaps tuned by its owners) is left as it is.
            name = call["params"]["AlarmName"]
            found = self.aws.call("cloudwatch", "describe_alarms", {"AlarmNames": [name]}, operation="DescribeAlarms", subject=name)
            return bool(found["MetricAlarms"])
        if operation not in _LOOKS:
            return False
        method, key = _LOOKS[operation]
        name = call["params"][key]
        return self.aws.call_unless_missing(call["service"], method, {key: name}, operation=operation, subject=name) is not None


def executor_from_settings(settings: Settings) -> tuple[SageMakerExecutor, EndpointWatcher]:
    """Execute mode's deployer and watcher, sharing one set of clients; refuses to start without a role
    ARN or credentials."""
    clients = AwsClients(settings)
    check_execute_ready(settings, clients)
    return SageMakerExecutor(settings, clients), EndpointWatcher(settings, clients)
