"""Following an endpoint after the deploy call until it settles: bounded polling with backoff and a timeout.

    created / updated:  InService on the plan's config                         → deployed
                        InService on the old config after Updating/RollingBack  → rolled_back (+ the alarm in ALARM)
    rollback:           InService on the config returned to                     → rolled_back
    teardown:           the endpoint is gone                                    → torn_down
    any:                Failed / UpdateRollbackFailed                           → failed (+ SageMaker's reason)

Sleep and clock are injected, so tests follow a whole status sequence instantly and deterministically.
Only reads: a resumed watch simply starts polling again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from agentops.settings import Settings
from tools.sagemaker.aws import AwsCaller, ClientFactory, caller_from_settings
from tools.sagemaker.calls import ENDPOINT_SWITCH_OPERATIONS, SUCCESS_STATUS

BACKOFF_FACTOR = 1.5
# Statuses that show SageMaker is acting on an update: only after one of them does "InService on the old
# config" mean a rollback, rather than an update that has not shown up yet.
UPDATE_STATUSES = frozenset({"Updating", "RollingBack"})


class Transition(BaseModel):
    status: str  # an EndpointStatus, or "Deleted"
    endpoint_config: str | None = None
    reason: str | None = None
    after_seconds: float = 0.0


class WatchOutcome(BaseModel):
    status: str  # deployed | rolled_back | torn_down | failed
    reason: str | None = None
    alarms: list[str] = Field(default_factory=list)  # the rollback alarms in ALARM when it rolled back
    endpoint_config: str | None = None
    transitions: list[Transition] = Field(default_factory=list)
    polls: int = 0


def rollout_seconds(deployment: dict[str, Any]) -> float:
    """How long SageMaker may take by the plan's own blue/green settings (so a slow linear rollout is not
    cut short by a timeout meant for quick ones)."""
    for call in deployment.get("calls", []):
        if call["operation"] in ENDPOINT_SWITCH_OPERATIONS:
            policy = call["params"].get("DeploymentConfig", {}).get("BlueGreenUpdatePolicy", {})
            return float(policy.get("MaximumExecutionTimeoutInSeconds", 0) + policy.get("TerminationWaitInSeconds", 0))
    return 0.0


class EndpointWatcher:
    """agentops.ports.Watcher for execute mode."""

    def __init__(
        self,
        settings: Settings,
        clients: ClientFactory,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.aws: AwsCaller = caller_from_settings(settings, clients, sleep)
        self.sleep = sleep
        self.monotonic = monotonic

    def watch(self, deployment: dict[str, Any]) -> dict[str, Any]:
        endpoint = deployment["endpoint"]
        timeout = max(self.settings.watch_timeout_seconds, rollout_seconds(deployment))
        delay = self.settings.watch_poll_seconds
        started = self.monotonic()
        outcome = WatchOutcome(status="failed")
        seen_update = False
        while True:
            described = self.aws.call_unless_missing(
                "sagemaker", "describe_endpoint", {"EndpointName": endpoint}, operation="DescribeEndpoint", subject=endpoint
            )
            outcome.polls += 1
            self._note(outcome, described, self.monotonic() - started)
            seen_update = seen_update or (described is not None and described["EndpointStatus"] in UPDATE_STATUSES)
            settled = self._settled(deployment, described, seen_update)
            if settled is not None:
                status, reason = settled
                outcome.status, outcome.reason = status, reason
                outcome.endpoint_config = described.get("EndpointConfigName") if described else None
                if status == "rolled_back" and deployment.get("action") != "rollback":
                    outcome.alarms = self._firing(deployment.get("alarms", []))
                    outcome.reason = self._rollback_reason(outcome.alarms, reason)
                return outcome.model_dump(mode="json")
            waited = self.monotonic() - started
            if waited + delay > timeout:
                current = outcome.transitions[-1].status
                outcome.reason = (
                    f"endpoint {endpoint} was still {current} after {waited:.0f} s (watch timeout {timeout:.0f} s); "
                    "SageMaker carries on: check it with `aws sagemaker describe-endpoint`"
                )
                return outcome.model_dump(mode="json")
            self.sleep(delay)
            delay = min(delay * BACKOFF_FACTOR, self.settings.watch_max_poll_seconds)

    @staticmethod
    def _note(outcome: WatchOutcome, described: dict[str, Any] | None, elapsed: float) -> None:
        """Record a change of status or config (not every poll)."""
        if described is None:
            now = Transition(status="Deleted", after_seconds=round(elapsed, 1))
        else:
            now = Transition(
                status=described["EndpointStatus"],
                endpoint_config=described.get("EndpointConfigName"),
                reason=described.get("FailureReason"),
                after_seconds=round(elapsed, 1),
            )
        last = outcome.transitions[-1] if outcome.transitions else None
        if last is None or (last.status, last.endpoint_config) != (now.status, now.endpoint_config):
            outcome.transitions.append(now)

    @staticmethod
    def _settled(deployment: dict[str, Any], described: dict[str, Any] | None, seen_update: bool) -> tuple[str, str | None] | None:
        """(plan status, reason) once the endpoint has settled; None while it is still changing."""
        action = deployment.get("action")
        endpoint = deployment["endpoint"]
        if action == "teardown":
            if described is None:
                return "torn_down", None
            if described["EndpointStatus"] == "Failed":
                return "failed", f"deleting endpoint {endpoint} failed: {described.get('FailureReason') or 'SageMaker gave no reason'}"
            return None
        if described is None:
            return "failed", f"endpoint {endpoint} disappeared while AgentOps was watching it"
        status = described["EndpointStatus"]
        config = described.get("EndpointConfigName")
        reason = described.get("FailureReason")
        target, origin = deployment.get("target_endpoint_config"), deployment.get("origin_endpoint_config")
        if status == "Failed":
            return "failed", f"endpoint {endpoint} failed: {reason or 'SageMaker gave no reason'}"
        if status == "UpdateRollbackFailed":
            return "failed", (
                f"endpoint {endpoint} could not roll back ({reason or 'SageMaker gave no reason'}): it may serve "
                "a mix of versions; page the on-call engineer"
            )
        if status != "InService":
            return None
        if config == target:
            return SUCCESS_STATUS["rollback" if action == "rollback" else "deploy"], None
        if config == origin and seen_update:
            if action == "rollback":
                return (
                    "failed",
                    f"SageMaker returned endpoint {endpoint} to {origin}: the rollback to {target} did not hold ({reason or 'no reason given'})",
                )
            return "rolled_back", reason
        if config != origin:
            return (
                "failed",
                f"endpoint {endpoint} now runs {config}, neither the planned {target} nor the previous {origin}: someone else changed it",
            )
        return None  # InService on the old config, and the update has not shown yet

    def _firing(self, alarms: list[str]) -> list[str]:
        if not alarms:
            return []
        found = self.aws.call(
            "cloudwatch", "describe_alarms", {"AlarmNames": alarms}, operation="DescribeAlarms", subject=", ".join(alarms)
        )
        return [alarm["AlarmName"] for alarm in found["MetricAlarms"] if alarm["StateValue"] == "ALARM"]

    @staticmethod
    def _rollback_reason(alarms: list[str], reason: str | None) -> str:
        why = f"rollback alarm {', '.join(alarms)} in ALARM" if alarms else "no rollback alarm is in ALARM any more"
        return f"SageMaker rolled the update back ({why})" + (f": {reason}" if reason else "")
