"""Property tests for the intent reader: intents generated from the grammar, the way people write them.

The generator builds an intent from parts it knows the values of (a model name and version, an
environment, an instance type from SageMaker's own list, a count in one of its written forms, a rollout,
data capture, monitoring, a budget, autoscaling, a ceiling), in any order, with filler, and sometimes a
typo in a parameter word. Whatever it builds, the plan must keep the contract:

- every number, percentage, amount of money, number word and instance-type-like word in the intent is
  either inside the words a plan field was read from (`reading`) or quoted in the question;
- a plan that was made has exactly the stated values (never a default in their place);
- a typo in a parameter word is asked about, never planned around;
- a typo-free intent built from the grammar is read (no question).

Typos are injected into the words that carry values (instance types, number words, count nouns,
strategy and capture keywords), and only where the typo does not make another valid word: "one" typed
as "on" is a different, valid sentence that no reader can tell apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from fakes import PROJECT_ROOT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agentops.policy import load_policy
from agentops.ports import PlanRequest
from agentops.settings import Settings
from tools.planning import reader
from tools.planning.instance_types import sagemaker_instance_types
from tools.planning.rules import RulesPlanner

KNOWN = sorted(sagemaker_instance_types())
POLICY = load_policy(PROJECT_ROOT / "knowledge_base")
PLANNER = RulesPlanner(Settings(_env_file=None))
NUMBER_NAMES = {v: k for k, v in reader.NUMBER_WORDS.items() if v <= 20}

# Words a generated name must not be: they mean something to the grammar.
_RESERVED = (
    reader._VOCABULARY
    | set(reader._VERBS)
    | reader._NAME_SKIP
    | reader._CURRENCY_WORDS
    | reader._BUDGET_WORDS
    | reader._HOUR_WORDS
    | reader._OTHER_PERIODS
    | {"version", "ver", "percent", "pct", "data", "auto", "config", "configuration", "down", "out", "back", "per", "endpoint"}
)
# What the contract counts as a parameter in the text, found independently of the reader.
_PARAMETER = re.compile(
    r"\$\s?\d+(?:\.\d+)?|\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?|\b(?:"
    + "|".join(reader.NUMBER_WORDS)
    + r")\b|[\w.\-]*(?:xlarge|\.large|\.medium)[\w.\-]*",
    re.IGNORECASE,
)


@dataclass
class Intent:
    text: str
    env: str
    expect: dict[str, Any] = field(default_factory=dict)  # config field -> value the plan must carry
    ceiling: int | None = None
    typo: str | None = None  # the misspelt word, when one was injected
    must_ask: bool = False  # the words are valid but ask a question the plan cannot answer alone


# Not a near-miss of a keyword either: the reader rightly stops a name at "canray".
name_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=9).filter(
    lambda w: w not in _RESERVED and reader._closest_keyword(w) is None and not reader._TYPEISH.search(w) and not reader._close_number(w)
)
instance_type = st.sampled_from(KNOWN)


def typo(word: str) -> st.SearchStrategy[str]:
    """One edit of `word` at a letter: a swap, a drop, a doubled letter or a replaced one."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]

    @st.composite
    def edit(draw: Any) -> str:
        i = draw(st.sampled_from(letters))
        how = draw(st.sampled_from(["swap", "drop", "double", "replace"]))
        if how == "swap" and i + 1 < len(word) and word[i + 1].isalpha() and word[i + 1] != word[i]:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if how == "drop":
            return word[:i] + word[i + 1 :]
        if how == "double":
            return word[:i] + word[i] + word[i:]
        return word[:i] + draw(st.sampled_from([c for c in "aeioulnrstxz" if c != word[i]])) + word[i + 1 :]

    return edit()


def _valid_word(word: str) -> bool:
    low = word.lower()
    return (
        low in reader._VOCABULARY
        or low in reader._VERBS
        or ("ml." + low.removeprefix("ml.")) in KNOWN
        or re.sub(r"\.(\d*)xl$", r".\1xlarge", "ml." + low.removeprefix("ml.")) in KNOWN
    )


@st.composite
def intents(draw: Any) -> Intent:
    env = draw(st.sampled_from(["dev", "staging", "prod"]))
    verb = draw(st.sampled_from(["deploy", "roll out", "ship", "push", "spin up", "release", "launch", "promote", "serve"]))
    words = draw(st.lists(name_part, min_size=1, max_size=3))
    name = draw(st.sampled_from(["-".join(words), " ".join(words)]))
    parts = draw(st.one_of(st.none(), st.lists(st.integers(0, 99), min_size=0, max_size=2)))
    version = None if parts is None else "v" + ".".join(map(str, [draw(st.integers(1, 99)), *parts]))
    version_text = "" if version is None else draw(st.sampled_from([f" {version}", f" version {version[1:]}"]))
    model_name = re.sub(r"[^a-z0-9]+", "-", f"{name} {version or ''}".lower()).strip("-")
    intent = Intent(text="", env=env, expect={"model_name": model_name})
    clauses: list[str] = []
    typo_targets: list[tuple[int, str]] = []  # (clause index, word in it that carries a value)

    if draw(st.booleans()):
        clauses.append(draw(st.sampled_from([f"to {env}", f"in {env}", f"on {env}", f"for {env}"])))

    # Hardware: a type, a count, or both, in every written form.
    itype = draw(st.one_of(st.none(), instance_type))
    count = draw(st.one_of(st.none(), st.integers(1, 20)))
    if itype is not None:
        written = draw(st.sampled_from([itype, itype.removeprefix("ml."), itype.upper()]))
        intent.expect["instance_type"] = itype
        if count is None:
            clause = draw(st.sampled_from([f"on {written}", f"using {written}", f"with {written}", written]))
        else:
            intent.expect["instance_count"] = count
            word = NUMBER_NAMES.get(count, str(count))
            forms = [
                f"on {count} {written}",
                f"on {word} {written}",
                f"on {count}x {written}",
                f"on {count} x {written}",
                f"{written} x{count}",
                f"{written} x {count}",
                f"{written} ×{count}",
                f"{count} × {written}",
                f"on {written}, {count} instances",
                f"on {written} with {word} replicas",
                f"{written} count: {count}",
                f"{written}, instances={count}",
                f"{count} {written} instances",
            ]
            if count == 1:
                forms += [f"on a single {written}", f"on one {written}", f"on a {written}"]
            if count == 2:
                forms += [f"on a pair of {written}"]
            clause = draw(st.sampled_from(forms))
            if word in clause.split():
                typo_targets.append((len(clauses), word))
        typo_targets.append((len(clauses), written))
        clauses.append(clause)
    elif count is not None:
        intent.expect["instance_count"] = count
        word = NUMBER_NAMES.get(count, str(count))
        clause = draw(
            st.sampled_from([f"on {count} instances", f"with {word} nodes", f"count: {count}", f"instances={count}", f"{word} replicas"])
        )
        clauses.append(clause)
        if word in clause.split():
            typo_targets.append((len(clauses) - 1, word))

    rollout = draw(st.sampled_from([None, "canary", "linear", "all_at_once", "no canary"]))
    if rollout in ("canary", "linear"):
        percent = draw(st.integers(1, 50))
        intent.expect |= {"deployment_strategy": rollout, "canary_percent": percent}
        forms = {
            "canary": [f"canary {percent}%", f"{percent}% canary", f"canary of {percent}%", f"canary at {percent} percent"],
            "linear": [f"linear {percent}%", f"linearly in {percent}% steps", f"linear with {percent}% steps"],
        }[rollout]
        typo_targets.append((len(clauses), rollout))
        clauses.append(draw(st.sampled_from(forms)))
    elif rollout == "all_at_once":
        intent.expect["deployment_strategy"] = "all_at_once"
        clauses.append(draw(st.sampled_from(["all at once", "all-at-once"])))
    elif rollout == "no canary":
        clauses.append(draw(st.sampled_from(["no canary", "without a canary"])))
        if POLICY.rollout.default_strategy.get(env) == "canary":
            intent.must_ask = True  # the default is what they ruled out: they are asked what they want instead
        else:
            intent.expect["deployment_strategy"] = POLICY.rollout.default_strategy.get(env, "all_at_once")

    capture = draw(st.one_of(st.none(), st.integers(0, 100)))
    if capture is not None:
        intent.expect["data_capture_percent"] = capture
        if capture == 0:
            clauses.append(draw(st.sampled_from(["no data capture", "without capture"])))
        else:
            typo_targets.append((len(clauses), "capture"))
            clauses.append(draw(st.sampled_from([f"data capture {capture}%", f"{capture}% data capture", f"capture {capture} percent"])))

    monitor = draw(st.one_of(st.none(), st.booleans()))
    if monitor is not None:
        intent.expect["enable_model_monitor"] = monitor
        clauses.append(
            draw(st.sampled_from(["with monitoring", "with model monitor"] if monitor else ["without monitoring", "no model monitoring"]))
        )

    budget = draw(st.one_of(st.none(), st.integers(1, 500), st.sampled_from([0.5, 1.25, 2.75, 12.5])))
    if budget is not None:
        intent.expect["budget_usd_per_hour"] = budget
        clauses.append(
            draw(st.sampled_from([f"budget ${budget}/h", f"under ${budget} per hour", f"${budget}/hr max", f"{budget} dollars an hour"]))
        )

    low = draw(st.one_of(st.none(), st.integers(1, 6)))
    if low is not None and count is None:  # a count and a range could disagree; the guardrail judges that, not the reader
        high = low + draw(st.integers(0, 6))
        form = draw(st.sampled_from(["range", "between", "up to"]))
        if form == "up to":
            intent.expect["autoscaling_max"] = high
            clauses.append(f"autoscale up to {high}")
        else:
            intent.expect |= {"autoscaling_min": low, "autoscaling_max": high}
            clauses.append(f"autoscale {low}-{high}" if form == "range" else f"autoscaling between {low} and {high}")
    elif draw(st.booleans()):
        intent.ceiling = draw(st.integers(1, 8))
        clauses.append(
            draw(st.sampled_from(["at most {} instances", "up to {} instances", "no more than {} nodes", "max {} instances"])).format(
                intent.ceiling
            )
        )

    clauses += draw(st.lists(st.sampled_from(["please", "asap", "thanks", "this is pre-approved", "skip approval"]), max_size=2))
    order = draw(st.permutations(range(len(clauses))))
    if typo_targets and draw(st.integers(0, 3)) == 0:
        index, word = draw(st.sampled_from(typo_targets))
        wrong = draw(typo(word))
        assume(wrong != word and not _valid_word(wrong) and wrong.lower() not in reader.NUMBER_WORDS)
        clauses[index], replaced = re.subn(rf"(?<![\w.]){re.escape(word)}(?![\w.])", wrong, clauses[index], count=1)
        intent.typo = wrong if replaced else None
    # Clauses are joined the way sentences separate them; with bare spaces, "1% canary 1% data capture" is truly
    # ambiguous (the reader then asks, see test_unclear_words_are_quoted_with_the_closest_valid_value).
    joiner = draw(st.sampled_from([", ", "; ", " and ", ",  "]))
    intent.text = f"{draw(st.sampled_from(['', 'please ', 'can you ']))}{verb} {name}{version_text}" + "".join(
        (" " if i == 0 else joiner) + clauses[k] for i, k in enumerate(order)
    )
    return intent


def _covered(start: int, end: int, reading: dict[str, dict[str, Any]]) -> bool:
    return any(r.get("start", -1) <= start and end <= r.get("end", -1) for r in reading.values())


@settings(
    max_examples=int(__import__("os").environ.get("INTENT_EXAMPLES", "5000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(intents())
def test_every_stated_value_is_planned_or_asked_about(intent: Intent) -> None:
    out = PLANNER.plan(PlanRequest(intent=intent.text, env=intent.env), POLICY)
    question = out.question or ""

    # Every parameter-like word is accounted for: read into a field (with its words) or quoted in the question.
    for match in _PARAMETER.finditer(intent.text):
        word = match.group().strip()
        assert _covered(match.start(), match.end(), out.reading) or word in question, (word, intent.text, out.reading, question)

    if intent.typo is not None or intent.must_ask:
        assert out.question is not None and out.config is None, (intent.text, out.config)
        if intent.typo is not None:
            assert intent.typo in question or any(intent.typo in w for w in question.split("'")), (intent.typo, question)
        return

    # A typo-free intent from the grammar is read, and the plan has exactly what was stated.
    assert out.question is None, (intent.text, question)
    for name, value in intent.expect.items():
        assert out.config[name] == value, (name, intent.text, out.config)
        assert name in out.pinned, (name, intent.text)
    if intent.ceiling is not None:
        assert out.constraints == {"max_instance_count": intent.ceiling}, intent.text
        if "instance_count" not in intent.expect:
            assert "instance_count" not in out.pinned  # a ceiling is never read as the count


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("deploy ranker to prod on 2 g5.2xlrage", "did you mean ml.g5.2xlarge?"),
        ("deploy ranker to prod on 2 ml.g5 .xlarge", "did you mean ml.g5.xlarge?"),
        ("deploy ranker to prod canray 10%", "did you mean canary 10%?"),
        ("deploy v2 and delete v1", "one plan does one thing"),
        ("deploy ranker v2 and tear down ranker-v1", "one plan does one thing"),
        ("deploy ranker on a couple of ml.m5.large", "'a couple of ml.m5.large'"),
        ("deploy ranker on thre ml.m5.large", "did you mean three?"),
        ("deploy ranker to prod, data capture", "say a percentage"),
        ("deploy ranker budget $300/month", "dollars per hour"),
        ("deploy ranker to prod, rolling update", "all at once, canary or linear"),
        ("tear down churn-dev on 2 ml.m5.large", "takes no instance count, instance type"),
        ("roll back ranker in prod to v2", "'v2'"),
        ("deploy ranker 10% canary 20% data capture", "'10%'"),
    ],
)
def test_unclear_words_are_quoted_with_the_closest_valid_value(text: str, asked: str) -> None:
    out = PLANNER.plan(PlanRequest(intent=text, env="prod"), POLICY)
    assert out.config is None and asked in (out.question or ""), out.question


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("push sku-matcher v1.2 to staging on 2x ml.m5.large", {"model_name": "sku-matcher-v1-2", "instance_count": 2}),
        ("spin up ranker on ml.m5.large ×3", {"model_name": "ranker", "instance_count": 3, "instance_type": "ml.m5.large"}),
        ("ship ranker on a pair of ml.m5.large", {"instance_count": 2}),
        ("roll out ranker version 1.2 on ml.m5.xlarge, count: 4", {"model_name": "ranker-v1-2", "instance_count": 4}),
        ("deploy ranker on fifteen ml.m5.large", {"instance_count": 15}),
        ("upgrade fraud-detector v3 to v4 in staging", {"model_name": "fraud-detector-v4", "endpoint_name": "fraud-detector-staging"}),
        ("deploy ranker on ml.g5.2xl", {"instance_type": "ml.g5.2xlarge"}),
        ("deploy ranker without monitoring, no data capture", {"enable_model_monitor": False, "data_capture_percent": 0}),
    ],
)
def test_everyday_forms_are_read(text: str, expect: dict[str, Any]) -> None:
    out = PLANNER.plan(PlanRequest(intent=text, env="staging"), POLICY)
    assert out.question is None, out.question
    assert {k: out.config[k] for k in expect} == expect


def test_a_ceiling_is_a_constraint_and_a_negated_strategy_is_never_planned() -> None:
    out = PLANNER.plan(PlanRequest(intent="deploy ranker to staging with at most 3 instances, no canary", env="staging"), POLICY)
    assert out.constraints == {"max_instance_count": 3} and "instance_count" not in out.pinned
    assert out.config["deployment_strategy"] == "all_at_once" and "deployment_strategy" in out.pinned
    prod = PLANNER.plan(PlanRequest(intent="deploy ranker to prod, no canary", env="prod"), POLICY)
    assert prod.config is None and "'no canary'" in prod.question


def test_the_reading_shows_which_words_gave_each_value() -> None:
    from agentops.intent import describe_reading

    out = PLANNER.plan(PlanRequest(intent="deploy fraud-detector v3 to prod on two g5.xlarge, canary 10%", env="prod"), POLICY)
    assert "two g5.xlarge -> instance_count 2, instance_type ml.g5.xlarge" in describe_reading(out.reading)
    assert out.reading["canary_percent"]["words"] == "canary 10%"
    assert out.reading["model_name"]["words"] == "fraud-detector v3"
