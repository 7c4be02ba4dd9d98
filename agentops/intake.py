"""Checking a new deployment request before anything runs: one home for what counts as valid input.

Used by the front ends (so bad input changes nothing) and by the workflow's first node (so a run
started from LangGraph Studio or the SDK gets the same checks).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentops.errors import AgentOpsError
from agentops.policy import Policy
from agentops.schemas import Constraints

MAX_INTENT_CHARS = 2000
MAX_REQUESTER_CHARS = 200


def check_request(intent: Any, env: Any, requester: Any, constraints: Any, policy: Policy) -> dict[str, Any]:
    """The request's fields, normalised; raises AgentOpsError with one line on the first problem."""
    intent = intent.strip() if isinstance(intent, str) else ""
    if not intent:
        raise AgentOpsError("the intent is empty: say what to deploy, e.g. 'deploy fraud-detector v3 to prod on 2 ml.g5.xlarge'")
    if len(intent) > MAX_INTENT_CHARS:
        raise AgentOpsError(f"the intent is {len(intent)} characters long; the limit is {MAX_INTENT_CHARS}")
    if env not in policy.environments:
        raise AgentOpsError(f"unknown environment '{env}': expected one of {', '.join(policy.environments)}")
    requester = requester.strip() if isinstance(requester, str) else ""
    if not requester:
        raise AgentOpsError("the requester is empty: say who asks")
    if len(requester) > MAX_REQUESTER_CHARS:
        raise AgentOpsError(f"the requester name is longer than {MAX_REQUESTER_CHARS} characters")
    try:
        checked = Constraints.model_validate(constraints or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise AgentOpsError(f"constraint '{'.'.join(map(str, error['loc']))}': {error['msg']}") from None
    return {"intent": intent, "env": env, "requester": requester, "constraints": checked.model_dump(exclude_none=True)}
