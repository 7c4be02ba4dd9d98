"""Errors a user can act on.

Anything raised as `AgentOpsError` reaches the user as one line (CLI) or a 4xx body (HTTP); anything
else is a bug and is reported without a traceback by the front ends.
"""


class AgentOpsError(Exception):
    """A problem with the user's input or the state of a plan, explained in one line."""


class NotFound(AgentOpsError):
    """The named plan (or other object) does not exist."""


class Conflict(AgentOpsError):
    """The request is valid but the plan is not in a state that allows it."""


class Forbidden(AgentOpsError):
    """The caller may not do this (e.g. approving their own plan)."""


class EnvironmentProblem(AgentOpsError):
    """The machine's set-up stops this, not the request: credentials, profile, region, role, quota, a
    database or endpoint that cannot be reached. The message names the cause and the fix."""
