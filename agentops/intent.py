"""What a requester's words say, field by field, and what they say that could not be read.

`ParsedIntent` is the contract between reading an intent and planning it: every value the requester
stated is here with the words it came from (`spans`), and every word that looked like a deployment
parameter but fitted no phrase is in `unclear`, with the closest valid value when there is one. A plan
is made only from an intent with nothing unclear; otherwise the requester is asked (`question`), and
nothing is filled in for them. Planners (tools/planning, tools/nvidia) produce and honour it; the
workflow carries `reading()` to the approver.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agentops.schemas import PlanAction, Strategy


class Span(BaseModel):
    """Where in the intent a value came from: character offsets and the words themselves."""

    start: int
    end: int
    text: str


class Unclear(BaseModel):
    """Words that look like a deployment parameter but fit no phrase the reader knows."""

    words: str
    start: int
    end: int
    reason: str
    suggestion: str | None = Field(default=None, description="The closest valid reading, e.g. ml.g5.2xlarge.")

    def ask(self) -> str:
        text = f"'{self.words}': {self.reason}"
        return f"{text} (did you mean {self.suggestion}?)" if self.suggestion else text


# The config fields a requester can state; `ParsedIntent.stated()` reports these.
STATED_FIELDS = (
    "action",
    "model_name",
    "endpoint_name",
    "instance_type",
    "instance_count",
    "autoscaling_min",
    "autoscaling_max",
    "deployment_strategy",
    "canary_percent",
    "data_capture_percent",
    "enable_model_monitor",
    "budget_usd_per_hour",
    "model_data_url",
    "image_uri",
    "target_endpoint_config",
)


class ParsedIntent(BaseModel):
    """The requester's words read into typed fields. A field is None when the words did not state it."""

    text: str
    action: PlanAction | None = None
    model_name: str | None = None
    model_base: str | None = Field(default=None, description="The model's name without its version: names the endpoint.")
    endpoint_name: str | None = None
    app: str | None = Field(default=None, description="'for chatbot-x': the endpoint becomes chatbot-x-{env}.")
    instance_type: str | None = None
    instance_count: int | None = None
    max_instance_count: int | None = Field(default=None, description="'at most 3 instances': a ceiling, not a count.")
    autoscaling_min: int | None = None
    autoscaling_max: int | None = None
    deployment_strategy: Strategy | None = None
    excluded_strategies: list[Strategy] = Field(default_factory=list, description="'no canary': never planned.")
    canary_percent: int | None = None
    data_capture_percent: int | None = None
    enable_model_monitor: bool | None = None
    budget_usd_per_hour: float | None = None
    model_data_url: str | None = None
    image_uri: str | None = None
    target_endpoint_config: str | None = None
    environments: list[str] = Field(default_factory=list, description="Environments the words mention.")
    spans: dict[str, Span] = Field(default_factory=dict, description="field -> the words it came from")
    unused: list[Span] = Field(default_factory=list, description="Words no phrase used (filler, or unclear).")
    unclear: list[Unclear] = Field(default_factory=list)
    missing: str | None = Field(default=None, description="What the words never said and a plan cannot do without.")

    def stated(self) -> dict[str, Any]:
        """The config fields the requester stated, with their values."""
        return {name: getattr(self, name) for name in STATED_FIELDS if getattr(self, name) is not None and name in self.spans}

    @property
    def clear(self) -> bool:
        return not self.unclear and self.missing is None

    def question(self) -> str | None:
        """What to ask the requester, quoting the words that could not be read; None when all is clear."""
        if self.clear:
            return None
        parts = [u.ask() for u in self.unclear]
        if self.missing:
            parts.append(self.missing)
        return "Nothing was planned; please restate the request. " + "; ".join(parts) + "."

    def reading(self) -> dict[str, dict[str, Any]]:
        """field -> {value, words, start, end}: what the approver sees as "from your words"."""
        return {
            name: {"value": getattr(self, name), "words": span.text, "start": span.start, "end": span.end}
            for name, span in self.spans.items()
            if name in STATED_FIELDS or name == "max_instance_count"
        }


def describe_reading(reading: dict[str, dict[str, Any]]) -> list[str]:
    """One line per phrase: "two g5.xlarge -> instance_count 2, instance_type ml.g5.xlarge". A field read from
    words inside a wider phrase is shown with that phrase."""
    spans = sorted({(r.get("start", 0), r.get("end", 0), str(r.get("words", ""))) for r in reading.values()}, key=lambda s: (s[0], -s[1]))
    phrases: dict[tuple[int, int, str], list[str]] = {}
    for name, item in sorted(reading.items(), key=lambda kv: (kv[1].get("start", 0), kv[1].get("end", 0))):
        start, end = item.get("start", 0), item.get("end", 0)
        home = next((s for s in spans if s[0] <= start and end <= s[1]), (start, end, str(item.get("words", ""))))
        phrases.setdefault(home, []).append(f"{name} {item.get('value')}")
    return [f"{words} -> {', '.join(fields)}" for (_, _, words), fields in sorted(phrases.items())]
