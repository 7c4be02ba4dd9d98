"""The `resolve` node: what the plan changes against what runs now.

It sits between plan and guardrail. Through the deployer it reads the endpoint's current state (execute
mode; dry-run cannot look: the change is against the deployment the plan started from, if any, and says
the state is unknown rather than inventing one) and
records the change an approver reads: create or update and every field that differs, the config a
rollback returns to, each resource a teardown deletes, or why the plan cannot run as it stands. What it
read goes on the audit log (`resolve.N`). It only reads, so a re-run is harmless.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from pydantic import ValidationError

from agentops.errors import AgentOpsError
from agentops.guardrails import planned_network as network_for
from agentops.ports import Dependencies
from agentops.schemas import Change, DeploymentConfig, PlanConfig, parse_config
from agentops.updates import differences
from graph.context import dependencies_of
from graph.state import PlanState


def planned_network(env: str, deps: Dependencies) -> tuple[dict[str, list[str]] | None, str | None]:
    """The VPC a model gets in `env` (from settings, where policy requires one), and why it cannot, if so."""
    return network_for(env, deps.policy, deps.settings.vpc_subnet_ids, deps.settings.vpc_security_group_ids)


def resolve(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    try:
        config = parse_config(state.get("config") or {})
    except ValidationError:
        return {"change": None}  # no usable config: the guardrail says why
    deps = dependencies_of(runtime)
    vpc, problem = planned_network(state["env"], deps)
    try:
        change = deps.deployer.change(config, state["plan_id"], vpc=vpc)
    except AgentOpsError as error:
        change = Change(
            action=None, known=False, summary=f"could not read what runs on {config.endpoint_name} now: {error}", error=str(error)
        )
    if problem and isinstance(config, DeploymentConfig):
        # Dry-run shows the calls anyway; execute mode refuses to deploy without the network policy asks for.
        if deps.settings.execute:
            change.error = change.error or problem
        else:
            change.warnings.append(problem)
    if not change.known and not change.error and state.get("basis"):
        change = against_last_deployment(config, state["basis"], change)
    dumped = change.model_dump(mode="json")
    if not change.known and not change.error:
        # Nothing was read (dry-run): the change follows from the config and the plan's basis, which plan.N records.
        return {"change": dumped}
    round_number = (state.get("planner") or {}).get("rounds", 1)
    return {"change": dumped, "events": [{"step": f"resolve.{round_number}", "actor": "agentops", "payload": dumped}]}


def against_last_deployment(config: PlanConfig, basis: dict[str, Any], unknown: Change) -> Change:
    """Nothing could be read (dry-run): the change against the deployment this plan started from, as
    AgentOps left it — still `known: False`, since nobody looked at the endpoint. A rollback returns to the
    deployment before it, when AgentOps recorded one and the plan names no config of its own."""
    before = basis["config"]
    since = f"(plan {basis['plan_id']}, {basis['deployed_at']})"
    if isinstance(config, DeploymentConfig):
        summary = (
            f"update endpoint {config.endpoint_name} from {_serving(before)} to {_serving(config.model_dump())}; "
            f"'from' is what AgentOps last deployed there {since}: dry-run reads nothing from AWS"
        )
        return unknown.model_copy(
            update={"action": "update", "summary": summary, "diff": differences(before, config.model_dump(mode="json"))}
        )
    previous = basis.get("previous")
    if config.action != "rollback" or previous is None or config.target_endpoint_config:
        return unknown
    summary = (
        f"roll back endpoint {config.endpoint_name} from {_serving(before)} {since} to {_serving(previous['config'])} "
        f"(plan {previous['plan_id']}, {previous['deployed_at']}), as AgentOps deployed them: dry-run reads nothing from AWS"
    )
    return unknown.model_copy(update={"summary": summary, "diff": differences(before, previous["config"])})


def _serving(config: dict[str, Any]) -> str:
    return f"{config.get('model_name')} on {config.get('instance_count')} x {config.get('instance_type')}"
