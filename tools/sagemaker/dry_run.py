"""The default deployer: the validated calls a plan would make, made nowhere."""

from __future__ import annotations

from typing import Any

from agentops.schemas import Change, DeploymentConfig, PlanConfig
from agentops.settings import Settings
from tools.sagemaker.calls import SUCCESS_STATUS, lifecycle_calls
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
        # On an endpoint AgentOps deployed, the plan's calls are those of an update of what it left there.
        current = as_deployed(basis["plan_id"], DeploymentConfig.model_validate(basis["config"])) if basis else None
        planned = lifecycle_calls(config, plan_id, self.settings, current=current, vpc=vpc)
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
