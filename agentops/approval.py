"""Who may decide on a plan, and when: the one home for the approval rules.

Every entry point (CLI, REST, the approvals page, LangGraph Studio / API, a direct `graph.invoke`) ends
in the approval node, which applies these rules; the service applies the same ones earlier only to
answer a refusal before it claims a slot in the plan index.

- An answer (the approval interrupt's resume value) says *what* was decided and why: `Answer`, strict.
  *Who* decided comes from authentication (a `Caller`), and *when* and whether the request expired
  from the clock; neither is ever read from the answer.
- The approver holds the approver (or admin) role, is never the requester, and each approver counts once
  (`approval.approvers_required` distinct people). People compare by `person_key`.
- A request expires at its `expires_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentops.errors import AgentOpsError, Conflict, Forbidden

APPROVER_ROLES = frozenset({"approver", "admin"})
REQUESTER_ROLES = frozenset({"requester", "admin"})
MAX_REASON_CHARS = 1000


def person_key(name: str) -> str:
    """Who a name refers to, for "the approver is never the requester" and "different approvers": names
    compare without case or surrounding spaces. The one normalisation of a person's identity."""
    return name.strip().lower()


class Answer(BaseModel):
    """A human's answer to an approval request: the resume value of the approval interrupt.

    Strict (`"yes"` is not True) and closed: an answer naming who decided, when, or that the request
    expired is refused, not trusted."""

    model_config = ConfigDict(extra="forbid", strict=True)

    approved: bool
    reason: str = Field(default="", max_length=MAX_REASON_CHARS)


def parse_answer(value: Any) -> Answer:
    """`value` as an Answer; raises AgentOpsError naming the first problem."""
    try:
        return Answer.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        raise AgentOpsError(f"not a valid decision: {where + ': ' if where else ''}{error['msg']}") from None


@dataclass(frozen=True)
class Caller:
    """An authenticated person (requesting or deciding): `identity` is what they are known by (an API key's name, an OIDC
    issuer + subject), `roles` what authentication granted them."""

    identity: str
    roles: frozenset[str]

    @classmethod
    def from_user(cls, user: Any, permissions: Iterable[str] | None = None) -> Caller | None:
        """From an authenticated user as LangGraph carries it (`configurable["langgraph_auth_user"]`: a mapping
        from the service, a user object from LangGraph Server); None for no one or an anonymous user."""
        if user is None:
            return None

        def read(name: str) -> Any:
            return user.get(name) if isinstance(user, Mapping) else getattr(user, name, None)

        identity = read("identity")
        if not isinstance(identity, str) or not identity.strip() or read("is_authenticated") is False:
            return None
        roles = permissions if permissions is not None else (read("permissions") or ())
        return cls(identity.strip(), frozenset(r for r in roles if isinstance(r, str)))

    def as_user(self) -> dict[str, Any]:
        """The form the service puts in a run's config (the same keys LangGraph Server's users have)."""
        return {"identity": self.identity, "permissions": sorted(self.roles), "is_authenticated": True}


def check_approver(plan_id: str, requester: str, approver: Caller, earlier_approvers: Iterable[str], required: int) -> None:
    """May `approver` decide on plan `plan_id`, which `requester` asked for, after `earlier_approvers`
    (who approved it so far)? Raises Forbidden or Conflict if not."""
    if not approver.roles & APPROVER_ROLES:
        held = ", ".join(sorted(approver.roles)) or "no AgentOps role"
        raise Forbidden(f"{approver.identity} has {held}; deciding needs the approver role")
    if person_key(approver.identity) == person_key(requester):
        raise Forbidden(f"{approver.identity} requested plan {plan_id} and cannot decide on it")
    if person_key(approver.identity) in {person_key(name) for name in earlier_approvers}:
        raise Conflict(f"{approver.identity} has approved plan {plan_id} already; it needs {required} different approvers")


def check_requester(caller: Caller) -> None:
    """May `caller` ask for a deployment?"""
    if not caller.roles & REQUESTER_ROLES:
        held = ", ".join(sorted(caller.roles)) or "no AgentOps role"
        raise Forbidden(f"{caller.identity} has {held}; asking for a deployment needs the requester role")


def check_answer(answer: Answer) -> None:
    if not answer.approved and not answer.reason.strip():
        raise AgentOpsError("a rejection needs a reason")


def is_expired(expires_at: datetime | str | None, now: datetime) -> bool:
    """Has the request run out? Decided from the clock, never from what an answer says."""
    if expires_at is None:
        return False
    when = datetime.fromisoformat(expires_at) if isinstance(expires_at, str) else expires_at
    return now >= when
