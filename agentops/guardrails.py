"""Deterministic guardrail: a deployment config (or a rollback / teardown) checked against the policy.

Nothing here reads the intent or asks a model: the verdict depends only on the config, the target
environment, the requester's constraints and the policy documents. Every violation is reported (not just
the first), each with a stable rule id, a sentence a person understands, and the policy document and
section it comes from.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from agentops.policy import ANY_PRICED, Policy
from agentops.schemas import Constraints, DeploymentConfig, EndpointAction, GuardrailReport, PlanConfig, Verdict, Violation, parse_config
from agentops.shapes import ShapeRules, default_shape_rules


class _Findings:
    """Collects violations and warnings, citing the policy group each rule belongs to."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.violations: list[Violation] = []
        self.warnings: list[str] = []

    def violate(self, rule: str, group: str, message: str) -> None:
        source = self.policy.source(group)
        self.violations.append(Violation(rule=rule, message=message, policy=source.policy, section=source.section))


def check_config(
    config: dict[str, Any] | PlanConfig,
    env: str,
    policy: Policy,
    constraints: Constraints | None = None,
    shapes: ShapeRules | None = None,
) -> GuardrailReport:
    """`shapes`: SageMaker's limits on the values (agentops/shapes.py); the ones generated from botocore by default."""
    findings = _Findings(policy)
    constraints = constraints or Constraints()

    if env not in policy.environments:
        findings.violations.append(
            Violation(
                rule="environment.unknown",
                message=f"unknown environment '{env}': expected one of {', '.join(policy.environments)}",
                policy=policy.source("instance_count").policy,
                section="Environments",
            )
        )
        return _report(findings, None, None, [])

    try:
        cfg = parse_config(config)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "config"
            findings.violations.append(Violation(rule="schema.invalid", message=f"config field '{field}': {error['msg']}", policy="schema"))
        return _report(findings, None, None, [])
    if isinstance(cfg, EndpointAction):
        return _check_endpoint_action(cfg, env, findings, shapes or default_shape_rules())

    _check_names(cfg, findings)
    _check_artifact(cfg, findings)
    _check_shapes(cfg, shapes or default_shape_rules(), findings)
    price = _check_instance_type(cfg, env, findings)
    _check_counts_and_autoscaling(cfg, env, findings)
    hourly = round(price * cfg.instance_count, 4) if price is not None else None
    peak = round(price * cfg.peak_instance_count, 4) if price is not None else None
    _check_cost(cfg, env, peak, findings)
    _check_constraints(cfg, constraints, peak, findings)
    _check_rollback(cfg, findings)
    _check_monitoring(cfg, env, findings)
    _check_rollout(cfg, env, findings)
    return _report(findings, hourly, peak, approval_reasons(cfg, env, peak, policy))


def _check_endpoint_action(action: EndpointAction, env: str, findings: _Findings, shapes: ShapeRules) -> GuardrailReport:
    """A rollback returns to a config that was checked when it was deployed, and a teardown only stops
    spending, so neither has costs or instance rules to check: names, and who must approve."""
    pattern = re.compile(findings.policy.naming.pattern)
    for field in ("endpoint_name", "target_endpoint_config"):
        value = getattr(action, field)
        if value is not None and not pattern.fullmatch(value):
            findings.violate(f"naming.{field}", "naming", f"{field} '{value}' is not a valid SageMaker name")
    _check_shapes(action, shapes, findings)
    # A teardown ends the endpoint's cost; a rollback's cost is the previous config's, unknown from here.
    cost = 0.0 if action.action == "teardown" else None
    reasons = []
    if env in findings.policy.lifecycle.approval_required_in.get(action.action, []):
        reasons.append(f"every {action.action} in {env} needs human approval")
    return _report(findings, cost, cost, reasons)


def approval_reasons(cfg: DeploymentConfig, env: str, peak_cost: float | None, policy: Policy) -> list[str]:
    """Why a human must approve this plan; empty when no rule asks for approval."""
    rules = policy.approval
    reasons = []
    if env in rules.always_in:
        reasons.append(f"every {env} deployment needs human approval")
    threshold = rules.peak_instance_count_at_least.get(env)
    if threshold is not None and cfg.peak_instance_count >= threshold:
        reasons.append(
            f"{env} deployments that can reach {threshold} or more instances need approval (this one: {cfg.peak_instance_count})"
        )
    if peak_cost is not None and peak_cost > rules.peak_cost_above_usd_per_hour:
        reasons.append(f"peak cost ${peak_cost:.2f}/h is above ${rules.peak_cost_above_usd_per_hour:g}/h")
    return reasons


def _report(findings: _Findings, hourly: float | None, peak: float | None, reasons: list[str]) -> GuardrailReport:
    allowed = not findings.violations
    return GuardrailReport(
        verdict=Verdict(allowed=allowed, violations=findings.violations, warnings=findings.warnings),
        hourly_cost_usd=hourly,
        peak_cost_usd=peak,
        # A blocked plan is never put to a human: there is nothing they could approve.
        requires_approval=allowed and bool(reasons),
        approval_reasons=reasons if allowed else [],
    )


def _check_shapes(cfg: PlanConfig, shapes: ShapeRules, findings: _Findings) -> None:
    """What SageMaker's API itself refuses (the deployer validates every call against the same service model).
    A field a policy rule already faulted (a name off the naming pattern) is not reported twice."""
    faulted = {v.rule.rsplit(".", 1)[-1] for v in findings.violations}
    for field in shapes.fields:
        if field in faulted:
            continue
        for problem in shapes.problems(field, getattr(cfg, field, None)):
            findings.violations.append(
                Violation(rule=f"shape.{field}", message=problem, policy="sagemaker-api", section=shapes.fields[field].source)
            )


def _check_names(cfg: DeploymentConfig, findings: _Findings) -> None:
    pattern = re.compile(findings.policy.naming.pattern)
    for field in ("model_name", "endpoint_name"):
        value = getattr(cfg, field)
        if not pattern.fullmatch(value):
            findings.violate(
                f"naming.{field}",
                "naming",
                f"{field} '{value}' is not a valid SageMaker name: 1-63 letters, digits and hyphens, "
                "starting and ending with a letter or digit",
            )


def _check_artifact(cfg: DeploymentConfig, findings: _Findings) -> None:
    schemes = findings.policy.artifacts.allowed_schemes
    match = re.fullmatch(r"([a-z0-9]+)://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(.+)", cfg.model_data_url)
    if not match or match.group(1) not in schemes:
        allowed = " or ".join(f"{s}://bucket/key" for s in schemes)
        findings.violate("artifact.s3_uri", "artifacts", f"model_data_url '{cfg.model_data_url}' must be an {allowed} URI")


def _check_instance_type(cfg: DeploymentConfig, env: str, findings: _Findings) -> float | None:
    policy = findings.policy
    price = policy.price(cfg.instance_type)
    if price is None:
        findings.violate(
            "instance_type.unknown_price",
            "pricing",
            f"instance type '{cfg.instance_type}' has no known price, so its cost cannot be bounded",
        )
    allowed = policy.instance_types.get(env, [])
    if allowed != ANY_PRICED and cfg.instance_type not in allowed:
        findings.violate(
            "instance_type.not_allowed",
            "instance_types",
            f"instance type '{cfg.instance_type}' is not allowed in {env} (allowed: {', '.join(allowed)})",
        )
    return price


def _check_counts_and_autoscaling(cfg: DeploymentConfig, env: str, findings: _Findings) -> None:
    limits = findings.policy.instance_count[env]
    if not limits.min <= cfg.instance_count <= limits.max:
        findings.violate(
            "instance_count.range",
            "instance_count",
            f"instance_count {cfg.instance_count} is outside {env}'s range of {limits.min}-{limits.max} instances",
        )
    low, high = cfg.autoscaling_range
    if not low <= cfg.instance_count <= high:
        findings.violate(
            "autoscaling.order",
            "autoscaling",
            f"autoscaling must satisfy min <= instance_count <= max (got min {low}, count {cfg.instance_count}, max {high})",
        )
    ceiling = findings.policy.autoscaling.max_instances
    if high > ceiling:
        findings.violate("autoscaling.max_limit", "autoscaling", f"autoscaling_max {high} is above the limit of {ceiling} instances")
    if cfg.autoscaling_enabled and (low < limits.min or high > limits.max):
        findings.violate(
            "autoscaling.env_range",
            "autoscaling",
            f"autoscaling range {low}-{high} leaves {env}'s instance range of {limits.min}-{limits.max}",
        )


def _check_cost(cfg: DeploymentConfig, env: str, peak: float | None, findings: _Findings) -> None:
    if peak is None:
        return
    budget = findings.policy.budget
    limit = budget.max_peak_usd_per_hour[env]
    if peak > limit:
        findings.violate(
            "cost.env_limit",
            "budget",
            f"peak cost ${peak:.2f}/h ({cfg.peak_instance_count} x {cfg.instance_type}) is above {env}'s limit of ${limit:g}/h",
        )
    elif peak >= budget.warn_at_fraction * limit:
        findings.warnings.append(f"peak cost ${peak:.2f}/h is {peak / limit:.0%} of {env}'s limit of ${limit:g}/h")


def _check_constraints(cfg: DeploymentConfig, constraints: Constraints, peak: float | None, findings: _Findings) -> None:
    """The requester's own limits (including a budget in the config itself) only ever tighten policy."""
    budgets = [b for b in (constraints.budget_usd_per_hour, cfg.budget_usd_per_hour) if b is not None]
    if budgets and peak is not None and peak > min(budgets):
        findings.violate(
            "constraint.budget",
            "budget",
            f"peak cost ${peak:.2f}/h is above the requested budget of ${min(budgets):g}/h",
        )
    if constraints.max_instance_count is not None and cfg.peak_instance_count > constraints.max_instance_count:
        findings.violate(
            "constraint.max_instance_count",
            "instance_count",
            f"the deployment can reach {cfg.peak_instance_count} instances; the request allows at most {constraints.max_instance_count}",
        )
    if constraints.instance_type is not None and cfg.instance_type != constraints.instance_type:
        findings.violate(
            "constraint.instance_type",
            "instance_types",
            f"instance type '{cfg.instance_type}' differs from the requested '{constraints.instance_type}'",
        )


def _check_rollback(cfg: DeploymentConfig, findings: _Findings) -> None:
    missing = [a for a in findings.policy.rollback.required_alarms if a not in cfg.rollback_alarms]
    if missing:
        findings.violate(
            "rollback.alarms_missing",
            "rollback",
            f"automatic rollback needs the alarms {', '.join(missing)} (rollback_alarms has {cfg.rollback_alarms or 'none'})",
        )


def _check_monitoring(cfg: DeploymentConfig, env: str, findings: _Findings) -> None:
    if cfg.enable_model_monitor and cfg.data_capture_percent <= 0:
        # Model Monitor analyses captured traffic: without capture it has nothing to read.
        findings.violate(
            "monitoring.needs_capture", "monitoring", "a Model Monitor schedule needs data capture (data_capture_percent is 0)"
        )
    if env not in findings.policy.monitoring.required_in:
        return
    if cfg.data_capture_percent <= 0 and not cfg.enable_model_monitor:
        findings.violate("monitoring.data_capture", "monitoring", f"{env} endpoints must capture data (data_capture_percent is 0)")
    if not cfg.enable_model_monitor:
        findings.violate("monitoring.model_monitor", "monitoring", f"{env} endpoints must run a Model Monitor schedule")


def _check_rollout(cfg: DeploymentConfig, env: str, findings: _Findings) -> None:
    rules = findings.policy.rollout
    if env in rules.progressive_required_in and cfg.deployment_strategy == "all_at_once":
        findings.violate(
            "rollout.progressive_required",
            "rollout",
            f"{env} deployments must shift traffic progressively (canary or linear), not all at once",
        )
    if cfg.deployment_strategy == "all_at_once":
        if cfg.canary_percent is not None:
            findings.warnings.append("canary_percent is ignored for an all-at-once deployment")
        return
    bounds = rules.canary_percent
    if cfg.canary_percent is None:
        findings.violate("rollout.canary_percent", "rollout", f"a {cfg.deployment_strategy} rollout needs canary_percent")
    elif not bounds.min <= cfg.canary_percent <= bounds.max:
        findings.violate(
            "rollout.canary_percent",
            "rollout",
            f"canary_percent {cfg.canary_percent} is outside {bounds.min}-{bounds.max}%",
        )


def network_problem(env: str, policy: Policy, subnets: list[str], security_groups: list[str]) -> str | None:
    """Why the configured network cannot host a model in `env`, or None. The VPC is the environment's,
    not the plan's (it comes from settings), so this is checked where the deployment is made."""
    if bool(subnets) != bool(security_groups):
        return "a VPC needs both subnets and security groups: set both AGENTOPS_VPC_SUBNET_IDS and AGENTOPS_VPC_SECURITY_GROUP_IDS"
    if env in policy.network.vpc_required_in and not subnets:
        source = policy.source("network")
        return (
            f"{env} models must run in a VPC ({source.policy} § {source.section}): "
            "set AGENTOPS_VPC_SUBNET_IDS and AGENTOPS_VPC_SECURITY_GROUP_IDS"
        )
    return None


def vpc_required(env: str, policy: Policy) -> bool:
    return env in policy.network.vpc_required_in


def planned_network(
    env: str, policy: Policy, subnets: list[str], security_groups: list[str]
) -> tuple[dict[str, list[str]] | None, str | None]:
    """The VPC a model gets in `env` (SageMaker's VpcConfig, from settings, where policy requires one), and
    why it cannot have it, if so."""
    problem = network_problem(env, policy, subnets, security_groups)
    if not vpc_required(env, policy) or problem is not None or not subnets:
        return None, problem
    return {"Subnets": list(subnets), "SecurityGroupIds": list(security_groups)}, problem
