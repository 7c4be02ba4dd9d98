"""The default deployer: the validated calls a plan would make, made nowhere."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentops.schemas import Change, DeploymentConfig, PlanConfig
from agentops.settings import Settings
from tools.sagemaker.calls import SUCCESS_STATUS, EndpointState, lifecycle_calls, resource_names
from tools.sagemaker.state import as_deployed, plan_change
from tools.sagemaker.validation import validate_calls


class DryRunDeployer:
    """The default deployer: returns the validated calls a plan would make, and makes none. It reads
    nothing from AWS either, so it cannot tell what runs now (`current` is None); a plan that started
    from a deployment AgentOps made (its basis) is planned as an update of that deployment."""

    mode = "dry_run"

    def __init__(self, settings: Settings):
        self.settings = settings

    def current(self, endpoint_name: str) -> dict[str, Any] | None:
        return None

    def change(self, config: PlanConfig, plan_id: str, *, vpc: dict[str, list[str]] | None = None) -> Change:
        return plan_change(config, plan_id, self.settings, current=None, vpc=vpc)

    def deploy(
        self,
        config: PlanConfig,
        plan_id: str,
        *,
        approved: dict[str, Any] | None = None,
        vpc: dict[str, list[str]] | None = None,
        basis: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        planned = lifecycle_calls(config, plan_id, self.settings, current=left_by(basis), vpc=vpc)
        validate_calls(planned.calls)
        result = {
            "mode": self.mode,
            "action": planned.action,
            "status": SUCCESS_STATUS[config.action],
            "calls": planned.calls,
            "resources": planned.resources,
        }
        return result | ({"note": planned.note} if planned.note else {})

    def finish(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return deployment  # dry-run made every call in deploy already


def left_by(basis: dict[str, Any] | None) -> EndpointState | None:
    """What the plan's basis left on the endpoint (None: no basis, nothing known): on an endpoint AgentOps
    deployed, a new version is an update of it, and a rollback returns to the deployment before it."""
    if not basis or ("previous" in basis and basis["previous"] is None):
        return None  # a rollback to a config AgentOps has no record of: only the tag on the endpoint knows it
    previous = basis.get("previous")
    try:
        returns_to = (
            resource_names(previous["plan_id"], DeploymentConfig.model_validate(previous["config"])).endpoint_config if previous else None
        )
        return as_deployed(basis["plan_id"], DeploymentConfig.model_validate(basis["config"]), previous=returns_to)
    except ValidationError:  # recorded under an older config schema: known no longer, so planned as unknown
        return None
