"""The policy, read from the knowledge base: one markdown file per policy area.

Each document's YAML front matter holds machine rules grouped by area (`instance_types`, `budget`, …);
each group names the section of the document that explains it. The guardrail reads the numbers from
here and cites the same document and section in a violation, so the evidence a human reads and the
rule that fired are the same thing. The markdown body, split at `##` headings, is what retrieval
indexes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import frontmatter
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from agentops.errors import AgentOpsError


class CountRange(BaseModel):
    min: int = Field(ge=1)
    max: int = Field(ge=1)


class AutoscalingRules(BaseModel):
    max_instances: int = Field(ge=1)


class RolloutRules(BaseModel):
    progressive_required_in: list[str]
    default_strategy: dict[str, Literal["all_at_once", "canary", "linear"]]
    default_canary_percent: int
    canary_percent: CountRange


class ApprovalRules(BaseModel):
    always_in: list[str]
    peak_instance_count_at_least: dict[str, int] = Field(default_factory=dict)
    peak_cost_above_usd_per_hour: float
    expires_after_hours: float = Field(gt=0)
    # How many distinct people (never the requester) must approve, per environment; one where unnamed.
    approvers_required: dict[str, PositiveInt] = Field(default_factory=dict)

    def approvers_for(self, env: str) -> int:
        return self.approvers_required.get(env, 1)


class PricingRules(BaseModel):
    currency: str = "USD"
    usd_per_hour: dict[str, float]


class BudgetRules(BaseModel):
    max_peak_usd_per_hour: dict[str, float]
    warn_at_fraction: float = Field(default=0.8, gt=0, le=1)


class NamingRules(BaseModel):
    pattern: str


class ArtifactRules(BaseModel):
    allowed_schemes: list[str]


class MonitoringRules(BaseModel):
    required_in: list[str]
    default_data_capture_percent: dict[str, int]


class RollbackRules(BaseModel):
    required_alarms: list[str] = Field(min_length=1)


class LifecycleRules(BaseModel):
    """Approval for actions on a running endpoint (a deploy's approval rules are in ApprovalRules)."""

    approval_required_in: dict[Literal["rollback", "teardown"], list[str]]


class NetworkRules(BaseModel):
    vpc_required_in: list[str]


class RuleSource(BaseModel):
    """Where a rule group is written down: the document id and the section heading."""

    policy: str
    section: str


ANY_PRICED = "any-priced"


def person_key(name: str) -> str:
    """Who a name refers to, for "the approver is never the requester" and "two different approvers":
    names compare without case or surrounding spaces."""
    return name.strip().lower()


class Policy(BaseModel):
    """All machine rules, merged from the knowledge base. Each group has exactly one home document."""

    model_config = ConfigDict(frozen=True)

    instance_types: dict[str, list[str] | Literal["any-priced"]]
    instance_count: dict[str, CountRange]
    autoscaling: AutoscalingRules
    rollout: RolloutRules
    approval: ApprovalRules
    pricing: PricingRules
    budget: BudgetRules
    naming: NamingRules
    artifacts: ArtifactRules
    monitoring: MonitoringRules
    rollback: RollbackRules
    lifecycle: LifecycleRules
    network: NetworkRules
    sources: dict[str, RuleSource]

    @property
    def environments(self) -> list[str]:
        return list(self.instance_count)

    def price(self, instance_type: str) -> float | None:
        return self.pricing.usd_per_hour.get(instance_type)

    def source(self, group: str) -> RuleSource:
        return self.sources[group]


class Section(BaseModel):
    heading: str
    text: str


class PolicyDocument(BaseModel):
    id: str
    title: str
    path: Path
    sections: list[Section]
    rules: dict[str, dict[str, Any]]


_HEADING = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)


def _split_sections(body: str) -> list[Section]:
    """Split a markdown body at `##` headings; each section keeps its heading for citations."""
    matches = list(_HEADING.finditer(body))
    sections = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        text = body[match.end() : end].strip()
        if text:
            sections.append(Section(heading=match.group(1), text=text))
    return sections


def load_documents(directory: Path) -> list[PolicyDocument]:
    paths = sorted(directory.glob("*.md"))
    if not paths:
        raise AgentOpsError(f"no policy documents (*.md) found in {directory}")
    documents = []
    for path in paths:
        try:
            post = frontmatter.load(path)
        except Exception as exc:  # YAML errors come in several types; all mean the same to the user
            raise AgentOpsError(f"cannot read policy document {path.name}: {exc}") from exc
        doc_id = str(post.metadata.get("id") or path.stem)
        documents.append(
            PolicyDocument(
                id=doc_id,
                title=str(post.metadata.get("title", doc_id)),
                path=path,
                sections=_split_sections(post.content),
                rules=_rule_groups(post.metadata.get("rules"), path),
            )
        )
    return documents


def _rule_groups(rules: object, path: Path) -> dict[str, dict[str, Any]]:
    if rules is None:
        return {}
    if not isinstance(rules, dict) or not all(isinstance(body, dict) for body in rules.values()):
        raise AgentOpsError(f"policy document {path.name}: `rules` must map rule groups to their settings")
    return {str(group): dict(body) for group, body in rules.items()}


def policy_from_documents(documents: list[PolicyDocument]) -> Policy:
    groups: dict[str, Any] = {}
    sources: dict[str, RuleSource] = {}
    for doc in documents:
        headings = {s.heading for s in doc.sections}
        for group, body in doc.rules.items():
            if group in groups:
                raise AgentOpsError(f"rule group '{group}' is defined in both {sources[group].policy} and {doc.id}")
            body = dict(body)
            section = str(body.pop("section", ""))
            if section not in headings:
                raise AgentOpsError(f"rule group '{group}' in {doc.id} cites a missing section '{section}'")
            groups[group] = body
            sources[group] = RuleSource(policy=doc.id, section=section)
    try:
        return Policy.model_validate({**groups, "sources": sources})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AgentOpsError(f"policy rules are invalid at {where}: {first['msg']}") from exc


@lru_cache(maxsize=8)
def load_policy(directory: Path) -> Policy:
    """The policy for a knowledge-base folder (cached: documents change only with a deploy of AgentOps)."""
    return policy_from_documents(load_documents(directory))
