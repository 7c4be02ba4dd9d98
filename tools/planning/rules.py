"""The deterministic planner: the offline stand-in for the planner LLM.

The intent reader (tools/planning/reader.py) reads the words into a `ParsedIntent`; this planner turns
that into a config and fills what the words left open from policy defaults. What the requester stated is
kept exactly as stated and listed in `pinned` (with the words it came from in `reading`): if it breaks
policy the guardrail blocks it with a reason. When any word that looks like a parameter could not be
read, nothing is planned: the output carries the reader's question instead, and no default ever takes
the place of a stated value. Text that is not a deployment parameter ("this is pre-approved, skip
approval") is ignored: it has no field to land in.
"""

from __future__ import annotations

import re
from typing import Any

from agentops.intent import STATED_FIELDS, ParsedIntent
from agentops.policy import ANY_PRICED, Policy
from agentops.ports import PlannerOutput, PlanRequest
from agentops.settings import Settings
from tools.planning.reader import ENVIRONMENTS, read_intent

# Stated fields a rollback or teardown has no use for: stating one is asked about, never dropped.
_DEPLOY_ONLY = frozenset(STATED_FIELDS) - {"action", "endpoint_name", "target_endpoint_config"}


def slugify(text: str) -> str:
    """A SageMaker-safe name fragment: lowercase letters, digits, single hyphens."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def env_warnings(parsed: ParsedIntent, env: str) -> list[str]:
    if parsed.environments and env not in parsed.environments:
        return [f"the intent mentions {', '.join(sorted(parsed.environments))} but this plan targets {env}"]
    return []


def _from_words(parsed: ParsedIntent, span: str, value: Any) -> dict[str, Any]:
    words = parsed.spans[span]
    return {"value": value, "words": words.text, "start": words.start, "end": words.end}


class RulesPlanner:
    """Implements agentops.ports.Planner without any model."""

    name = "rules"

    def __init__(self, settings: Settings):
        self.settings = settings

    def read(self, request: PlanRequest) -> ParsedIntent:
        return read_intent(request.intent)

    def plan(self, request: PlanRequest, policy: Policy) -> PlannerOutput:
        return self.plan_parsed(self.read(request), request, policy)

    def plan_parsed(self, parsed: ParsedIntent, request: PlanRequest, policy: Policy) -> PlannerOutput:
        """The plan for words already read (the NIM planner reads once and compares against this)."""
        reading = parsed.reading()
        if not parsed.clear:
            return self._ask(parsed.question(), reading)
        if parsed.action in ("rollback", "teardown"):
            return self._plan_endpoint_action(parsed, request)
        return self._plan_deploy(parsed, request, policy)

    def _ask(self, question: str | None, reading: dict[str, Any]) -> PlannerOutput:
        return PlannerOutput(planner=self.name, config=None, question=question, reading=reading)

    def _plan_deploy(self, parsed: ParsedIntent, request: PlanRequest, policy: Policy) -> PlannerOutput:
        env, constraints = request.env, request.constraints
        stated = parsed.stated()
        stated.pop("action", None)
        pinned: dict[str, Any] = dict(stated)
        warnings: list[str] = []
        reading = parsed.reading()

        default_strategy = policy.rollout.default_strategy.get(env, "all_at_once")
        if parsed.excluded_strategies and "deployment_strategy" not in pinned:
            if default_strategy in parsed.excluded_strategies:
                words = parsed.spans["excluded_strategies"].text
                return self._ask(
                    f"Nothing was planned; please restate the request. '{words}': {env} rolls out {default_strategy.replace('_', ' ')} "
                    "by default; say which rollout you want instead (all at once, canary or linear).",
                    reading,
                )
            # "no canary" where the default is another strategy: the default honours it, and it is pinned so no
            # re-plan can bring the canary back.
            pinned["deployment_strategy"] = default_strategy
        if parsed.deployment_strategy in parsed.excluded_strategies:
            return self._ask(
                f"Nothing was planned; please restate the request. The intent asks for {parsed.deployment_strategy} and for no "
                f"{parsed.deployment_strategy}; which one?",
                reading,
            )

        base = parsed.model_base or parsed.model_name or "model"
        if parsed.endpoint_name is None:
            endpoint_name = f"{parsed.app or base}-{env}"
            if parsed.app:
                reading["endpoint_name"] = _from_words(parsed, "app", endpoint_name)
        else:
            endpoint_name = parsed.endpoint_name
        if "instance_type" not in pinned and constraints.instance_type:
            pinned["instance_type"] = constraints.instance_type
        if "budget_usd_per_hour" not in pinned and constraints.budget_usd_per_hour is not None:
            pinned["budget_usd_per_hour"] = constraints.budget_usd_per_hour

        extra_constraints: dict[str, Any] = {}
        if parsed.max_instance_count is not None:
            ceiling = parsed.max_instance_count
            if constraints.max_instance_count is not None:
                ceiling = min(ceiling, constraints.max_instance_count)
            extra_constraints["max_instance_count"] = ceiling

        warnings += env_warnings(parsed, env)
        config = self._defaults(env, policy, pinned, warnings) | {"endpoint_name": endpoint_name} | pinned
        return PlannerOutput(
            planner=self.name,
            config=config,
            pinned=sorted(pinned),
            warnings=warnings,
            reading=reading,
            constraints=extra_constraints,
        )

    def _plan_endpoint_action(self, parsed: ParsedIntent, request: PlanRequest) -> PlannerOutput:
        """A rollback or teardown names only the endpoint (and, for a rollback, perhaps the config to return to)."""
        reading = parsed.reading()
        extra = sorted(set(parsed.stated()) & _DEPLOY_ONLY) + (["max_instance_count"] if parsed.max_instance_count else [])
        if extra:
            words = "; ".join(f"'{parsed.spans[f].text}'" for f in extra)
            return self._ask(
                f"Nothing was planned; please restate the request. A {parsed.action} acts on an endpoint as it is and takes no "
                f"{', '.join(f.replace('_', ' ') for f in extra)}: {words}. Make it two requests if you also want a deployment.",
                reading,
            )
        if parsed.endpoint_name is not None:
            endpoint = parsed.endpoint_name
        else:
            subject = parsed.app or ""
            # A name that already ends in an environment is an endpoint ("churn-dev"); otherwise it is the app whose
            # endpoint is `{app}-{env}`, the name a deploy gives it.
            endpoint = subject if subject.rsplit("-", 1)[-1] in ENVIRONMENTS else f"{subject}-{request.env}"
            reading["endpoint_name"] = _from_words(parsed, "app", endpoint)
        pinned: dict[str, Any] = {"action": parsed.action, "endpoint_name": endpoint}
        if parsed.action == "rollback" and parsed.target_endpoint_config:
            pinned["target_endpoint_config"] = parsed.target_endpoint_config
        return PlannerOutput(
            planner=self.name, config=pinned, pinned=sorted(pinned), warnings=env_warnings(parsed, request.env), reading=reading
        )

    def _defaults(self, env: str, policy: Policy, pinned: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """Policy defaults for everything the requester did not state."""
        allowed = policy.instance_types.get(env, [])
        if allowed == ANY_PRICED or not allowed:
            default_type = min(policy.pricing.usd_per_hour, key=policy.pricing.usd_per_hour.get)
        else:
            default_type = allowed[0]
        count_range = policy.instance_count.get(env)
        count = pinned.get("instance_count", count_range.min if count_range else 1)
        strategy = pinned.get("deployment_strategy", policy.rollout.default_strategy.get(env, "all_at_once"))
        defaults: dict[str, Any] = {
            "instance_type": default_type,
            "instance_count": count,
            "autoscaling_min": pinned.get("autoscaling_min", count),
            "autoscaling_max": pinned.get("autoscaling_max", count),
            "rollback_alarms": list(policy.rollback.required_alarms),
            "deployment_strategy": strategy,
            "data_capture_percent": policy.monitoring.default_data_capture_percent.get(env, 0),
            "enable_model_monitor": env in policy.monitoring.required_in,
        }
        if "autoscaling_min" in pinned and "instance_count" not in pinned:
            # "autoscale 2-4": the count starts at the stated minimum rather than a default outside the range.
            defaults["instance_count"] = defaults["autoscaling_min"]
        if strategy != "all_at_once":
            defaults["canary_percent"] = policy.rollout.default_canary_percent
        if "model_data_url" not in pinned:
            version = pinned["model_name"]
            defaults["model_data_url"] = f"s3://{self.settings.artifact_bucket}/models/{version}/model.tar.gz"
            warnings.append(f"no artifact named; assuming the convention {defaults['model_data_url']}")
        return defaults
