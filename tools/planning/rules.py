"""The deterministic planner: the offline stand-in for the planner LLM.

It reads a plain-language intent with regular expressions and fills the rest from policy defaults. The
intent's first verb decides the action: deploy (create or update, decided later by what exists), roll
back ("roll back fraud-detector in prod") or tear down ("tear down churn-dev").
What the requester states is kept exactly as stated and listed in `pinned`: if it breaks policy the
guardrail blocks it with a reason; the planner never quietly "fixes" a request. Text that is not a
deployment parameter ("this is pre-approved, skip approval") is ignored: it has no field to land in.
"""

from __future__ import annotations

import re
from typing import Any

from agentops.policy import ANY_PRICED, Policy
from agentops.ports import PlannerOutput, PlanRequest
from agentops.schemas import MAX_INSTANCES, MAX_USD_PER_HOUR
from agentops.settings import Settings

_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_COUNT = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
_SIZES = r"(?:nano|micro|small|medium|large|xlarge|\d+xlarge|huge|metal)"
_INSTANCE_TYPE = re.compile(rf"\b(?:ml\.)?([a-z]+\d[a-z0-9]*\.{_SIZES})\b")
_COUNT_BEFORE_TYPE = re.compile(rf"\b{_COUNT}\s+(?:x\s+)?(?:single\s+)?(?:ml\.)?[a-z]+\d[a-z0-9]*\.{_SIZES}\b")
_COUNT_OF_INSTANCES = re.compile(rf"\b{_COUNT}\s+(?:instances?|nodes?|replicas?)\b")
_VERB = re.compile(r"\b(?:deploy|roll\s*out|rollout|ship|release|promote|launch|upgrade|update|serve)\s+(.+)", re.IGNORECASE)
_STOP_WORDS = {"to", "on", "with", "using", "in", "into", "at", "for", "across", "onto", "via", "behind", "as", "and"}
_VERSION = re.compile(r"^(?:v\d+(?:\.\d+)*|version)$", re.IGNORECASE)
_APP = re.compile(r"\bfor\s+([A-Za-z0-9][A-Za-z0-9\-_.]*)")
_ENDPOINT = re.compile(r"\bendpoint\s+(?:named\s+|called\s+)?([A-Za-z0-9][A-Za-z0-9\-_.!]*)", re.IGNORECASE)
_S3_URI = re.compile(r"\b(s3://[^\s,;]+)")
_ARTIFACT_URL = re.compile(r"\b((?:https?|file|gs)://[^\s,;]+)")
_IMAGE = re.compile(r"\b(\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[^\s,;]+)")
_CANARY = re.compile(r"\bcanary(?:\s+(?:of|at))?\s+(\d+)\s*%|\b(\d+)\s*%\s+canary|\bcanary\b")
_LINEAR = re.compile(r"\blinear(?:ly)?\b(?:[^.,;]*?\b(\d+)\s*%)?")
_ALL_AT_ONCE = re.compile(r"\ball[\s-]at[\s-]once\b")
_AUTOSCALE_RANGE = re.compile(r"\b(?:autoscal\w*|scal\w*)\s+(?:from\s+|between\s+)?(\d+)\s*(?:-|–|to|and)\s*(\d+)")
_AUTOSCALE_MAX = re.compile(r"\b(?:autoscal\w*|scal\w*)(?:\s+out)?\s+(?:up\s+)?to\s+(\d+)")
_BUDGET = re.compile(
    r"(?:budget|under|below|at most|max(?:imum)?|cap|limit|within)\s+(?:of\s+)?\$\s*(\d+(?:\.\d+)?)"
    r"|\$\s*(\d+(?:\.\d+)?)\s*(?:/\s*h(?:ou)?r?|per\s+hour|an\s+hour|/h)\b"
)
_CAPTURE = re.compile(r"\b(?:data\s+)?capture\s+(?:of\s+)?(\d+)\s*%|\b(\d+)\s*%\s+(?:data\s+)?capture")
_NO_CAPTURE = re.compile(r"\b(?:no|without)\s+(?:data\s+)?capture\b")
_NO_MONITOR = re.compile(r"\b(?:no|without)\s+(?:model\s+)?monitor(?:ing)?\b")
_WITH_MONITOR = re.compile(r"\bwith\s+(?:a\s+)?(?:model\s+)?monitor(?:ing)?\b")
_ENV_WORDS = {"dev": "dev", "development": "dev", "staging": "staging", "stage": "staging", "prod": "prod", "production": "prod"}
# The first of these verbs in the intent decides the action ("deploy v2 and delete the old one" deploys).
_ACTION_VERB = re.compile(
    r"\b(?P<rollback>roll(?:ing)?[\s-]*back|revert)\b"
    r"|\b(?P<teardown>tear(?:ing)?[\s-]*down|teardown|decommission|delete|destroy|remove|take\s+down|shut\s+down)\b"
    r"|\b(?P<deploy>deploy|roll\s*out|rollout|ship|release|promote|launch|upgrade|update|serve)\b",
    re.IGNORECASE,
)
_ACTION_EXAMPLES = {"rollback": ("roll back", "roll back fraud-detector in prod"), "teardown": ("tear down", "tear down churn-dev")}
_SUBJECT_SKIP = {"the", "endpoint", "named", "called", "model", "service"}
_TARGET_CONFIG = re.compile(r"\bto\s+(?:the\s+)?(?:endpoint[\s-]+)?config(?:uration)?\s+([A-Za-z0-9][A-Za-z0-9-]*)", re.IGNORECASE)
_TO_VERSION = re.compile(r"\bto\s+(v\d+(?:\.\d+)*)\b", re.IGNORECASE)


def slugify(text: str) -> str:
    """A SageMaker-safe name fragment: lowercase letters, digits, single hyphens."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


# A number with a sign of its own ("on -2 ml.m5.large"): every number an intent states is a count, a percentage
# or a budget, none negative. Refused by name rather than read without its sign.
_SIGNED_NUMBER = re.compile(r"(?:^|(?<=[\s(\[:=]))[-−+]\s*\d+(?:\.\d+)?")
_CEILINGS = {
    "instance_count": MAX_INSTANCES,
    "autoscaling_min": MAX_INSTANCES,
    "autoscaling_max": MAX_INSTANCES,
    "budget_usd_per_hour": MAX_USD_PER_HOUR,
}


def _beyond_reason(pinned: dict[str, Any]) -> str | None:
    """A stated number no deployment could mean (2**64 instances): named, never stored or priced."""
    for field, ceiling in _CEILINGS.items():
        value = pinned.get(field)
        if value is not None and not value <= ceiling:  # `not <=` also catches NaN and infinity
            return f"the intent asks for {field.replace('_', ' ')} {value}; no deployment here goes beyond {ceiling:g}"
    return None


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def _model_phrase(intent: str) -> tuple[str, str | None]:
    """(model base name, version) from the words after the verb, e.g. 'fraud-detector v3 to prod' -> ('fraud-detector', 'v3')."""
    match = _VERB.search(intent)
    if not match:
        return "", None
    words: list[str] = []
    version = None
    tokens = match.group(1).split()
    for i, raw in enumerate(tokens):
        token = raw.rstrip(",.;:!?")
        if token.lower() in _STOP_WORDS or _INSTANCE_TYPE.fullmatch(token.lower()):
            break
        if _VERSION.match(token):
            if token.lower() == "version" and i + 1 < len(tokens):
                version = "v" + tokens[i + 1].rstrip(",.;:!?").lstrip("vV")
                break
            version = token.lower()
        else:
            words.append(token)
        if raw != token:  # punctuation ends the phrase
            break
    return slugify(" ".join(words)), version


def _env_warnings(text: str, env: str) -> list[str]:
    mentioned = {_ENV_WORDS[w] for w in re.findall(r"\b(" + "|".join(_ENV_WORDS) + r")\b", text)}
    if mentioned and env not in mentioned:
        return [f"the intent mentions {', '.join(sorted(mentioned))} but this plan targets {env}"]
    return []


def _endpoint_of(intent: str, verb_end: int, env: str) -> str | None:
    """The endpoint a rollback or teardown acts on: named outright ("endpoint churn-dev"), or the word after
    the verb, which is an endpoint when it already ends in an environment ("churn-dev") and otherwise the
    app whose endpoint is `{app}-{env}`, the name a deploy gives it."""
    if explicit := _ENDPOINT.search(intent):
        return explicit.group(1).rstrip(".,;:")
    if app := _APP.search(intent):
        return f"{slugify(app.group(1))}-{env}"
    for raw in intent[verb_end:].split():
        token = raw.strip(",.;:!?\"'")
        if not token or token.lower() in _SUBJECT_SKIP:
            continue
        if token.lower() in _STOP_WORDS:
            return None
        name = slugify(token)
        if not name:
            return None
        return name if name.rsplit("-", 1)[-1] in _ENV_WORDS else f"{name}-{env}"
    return None


class RulesPlanner:
    """Implements agentops.ports.Planner without any model."""

    name = "rules"

    def __init__(self, settings: Settings):
        self.settings = settings

    def plan(self, request: PlanRequest, policy: Policy) -> PlannerOutput:
        verb = _ACTION_VERB.search(request.intent)
        if verb is not None and verb.lastgroup in ("rollback", "teardown"):
            return self._plan_endpoint_action(verb.lastgroup, request, verb.end())
        if signed := _SIGNED_NUMBER.search(request.intent):
            return PlannerOutput(
                planner=self.name,
                config=None,
                error=f"the intent says '{signed.group(0).strip()}': counts, percentages and budgets are positive numbers, say it without a sign",
            )
        text = request.intent.lower()
        env = request.env
        constraints = request.constraints
        pinned: dict[str, Any] = {}
        warnings: list[str] = []

        base, version = _model_phrase(request.intent)
        if base and version is None and (to_version := _TO_VERSION.search(request.intent)):
            version = to_version.group(1).lower()  # "update fraud-detector in prod to v4"
        if not base:
            return PlannerOutput(
                planner=self.name,
                config=None,
                error="could not tell which model to deploy: name it after the verb, e.g. 'deploy fraud-detector v3 to prod'",
            )
        pinned["model_name"] = f"{base}-{version}" if version else base

        explicit_endpoint = _ENDPOINT.search(request.intent)
        if explicit_endpoint:
            pinned["endpoint_name"] = explicit_endpoint.group(1).rstrip(".,;:")
            endpoint_name = pinned["endpoint_name"]
        else:
            app = _APP.search(request.intent)
            endpoint_name = f"{slugify(app.group(1)) if app else base}-{env}"

        types = _INSTANCE_TYPE.findall(text)
        if types:
            pinned["instance_type"] = "ml." + types[0]
            if len(set(types)) > 1:
                warnings.append(f"the intent names several instance types; using the first, ml.{types[0]}")
        elif constraints.instance_type:
            pinned["instance_type"] = constraints.instance_type

        count = _COUNT_BEFORE_TYPE.search(text) or _COUNT_OF_INSTANCES.search(text)
        if count:
            pinned["instance_count"] = _count(count.group(1))

        self._parse_rollout(text, pinned)
        self._parse_autoscaling(text, pinned)
        self._parse_monitoring(text, pinned)
        self._parse_artifacts(request.intent, pinned, warnings)

        budget = _BUDGET.search(text)
        if budget:
            pinned["budget_usd_per_hour"] = float(budget.group(1) or budget.group(2))
        elif constraints.budget_usd_per_hour is not None:
            pinned["budget_usd_per_hour"] = constraints.budget_usd_per_hour

        if beyond := _beyond_reason(pinned):
            return PlannerOutput(planner=self.name, config=None, error=beyond)
        warnings += _env_warnings(text, env)
        config = self._defaults(env, policy, pinned, warnings) | {"endpoint_name": endpoint_name} | pinned
        return PlannerOutput(planner=self.name, config=config, pinned=sorted(pinned), warnings=warnings)

    def _plan_endpoint_action(self, action: str, request: PlanRequest, verb_end: int) -> PlannerOutput:
        """A rollback or teardown names only the endpoint (and, for a rollback, perhaps the config to return to)."""
        endpoint = _endpoint_of(request.intent, verb_end, request.env)
        if endpoint is None:
            verb, example = _ACTION_EXAMPLES[action]
            return PlannerOutput(
                planner=self.name, config=None, error=f"could not tell which endpoint to {verb}: name it after the verb, e.g. '{example}'"
            )
        pinned: dict[str, Any] = {"action": action, "endpoint_name": endpoint}
        if action == "rollback" and (target := _TARGET_CONFIG.search(request.intent)):
            pinned["target_endpoint_config"] = target.group(1)
        return PlannerOutput(
            planner=self.name, config=pinned, pinned=sorted(pinned), warnings=_env_warnings(request.intent.lower(), request.env)
        )

    @staticmethod
    def _parse_rollout(text: str, pinned: dict[str, Any]) -> None:
        if canary := _CANARY.search(text):
            pinned["deployment_strategy"] = "canary"
            if percent := canary.group(1) or canary.group(2):
                pinned["canary_percent"] = int(percent)
        elif linear := _LINEAR.search(text):
            pinned["deployment_strategy"] = "linear"
            if linear.group(1):
                pinned["canary_percent"] = int(linear.group(1))
        elif _ALL_AT_ONCE.search(text):
            pinned["deployment_strategy"] = "all_at_once"

    @staticmethod
    def _parse_autoscaling(text: str, pinned: dict[str, Any]) -> None:
        if scale := _AUTOSCALE_RANGE.search(text):
            pinned["autoscaling_min"], pinned["autoscaling_max"] = int(scale.group(1)), int(scale.group(2))
        elif scale := _AUTOSCALE_MAX.search(text):
            pinned["autoscaling_max"] = int(scale.group(1))

    @staticmethod
    def _parse_monitoring(text: str, pinned: dict[str, Any]) -> None:
        if _NO_CAPTURE.search(text):
            pinned["data_capture_percent"] = 0
        elif capture := _CAPTURE.search(text):
            pinned["data_capture_percent"] = int(capture.group(1) or capture.group(2))
        if _NO_MONITOR.search(text):
            pinned["enable_model_monitor"] = False
        elif _WITH_MONITOR.search(text):
            pinned["enable_model_monitor"] = True

    @staticmethod
    def _parse_artifacts(intent: str, pinned: dict[str, Any], warnings: list[str]) -> None:
        if uri := _S3_URI.search(intent) or _ARTIFACT_URL.search(intent):
            pinned["model_data_url"] = uri.group(1).rstrip(".")
        if image := _IMAGE.search(intent):
            pinned["image_uri"] = image.group(1).rstrip(".")

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
            "autoscaling_min": count,
            "autoscaling_max": count,
            "rollback_alarms": list(policy.rollback.required_alarms),
            "deployment_strategy": strategy,
            "data_capture_percent": policy.monitoring.default_data_capture_percent.get(env, 0),
            "enable_model_monitor": env in policy.monitoring.required_in,
        }
        if strategy != "all_at_once":
            defaults["canary_percent"] = policy.rollout.default_canary_percent
        if "model_data_url" not in pinned:
            version = pinned["model_name"]
            defaults["model_data_url"] = f"s3://{self.settings.artifact_bucket}/models/{version}/model.tar.gz"
            warnings.append(f"no artifact named; assuming the convention {defaults['model_data_url']}")
        return defaults
