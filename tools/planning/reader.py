"""The intent reader: a tokenizer and a small phrase grammar that turn a requester's words into a
`ParsedIntent` (agentops/intent.py), accounting for every word.

Each phrase the grammar knows ("two g5.xlarge", "canary 10%", "at most 3 instances", "budget $2/h")
marks the tokens it used and records the span they cover. What no phrase used is either filler
("please", "this is pre-approved") or, when it looks like a deployment parameter (a number, a
percentage, an amount of money, an instance-type-like word, a strategy or count word, a version, a
second action verb), *unclear*: the plan then asks instead of guessing. Nothing here fills a default.

Readings chosen for idioms (documented so they are not guesses): "a"/"an"/"single" before a type or
"instance" is one; "a pair of" is two; "a couple of", "a few", "several" and "a dozen-ish" are asked
about (people use "a couple" for two and for "a few"); "Nx", "xN", "×N", "N x" and "N *" around a type
are a count; "count: N", "instances=N" are a count; "max/at most/up to/no more than N instances" is a
ceiling (max_instance_count), never a count; "xl" after a size is "xlarge" ("g5.2xl" = ml.g5.2xlarge);
a type without "ml." is the SageMaker type of that name. Anything else type-like is asked about with
the closest SageMaker type.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agentops.intent import ParsedIntent, Span, Unclear
from agentops.schemas import MAX_INSTANCES, MAX_USD_PER_HOUR
from tools.planning.instance_types import closest_type, sagemaker_instance_types

_TOKEN = re.compile(
    r"(?P<url>(?:s3|https?|file|gs)://[^\s,;]+)"
    r"|(?P<image>\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[^\s,;]+)"
    r"|(?P<money>\$\s?\d+(?:,\d{3})*(?:\.\d+)?)"
    r"|(?P<percent>\d+(?:\.\d+)?\s?%)"
    r"|(?P<signed>[-−]\$?\d+(?:\.\d+)?%?)"  # a negative number: kept whole so it is asked about, never read without its sign
    r"|(?P<word>[^\W_]+(?:[._\-'’][^\W_]+)*)"
    r"|(?P<punct>\S)",
    re.IGNORECASE,
)

NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
}
# Words for "how many" that name no exact number: asked about, never read as one.
VAGUE_COUNTS = {"couple", "few", "several", "some", "many", "multiple", "dozen", "handful", "bunch", "lots"}
_INSTANCE_NOUNS = {"instance", "instances", "node", "nodes", "replica", "replicas", "machine", "machines", "host", "hosts"}
_INSTANCE_NOUNS |= {"server", "servers", "copies", "copy", "box", "boxes", "vm", "vms"}
_COUNT_LABELS = {"count", "instance_count", "instance-count", "instances", "replicas", "nodes", "instance_counts", "num_instances"}
_SIZES = r"(?:nano|micro|small|medium|large|xlarge|\d+xlarge|metal|xl|\d+xl)"
_FAMILY = r"[a-z]+\d[a-z0-9]*(?:-[a-z0-9]+)?"
_TYPE_SHAPE = re.compile(rf"^(?:ml\.)?{_FAMILY}\.[a-z0-9]*[a-z][a-z0-9]*$")
_SIZE_WORD = re.compile(rf"^{_SIZES}$")
_FAMILY_WORD = re.compile(rf"^(?:ml\.)?{_FAMILY}$")
# A word that reads like an instance type even misspelt ("lm.c4.2xlarge", "g5.xlrage"): never part of a name.
_TYPEISH = re.compile(
    r"(?:^|[.\d])xl(?:arge)?$|xlarg|xlrage|xlage|\dxl|\.(?:large|medium|small|micro|nano|metal)$|^ml\.|^ml\d|^[a-z]{1,3}\d[a-z]*\.[a-z0-9]+$"
)
_VERSION = re.compile(r"^v\d+(?:\.\d+)*$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_MULT = re.compile(r"^(?:(\d+)x|x(\d+))$")

ENVIRONMENTS = {"dev": "dev", "development": "dev", "staging": "staging", "stage": "staging", "prod": "prod", "production": "prod"}

# Action verbs: one or two words each; the first word is looked up, the rest must follow.
_VERBS: dict[str, list[tuple[tuple[str, ...], str]]] = {}
for _phrase, _action in [
    ("deploy", "deploy"),
    ("redeploy", "deploy"),
    ("roll out", "deploy"),
    ("rollout", "deploy"),
    ("ship", "deploy"),
    ("release", "deploy"),
    ("promote", "deploy"),
    ("launch", "deploy"),
    ("upgrade", "deploy"),
    ("update", "deploy"),
    ("serve", "deploy"),
    ("push", "deploy"),
    ("publish", "deploy"),
    ("host", "deploy"),
    ("spin up", "deploy"),
    ("stand up", "deploy"),
    ("bring up", "deploy"),
    ("put", "deploy"),
    ("roll back", "rollback"),
    ("rollback", "rollback"),
    ("roll-back", "rollback"),
    ("revert", "rollback"),
    ("tear down", "teardown"),
    ("teardown", "teardown"),
    ("tear-down", "teardown"),
    ("decommission", "teardown"),
    ("delete", "teardown"),
    ("destroy", "teardown"),
    ("remove", "teardown"),
    ("retire", "teardown"),
    ("take down", "teardown"),
    ("shut down", "teardown"),
    ("spin down", "teardown"),
]:
    _words = tuple(_phrase.split())
    _VERBS.setdefault(_words[0], []).append((_words, _action))

_NEGATIONS = {"no", "not", "without", "skip", "disable", "don't", "dont", "never", "w/o", "sans"}
_STRATEGY_WORDS = {"canary": "canary", "linear": "linear", "linearly": "linear"}
_UNSUPPORTED_STRATEGIES = {"rolling", "shadow", "blue-green", "bluegreen", "blue", "a/b", "ab-test", "gradual", "gradually", "staged"}
_MONITOR_WORDS = {"monitor", "monitoring", "monitored", "model-monitor", "modelmonitor"}
_CAPTURE_WORDS = {"capture", "capturing", "data-capture"}
_AUTOSCALE_WORDS = {"autoscale", "autoscaling", "auto-scale", "auto-scaling", "autoscaled", "scale", "scaling", "scales"}
_BUDGET_WORDS = {"budget", "under", "below", "max", "maximum", "cap", "capped", "limit", "within", "most", "than", "spend", "cost"}
_HOUR_WORDS = {"h", "hr", "hrs", "hour", "hourly"}
_OTHER_PERIODS = {"day", "daily", "week", "weekly", "month", "monthly", "year", "yearly", "mo", "d", "wk", "yr", "min", "minute"}
_CURRENCY_WORDS = {"dollar", "dollars", "usd", "bucks"}
# "at most N instances": a ceiling on the count (longest phrases first).
_CEILINGS = sorted(
    [("at", "most"), ("up", "to"), ("no", "more", "than"), ("not", "more", "than"), ("max",), ("maximum",), ("upto",)]
    + [("max_instances",), ("max-instances",), ("at", "max"), ("maximum", "of"), ("max", "of"), ("no", "more", "then")]
    + [("a", "maximum", "of"), ("not", "over"), ("never", "more", "than")],
    key=len,
    reverse=True,
)
_CEILINGS_BY_FIRST: dict[str, list[tuple[str, ...]]] = {}
for _words in _CEILINGS:
    _CEILINGS_BY_FIRST.setdefault(_words[0], []).append(_words)
# Words a phrase may skip between its keyword and its number ("canary of 10%", "capture at 20%").
_LINKS = {
    "of",
    "at",
    "with",
    "to",
    "in",
    "a",
    "an",
    "the",
    "traffic",
    "shift",
    "shifting",
    "steps",
    "step",
    "size",
    "first",
    "starting",
    ":",
    "=",
}
_NAME_SKIP = {"the", "a", "an", "new", "my", "our", "model", "latest", "service"}
_SUBJECT_SKIP = {"the", "endpoint", "named", "called", "model", "service", "of", "my", "our"}
# Words that end a name: structure, not part of any name.
_STOP = {"to", "on", "with", "using", "in", "into", "at", "for", "across", "onto", "via", "behind", "as", "and", "then", "from"}
_STOP |= {"but", "or", "please", "endpoint", "named", "called", "env", "environment", "instance", "type", "budget", "under", "x", "by"}
_STOP |= {"asap", "thanks", "thank", "now", "today", "tonight", "quickly", "immediately", "urgently", "again", "this", "that", "data"}
_STOP |= {
    "model",
    "models",
    "version",
    "ver",
    "so",
    "because",
    "if",
    "when",
    "after",
    "before",
    "once",
    "it",
    "its",
    "we",
    "i",
    "you",
    "they",
    "is",
    "are",
    "be",
    "should",
}
# Every word the grammar has a use for: never swallowed into a model name.
_VOCABULARY = (
    set(NUMBER_WORDS)
    | VAGUE_COUNTS
    | _INSTANCE_NOUNS
    | _COUNT_LABELS
    | set(ENVIRONMENTS)
    | _NEGATIONS
    | set(_STRATEGY_WORDS)
    | _UNSUPPORTED_STRATEGIES
    | _MONITOR_WORDS
    | _CAPTURE_WORDS
    | _AUTOSCALE_WORDS
    | _STOP
    | {"single", "pair", "all", "once", "artifact", "image", "max", "maximum", "most", "up", "least", "upto"}
    | {"a", "an", "the", "of", "is", "it", "count", "percent", "new", "same", "dedicated", "gpu", "gpus", "cpu", "more", "less"}
)
# Words whose misspellings matter: a typo of one of these next to a number loses a parameter.
_KEYWORDS = sorted(
    {"canary", "linear", "instances", "instance", "replicas", "nodes", "autoscale", "autoscaling", "capture", "monitoring", "budget"}
    | {"count", "maximum", "percent", "xlarge", "large", "hour"}
)


@dataclass(slots=True)
class Token:
    text: str
    low: str
    start: int
    end: int
    kind: str  # url, image, money, percent, number, range, mult, version, type, typelike, word, punct
    value: Any = None


class _Reader:
    def __init__(self, text: str, known: frozenset[str]):
        self.text = text
        self.known = known
        self.tokens = _tokenize(text, known)
        self.used = [False] * len(self.tokens)
        self.intent = ParsedIntent(text=text)
        self.asked: list[Unclear] = []

    # --- helpers ----------------------------------------------------------------------------------

    def low(self, i: int) -> str:
        return self.tokens[i].low if 0 <= i < len(self.tokens) else ""

    def kind(self, i: int) -> str:
        return self.tokens[i].kind if 0 <= i < len(self.tokens) else ""

    def free(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and not self.used[i]

    def span(self, i: int, j: int) -> Span:
        start, end = self.tokens[i].start, self.tokens[j].end
        return Span(start=start, end=end, text=self.text[start:end])

    def mark(self, i: int, j: int) -> None:
        for k in range(i, j + 1):
            self.used[k] = True

    def take(self, field: str, value: Any, i: int, j: int) -> None:
        """Field `field` is `value`, read from tokens i..j. A second, different value for it is unclear, and so
        is a number no deployment could mean (beyond the domain's ceilings, or not finite)."""
        limit = _CEILINGS.get(field)
        if limit is not None and isinstance(value, int | float) and not (0 < value <= limit):
            self.ask(i, j, f"{field.replace('_', ' ')} must be more than 0 and at most {limit:g}: no deployment could mean this")
            return
        self.mark(i, j)
        current = getattr(self.intent, field, None) if field in type(self.intent).model_fields else None
        earlier = self.intent.spans.get(field)
        if earlier is not None and current != value:
            self.ask(i, j, f"the intent states {field.replace('_', ' ')} twice, as '{earlier.text}' and as this; which one?")
            return
        if earlier is None:
            if field in type(self.intent).model_fields:
                setattr(self.intent, field, value)
            self.intent.spans[field] = self.span(i, j)

    def ask(self, i: int, j: int, reason: str, suggestion: str | None = None) -> None:
        self.mark(i, j)
        span = self.span(i, j)
        self.asked.append(Unclear(words=span.text, start=span.start, end=span.end, reason=reason, suggestion=suggestion))

    def count_at(self, i: int) -> tuple[int, int] | None:
        """(count, last token index) for an exact count starting at token i: "2", "two", "a", "a single", "a pair of"."""
        low, kind = self.low(i), self.kind(i)
        if kind == "number" and isinstance(self.tokens[i].value, int):
            return self.tokens[i].value, i
        if low in ("a", "an", "one") and self.low(i + 1) == "single":
            return 1, i + 1
        if low == "a" and self.low(i + 1) == "pair" and self.low(i + 2) == "of":
            return 2, i + 2
        if low in ("a", "an", "single"):
            return 1, i
        return None

    def count_slot(self, i: int) -> bool:
        """Token i is what a count stands before: an instance type (or type-like word) or an instance noun."""
        return self.kind(i) in ("type", "typelike") or self.low(i) in _INSTANCE_NOUNS - {"instance"}

    def vague_at(self, i: int) -> int | None:
        """Last token index of a vague count ("a couple of", "a few", "several") starting at i."""
        j = i + 1 if self.low(i) in ("a", "an") else i
        if self.low(j) in VAGUE_COUNTS:
            return j + 1 if self.low(j + 1) == "of" else j
        return None

    # --- the grammar ----------------------------------------------------------------------------

    def read(self) -> ParsedIntent:
        self.artifacts()
        self.actions()
        self.budget()  # before counts: "$2/h max 3 ml.m5.large" caps the budget, not the count
        self.autoscaling()  # before counts: "autoscale up to 2 ml.m5.large" bounds the scaling, not the count
        self.types()
        self.ceilings()
        self.counts()
        self.rollout()
        self.monitoring()
        self.environments()
        self.endpoint()
        if self.intent.action in ("rollback", "teardown"):
            self.subject()
        else:
            self.model()
        self.leftovers()
        self.intent.unused = [self.span(i, i) for i, t in enumerate(self.tokens) if not self.used[i] and t.kind != "punct"]
        self.intent.unclear = sorted(self.asked, key=lambda u: u.start)
        return self.intent

    def artifacts(self) -> None:
        for i, token in enumerate(self.tokens):
            if token.kind == "url":
                self.take("model_data_url", token.text, i, i)
                if self.low(i - 1) in ("artifact", "artifacts", "model_data_url", "weights"):
                    self.mark(i - 1, i - 1)
            elif token.kind == "image":
                self.take("image_uri", token.text, i, i)
                if self.low(i - 1) in ("image", "container", "image_uri"):
                    self.mark(i - 1, i - 1)

    def actions(self) -> None:
        found: list[tuple[int, int, str]] = []
        for i, token in enumerate(self.tokens):
            for words, action in _VERBS.get(token.low, ()):
                if all(self.low(i + k) == w for k, w in enumerate(words)):
                    last = i + len(words) - 1
                    if action == "rollback" and (
                        self.low(last + 1) in ("alarm", "alarms", "on", "if", "when") or self.low(i - 1) in ("auto", "with")
                    ):
                        continue  # "with rollback alarms", "roll back on failure": a feature, not the request
                    if token.low == "put" and not found:
                        continue  # "put" alone is too loose to be the request's verb ("put it on two g5")
                    found.append((i, last, action))
                    break
        if not found:
            return
        first, last, action = found[0]
        self.take("action", action, first, last)
        self.verb_end = last
        for i, j, other in found[1:]:
            k = j + 1 + (self.low(j + 1) in ("the", "model"))
            if other == action and not (self.name_at(k) or self.kind(k) == "version"):
                self.mark(i, j)  # "deploy x ... and ship it": the same request said twice
                continue
            self.ask(i, j, f"this asks for a second action ({other}) besides '{self.span(first, last).text}'; one plan does one thing")

    def types(self) -> None:
        tokens = self.tokens
        for i, token in enumerate(tokens):
            if not self.free(i):
                continue
            if token.kind == "type":
                self.take("instance_type", token.value, i, i)
                self.count_around_type(i)
            elif token.kind == "typelike":
                self.ask(i, i, "SageMaker has no instance type by this name", closest_type(token.low, self.known))
                self.count_around_type(i)  # the count stated with it is still read (and shown)
            elif _FAMILY_WORD.match(token.low) and token.low.removeprefix("ml.") in _families(self.known) and self.free(i + 1):
                # Odd spacing: "g5 .xlarge", "g5 2xlarge": asked, with the type it resembles.
                j = i + 1
                if self.low(j) == "." and self.free(j + 1):
                    j += 1
                if _SIZE_WORD.match(self.low(j).lstrip(".")):
                    self.ask(i, j, "this is not written as an instance type", closest_type(self.span(i, j).text, self.known))
            elif token.low == "ml" and self.low(i + 1) == "." and self.kind(i + 2) in ("type", "typelike", "word"):
                guess = closest_type(self.span(i, i + 2).text, self.known)
                if guess or self.kind(i + 2) != "word":
                    self.ask(i, i + 2, "this is not written as an instance type", guess)

    def count_around_type(self, t: int) -> None:
        """Counts next to a type: "2 g5.xlarge", "two x g5.xlarge", "2x g5.xlarge", "g5.xlarge x2", "g5.xlarge ×3"."""
        i = t - 1
        if self.low(i) in ("x", "×", "*") and self.free(i):
            i -= 1
        if self.free(i) and self.kind(i) == "mult":
            self.take("instance_count", self.tokens[i].value, i, t)
        else:
            start = self.start_of_count_ending_at(i)
            if start is not None:
                count, _ = self.count_at(start) or (None, None)
                ceiling = self.ceiling_ending_at(start - 1)
                if ceiling is not None:  # "at most 3 g5.xlarge": a ceiling, never the count
                    self.take("max_instance_count", count, ceiling, t - 1)
                else:
                    self.take("instance_count", count, start, t)
            elif (vague := self.vague_start_ending_at(i)) is not None:
                self.ask(vague, t, "how many instances is that? say a number")
        j = t + 1
        if self.free(j) and self.kind(j) == "mult":
            self.take("instance_count", self.tokens[j].value, t, j)
        elif self.low(j) in ("x", "×", "*") and self.kind(j + 1) == "number" and isinstance(self.tokens[j + 1].value, int):
            self.take("instance_count", self.tokens[j + 1].value, t, j + 1)
        if self.low(j) in _INSTANCE_NOUNS and self.low(j) != "x":
            self.mark(j, j)  # "2 ml.m5.xlarge instances"

    def ceiling_ending_at(self, i: int) -> int | None:
        """Start of "at most" / "up to" / "max" / "no more than" ending at token i, if free."""
        for words in _CEILINGS:
            start = i - len(words) + 1
            if start >= 0 and all(self.low(start + k) == w and self.free(start + k) for k, w in enumerate(words)):
                return start
        return None

    def start_of_count_ending_at(self, i: int) -> int | None:
        for start in (i - 2, i - 1, i):  # the longest phrase: "a single", "a pair of"
            if self.low(start - 1) in ("version", "ver"):
                continue  # "fraud-detector version 2 ml.m5.large": the 2 is the model's version
            if start >= 0 and all(self.free(k) for k in range(start, i + 1)):
                found = self.count_at(start)
                if found and found[1] == i:
                    return start
        return None

    def vague_start_ending_at(self, i: int) -> int | None:
        for start in (i - 2, i - 1, i):
            if start >= 0 and self.vague_at(start) == i and all(self.free(k) for k in range(start, i + 1)):
                return start
        return None

    def number_after(self, i: int, links: set[str] = _LINKS) -> int | None:
        """Index of the first integer token after i, skipping only linking words."""
        j = i + 1
        while j < len(self.tokens) and j <= i + 3:
            if self.kind(j) == "number" and isinstance(self.tokens[j].value, int) and self.free(j):
                return j
            if self.low(j) not in links:
                return None
            j += 1
        return None

    def autoscaling(self) -> None:
        for i, token in enumerate(self.tokens):
            if token.low not in _AUTOSCALE_WORDS or not self.free(i):
                continue
            if self.low(i - 1) in _NEGATIONS:
                self.mark(i - 1, i)  # "no autoscaling": a fixed count, recorded once the count is known
                self.no_autoscaling = self.span(i - 1, i)
                continue
            j = i + 1
            while self.low(j) in ("out", "from", "between", "up", "to", ":", "=") and self.free(j):
                if self.low(j) == "to" and self.kind(j + 1) == "number":
                    break
                j += 1
            if self.kind(j) == "range" and self.free(j):
                low_, high = self.tokens[j].value
                last = j + 1 if self.low(j + 1) in _INSTANCE_NOUNS else j
                self.take_range(low_, high, i, last)
            elif self.kind(j) == "number" and self.low(j + 1) in ("-", "–", "to", "and") and self.kind(j + 2) == "number":
                last = j + 3 if self.low(j + 3) in _INSTANCE_NOUNS else j + 2
                self.take_range(self.tokens[j].value, self.tokens[j + 2].value, i, last)
            elif self.low(j) == "to" and self.kind(j + 1) == "number":
                last = j + 2 if self.low(j + 2) in _INSTANCE_NOUNS else j + 1
                self.take_int("autoscaling_max", j + 1, i, last)
            elif self.low(j) in ("min", "minimum") or self.low(j) in ("max", "maximum"):
                k = j
                while self.low(k) in ("min", "minimum", "max", "maximum"):
                    field = "autoscaling_min" if self.low(k) in ("min", "minimum") else "autoscaling_max"
                    n = self.number_after(k)
                    if n is None:
                        break
                    self.take_int(field, n, k, n)
                    k = n + 1 if self.low(n + 1) not in (",", "and") else n + 2
                self.mark(i, j - 1)

    def take_int(self, field: str, n: int, i: int, j: int) -> None:
        value = self.tokens[n].value
        if isinstance(value, int) and value >= 1:
            self.take(field, value, i, j)
        else:
            self.ask(i, j, f"{field.replace('_', ' ')} must be a whole number of at least 1")

    def take_range(self, low_: Any, high: Any, i: int, j: int) -> None:
        if not (isinstance(low_, int) and isinstance(high, int) and 1 <= low_ <= high):
            self.ask(i, j, "an autoscaling range goes from a smaller to a larger whole number")
            return
        self.take("autoscaling_min", low_, i, j)
        self.take("autoscaling_max", high, i, j)

    def ceilings(self) -> None:
        for i, token in enumerate(self.tokens):
            for words in _CEILINGS_BY_FIRST.get(token.low, ()):
                last = i + len(words) - 1
                if all(self.low(i + k) == w and self.free(i + k) for k, w in enumerate(words)):
                    j = last + 1
                    if self.low(j) in (":", "=", "of"):
                        j += 1
                    found = self.count_at(j)
                    noun = found and self.low(found[1] + 1) in _INSTANCE_NOUNS
                    if found and (noun or words[0].startswith("max_") or words[0].startswith("max-")):
                        end = found[1] + 1 if noun else found[1]
                        self.take("max_instance_count", found[0], i, end)
                    break

    def counts(self) -> None:
        for i in range(len(self.tokens)):
            if not self.free(i) or self.low(i - 1) in ("version", "ver"):
                continue
            low = self.low(i)
            # "2 instances", "two replicas", "a single instance", "a pair of nodes"
            found = self.count_at(i)
            if found and self.low(found[1] + 1) in _INSTANCE_NOUNS - {"x", "copy", "copies"} and self.free(found[1] + 1):
                if self.low(i) in ("a", "an") and self.low(found[1] + 1).endswith("s"):
                    continue  # "a instances" is no count
                self.take("instance_count", found[0], i, found[1] + 1)
                continue
            if (vague := self.vague_at(i)) is not None and self.low(vague + 1) in _INSTANCE_NOUNS:
                self.ask(i, vague + 1, "how many instances is that? say a number")
                continue
            # "count: 3", "instances=3", "instance count 3", "replicas of 4"
            label_end = i
            if low == "instance" and self.low(i + 1) in ("count", "counts"):
                label_end = i + 1
            elif low not in _COUNT_LABELS:
                continue
            j = label_end + 1
            if self.low(j) in (":", "=", "of", "is"):
                j += 1
            if self.kind(j) == "number" and self.free(j):
                self.take_int("instance_count", j, i, j)

    def rollout(self) -> None:
        for i, token in enumerate(self.tokens):
            if not self.free(i):
                continue
            strategy = _STRATEGY_WORDS.get(token.low)
            if token.low == "all" and self.low(i + 1) in ("at", "-") and "once" in (self.low(i + 2), self.low(i + 3)):
                strategy, last = "all_at_once", i + 2 if self.low(i + 2) == "once" else i + 3
            elif token.low in ("all-at-once", "all_at_once"):
                strategy, last = "all_at_once", i
            elif strategy is not None:
                last = i
            else:
                if token.low in _UNSUPPORTED_STRATEGIES or (token.low == "blue" and self.low(i + 2) == "green"):
                    end = i + 2 if token.low == "blue" and self.low(i + 2) == "green" else i
                    self.ask(i, end, "AgentOps rolls out all at once, canary or linear; which one?")
                continue
            negated = self.low(i - 1) in _NEGATIONS or (self.low(i - 2) in _NEGATIONS and self.low(i - 1) in ("a", "any", "the", "use"))
            if negated:
                start = i - 1 if self.low(i - 1) in _NEGATIONS else i - 2
                self.mark(start, last)
                self.intent.excluded_strategies.append(strategy)  # type: ignore[arg-type]
                self.intent.spans.setdefault("excluded_strategies", self.span(start, last))
                continue
            self.take("deployment_strategy", strategy, i, last)
            if strategy == "all_at_once":
                continue
            if (p := self.percent_near(i, last)) is not None:
                self.take_percent("canary_percent", p, min(i, p), max(last, p))
            if self.low(last + 1) in ("rollout", "deployment", "traffic", "shift", "release") and self.free(last + 1):
                self.mark(last + 1, last + 1)

    def percent_near(self, first: int, last: int) -> int | None:
        """A free percentage right after a keyword (skipping linking words) or right before it."""
        j = last + 1
        while j < len(self.tokens) and j <= last + 4:
            if self.kind(j) == "percent" and self.free(j):
                return j
            if self.low(j) not in _LINKS:
                break
            j += 1
        before = first - 1
        if self.low(before) in ("a", "traffic"):
            before -= 1
        if self.kind(before) == "percent" and self.free(before):
            return before
        return None

    def take_percent(self, field: str, p: int, i: int, j: int) -> None:
        value = self.tokens[p].value
        if isinstance(value, int) and 0 <= value <= 100:
            self.take(field, value, i, j)
        else:
            self.ask(i, j, f"{field.replace('_', ' ')} is a whole percentage from 0 to 100")

    def monitoring(self) -> None:
        for i, token in enumerate(self.tokens):
            if not self.free(i):
                continue
            negated = self.low(i - 1) in _NEGATIONS or (self.low(i - 2) in _NEGATIONS and self.low(i - 1) in ("data", "model", "any"))
            start = (i - 1 if self.low(i - 1) in _NEGATIONS else i - 2) if negated else i
            if token.low in _CAPTURE_WORDS:
                if self.low(i - 1) == "data" and not negated:
                    start = i - 1
                if negated:
                    self.take("data_capture_percent", 0, start, i)
                elif (p := self.percent_near(start, i)) is not None:
                    self.take_percent("data_capture_percent", p, min(start, p), max(i, p))
                else:
                    self.ask(start, i, "what share of requests should be captured? say a percentage")
            elif token.low in _MONITOR_WORDS:
                if self.low(i - 1) == "model" and not negated:
                    start = i - 1
                self.take("enable_model_monitor", not negated, start, i)
                if self.low(i + 1) in ("on", "enabled"):
                    self.mark(i + 1, i + 1)
        span = getattr(self, "no_autoscaling", None)
        if span is not None and self.intent.instance_count is not None:
            self.intent.autoscaling_min = self.intent.autoscaling_max = self.intent.instance_count
            self.intent.spans["autoscaling_min"] = self.intent.spans["autoscaling_max"] = span

    def budget(self) -> None:
        for i, token in enumerate(self.tokens):
            if not self.free(i) or token.kind != "money":
                continue
            j = i + 1
            period = None
            if self.low(j) in ("/", "per", "an", "a", "each", "every") or self.low(j) in _HOUR_WORDS | _OTHER_PERIODS:
                k = j + 1 if self.low(j) in ("/", "per", "an", "a", "each", "every") else j
                if self.low(k) in _HOUR_WORDS:
                    period, j = "hour", k
                elif self.low(k) in _OTHER_PERIODS:
                    period, j = "other", k
            start = i
            while (
                start - 1 >= 0
                and self.free(start - 1)
                and self.low(start - 1) in _BUDGET_WORDS | {"of", "at", "no", "more", "less", ":", "="}
            ):
                start -= 1
            budget_word = start < i
            if period == "other":
                self.ask(start, j, "budgets are dollars per hour; what is the hourly limit?")
            elif period == "hour" or budget_word:
                end = j if period else i
                if self.low(end + 1) in ("max", "maximum", "tops", "limit", "cap", "ceiling") and self.free(end + 1):
                    end += 1  # "$2/h max"
                self.take("budget_usd_per_hour", token.value, start, end)

    def environments(self) -> None:
        for i, token in enumerate(self.tokens):
            if self.free(i) and token.low in ENVIRONMENTS:
                self.mark(i, i)
                if ENVIRONMENTS[token.low] not in self.intent.environments:
                    self.intent.environments.append(ENVIRONMENTS[token.low])
                    self.intent.spans.setdefault("environments", self.span(i, i))
                if self.low(i + 1) in ("env", "environment"):
                    self.mark(i + 1, i + 1)

    def name_at(self, i: int) -> bool:
        token = self.tokens[i] if 0 <= i < len(self.tokens) else None
        return (
            token is not None
            and self.free(i)
            and token.kind == "word"
            and token.low not in _VOCABULARY
            and token.low not in _VERBS
            and not token.low.isdigit()
            and not _TYPEISH.search(token.low)
        )

    def endpoint(self) -> None:
        for i, token in enumerate(self.tokens):
            if token.low == "endpoint" and self.free(i):
                j = i + 1
                if self.low(j) in ("named", "called", ":", "="):
                    j += 1
                if self.name_at(j):
                    self.take("endpoint_name", _name(self.tokens[j].text), i, j)
            elif token.low == "for" and self.free(i):
                j = i + 1 + (self.low(i + 1) == "the")
                if self.name_at(j):
                    self.take("app", _name(self.tokens[j].text), i, j)
                    if self.low(j + 1) in ("app", "application", "service", "team"):
                        self.mark(j + 1, j + 1)
            elif (
                token.low in ("config", "configuration", "endpoint-config")
                and self.low(i - 1) in ("to", "endpoint", "the")
                and self.name_at(i + 1)
            ):
                start = i - 1 if self.low(i - 1) == "endpoint" else i
                self.take("target_endpoint_config", self.tokens[i + 1].text, start, i + 1)

    def subject(self) -> None:
        """The endpoint a rollback or teardown acts on: the first name after the verb."""
        if self.intent.endpoint_name is not None or self.intent.app is not None:
            return
        j = getattr(self, "verb_end", -1) + 1
        while self.low(j) in _SUBJECT_SKIP and j < len(self.tokens):
            self.mark(j, j)
            j += 1
        if self.name_at(j):
            self.take("app", _name(self.tokens[j].text), j, j)
            if self.low(j + 1) in ("endpoint", "model", "service"):
                self.mark(j + 1, j + 1)
        else:
            self.intent.missing = "which endpoint? name it after the verb, e.g. 'tear down churn-dev'"

    def model(self) -> None:
        """The model's name and version: only the words right after the verb that name it."""
        if self.intent.action is None:
            self.intent.missing = "what should happen? start with a verb and the model, e.g. 'deploy fraud-detector v3 to prod'"
            return
        j = getattr(self, "verb_end", -1) + 1
        while self.low(j) in _NAME_SKIP and self.free(j):
            j += 1
        version_at = None
        if self.kind(j) == "version" and self.low(j + 1) == "of" and self.free(j):  # "deploy v3 of fraud-detector"
            version_at, j = j, j + 2
        first = j
        # A later word that is a misspelt keyword ("fraud detector canray") ends the name: it is asked about, not named.
        # So does a later word in the place of a count ("fraud detector thre replicas").
        while self.name_at(j) and (
            j == first or not (_closest_keyword(self.low(j)) or (self.count_slot(j + 1) and _close_number(self.low(j))))
        ):
            j += 1
        if j == first:
            self.intent.missing = "which model? name it after the verb, e.g. 'deploy fraud-detector v3 to prod'"
            return
        words, last = [t.text for t in self.tokens[first:j]], j - 1
        if version_at is None and self.free(j):
            if self.kind(j) == "version":
                version_at = last = j
            elif self.low(j) in ("version", "ver") and re.match(r"^v?\d+(?:\.\d+)*$", self.low(j + 1)) and self.free(j + 1):
                version_at = last = j + 1
        # "upgrade fraud-detector v3 to v4", "update fraud-detector in prod to v4": the version after "to" is deployed.
        target = next(
            (k for k in range(last + 1, len(self.tokens)) if self.free(k) and self.kind(k) == "version" and self.low(k - 1) == "to"), None
        )
        if target is not None:
            if version_at is not None:
                self.intent.spans["from_version"] = self.span(version_at, version_at)
            self.mark(target - 1, target)
            version_at = target
        version = None if version_at is None else "v" + self.tokens[version_at].low.lstrip("v")
        self.mark(first, last)
        if version_at is not None:
            self.mark(version_at, version_at)
        # The span runs from the first to the last word naming the model; only those words are used.
        self.intent.model_base = _name(" ".join(words))
        self.intent.model_name = _name(" ".join(words) + (f" {version}" if version else ""))
        ends = [first, last] + ([version_at] if version_at is not None else [])
        self.intent.spans["model_name"] = self.span(min(ends), max(ends))

    def leftovers(self) -> None:
        """Every unused token that looks like a deployment parameter is asked about: values first, so a misspelt
        keyword is quoted with its value ("canray 10%" -> did you mean canary 10%?)."""
        values = [i for i, t in enumerate(self.tokens) if t.kind in ("number", "percent", "money", "range", "mult")]
        for i in values + [i for i in range(len(self.tokens)) if i not in values]:
            token = self.tokens[i]
            if not self.free(i):
                continue
            reason = _parameter_like(token)
            if reason is None and token.kind == "word" and token.low not in _VOCABULARY and token.low not in _VERBS:
                after = i + 1
                close = _close_number(token.low)
                if close and self.count_slot(after):
                    # "thre g5.xlarge", "tow instances": the word where a count goes is a misspelt number.
                    self.ask(i, i, "is this how many instances? say a number", close)
                    continue
            if reason is None:
                continue
            start, suggestion = i, None
            before = i - 1
            if self.free(before) and self.kind(before) == "word" and self.low(before) not in _STOP:
                close = difflib.get_close_matches(self.low(before), _KEYWORDS, n=1, cutoff=0.7)
                if close and close[0] != self.low(before):
                    start, suggestion = before, f"{close[0]} {token.text}"
            if token.kind in ("typelike", "word") and suggestion is None:
                suggestion = closest_type(token.low, self.known) if _TYPEISH.search(token.low) else _closest_keyword(token.low)
            self.ask(start, i, reason, suggestion)


# What a stated number may be at most, per field: far above any policy, below what a machine cannot store.
_CEILINGS: dict[str, float] = {
    "instance_count": MAX_INSTANCES,
    "autoscaling_min": MAX_INSTANCES,
    "autoscaling_max": MAX_INSTANCES,
    "max_instance_count": MAX_INSTANCES,
    "budget_usd_per_hour": MAX_USD_PER_HOUR,
}


@lru_cache(maxsize=4)
def _families(known: frozenset[str]) -> frozenset[str]:
    return frozenset(t.split(".")[1] for t in known if t.count(".") == 2)


@lru_cache(maxsize=8192)
def _close_number(word: str) -> str | None:
    """The number word one typo away (a letter dropped, doubled, replaced or two swapped): "thre" -> three."""
    return next((n for n in NUMBER_WORDS if n != word and _one_edit(word, n)), None)


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


@lru_cache(maxsize=8192)
def _closest_keyword(word: str) -> str | None:
    close = difflib.get_close_matches(word, _KEYWORDS, n=1, cutoff=0.75)
    return close[0] if close and close[0] != word else None


def _parameter_like(token: Token) -> str | None:
    """Why an unused token matters (it looks like a parameter), or None for filler."""
    kind, low = token.kind, token.low
    if kind == "signed":
        return "counts, percentages and budgets cannot be negative"
    if kind in ("number", "range", "mult"):
        return "this number is not attached to anything I can read (instance count, percentage, budget, autoscaling)"
    if kind == "percent":
        return "this percentage is not attached to anything I can read (canary, linear, data capture)"
    if kind == "money":
        return "this amount is not a budget per hour I can read ('budget $2/h')"
    if kind == "version":
        return "this version names no model I can read"
    if kind in ("url", "image"):
        return "a second artifact or image"
    if kind != "word":
        return None
    if low in NUMBER_WORDS or low in VAGUE_COUNTS or low in ("pair", "single"):
        return "how many is that? say a number of instances"
    if low in _STRATEGY_WORDS or low == "all-at-once":  # "at once" alone means "now"
        return "this rollout word fits no phrase I can read ('canary 10%', 'linear 20%', 'all at once')"
    if _TYPEISH.search(low):
        return "this looks like an instance type, but SageMaker has no type by this name"
    if any(ch.isdigit() for ch in low) and not low.startswith(("v", "s3")):
        return "this looks like a parameter but fits no phrase I can read"
    if _closest_keyword(low) in {"canary", "linear", "autoscale", "autoscaling", "capture", "monitoring", "instances", "replicas"}:
        return "this looks like a misspelt parameter word"
    return None


def _name(words: str) -> str:
    """A SageMaker-safe name from the words that name something: lowercase letters, digits, single hyphens."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", words.lower())).strip("-")[:63].strip("-")


def _tokenize(text: str, known: frozenset[str]) -> list[Token]:
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "punct"
        raw = match.group()
        start, end = match.start(), match.end()
        if kind == "url" and raw.endswith((".", ")")):
            raw, end = raw[:-1], end - 1
        low = raw.lower()
        token = Token(raw, low, start, end, kind)
        if kind == "money":
            token.value = _amount(low.lstrip("$ ").replace(",", ""))
        elif kind == "percent":
            token.value = _amount(low.rstrip("% "))
        elif kind == "word":
            _classify(token, known)
        tokens.append(token)
    return _merge_units(tokens, text)


def _amount(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _classify(token: Token, known: frozenset[str]) -> None:
    low = token.low
    if _NUMBER.match(low):
        token.kind, token.value = "number", _amount(low)
    elif low in NUMBER_WORDS:
        token.kind, token.value = "number", NUMBER_WORDS[low]
    elif m := _RANGE.match(low):
        token.kind, token.value = "range", (int(m.group(1)), int(m.group(2)))
    elif m := _MULT.match(low):
        token.kind, token.value = "mult", int(m.group(1) or m.group(2))
    elif _VERSION.match(low):
        token.kind = "version"
    elif _TYPE_SHAPE.match(low):
        name = "ml." + low.removeprefix("ml.")
        name = re.sub(r"\.(\d*)xl$", r".\1xlarge", name)
        if name in known:
            token.kind, token.value = "type", name
        else:
            token.kind = "typelike"


def _merge_units(tokens: list[Token], text: str) -> list[Token]:
    """ "10 percent" is a percentage and "5 dollars" / "usd 5" an amount: one token each."""
    merged: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.kind == "number" and after is not None and after.low in ("percent", "pct", "per-cent"):
            merged.append(Token(text[token.start : after.end], f"{token.value}%", token.start, after.end, "percent", token.value))
            i += 2
            continue
        if token.kind == "number" and after is not None and after.low in _CURRENCY_WORDS:
            merged.append(Token(text[token.start : after.end], f"${token.value}", token.start, after.end, "money", token.value))
            i += 2
            continue
        if token.low in ("usd", "$") and after is not None and after.kind == "number":
            merged.append(Token(text[token.start : after.end], f"${after.value}", token.start, after.end, "money", after.value))
            i += 2
            continue
        merged.append(token)
        i += 1
    return merged


def read_intent(text: str, known: frozenset[str] | None = None) -> ParsedIntent:
    """Read `text`; `known` is the set of valid instance types (SageMaker's own list by default)."""
    return _Reader(text, known if known is not None else sagemaker_instance_types()).read()
