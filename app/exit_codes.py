"""What `agentops` exits with: the one table scripts and CI jobs read (shown in `agentops --help` and the README).

A plan's outcome is part of the interface, not only an error: `agentops run` that ends `blocked` must not
look like success to a shell. Codes 1-6 say the command could not do its work; 10-14 say it did, and the
plan ended somewhere a script should stop.
"""

from __future__ import annotations

from enum import IntEnum

from agentops.errors import AgentOpsError, Conflict, EnvironmentProblem, Forbidden, NotFound


class ExitCode(IntEnum):
    OK = 0
    INPUT_ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    FORBIDDEN = 5
    ENVIRONMENT = 6
    BLOCKED = 10
    NEEDS_CLARIFICATION = 11
    NOT_APPROVED = 12
    FAILED = 13
    ROLLED_BACK = 14
    AUDIT_BROKEN = 15
    INTERNAL = 70


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done, or waiting: deployed, torn_down, pending_approval, approved, deploying; a check passed",
    ExitCode.INPUT_ERROR: "the input is wrong (an unknown environment, an empty intent, an ambiguous id, a bad file)",
    ExitCode.USAGE: "usage error: a missing or unknown option",
    ExitCode.NOT_FOUND: "no such plan (or key)",
    ExitCode.CONFLICT: "the plan is not in a state that allows this (decided already, expired)",
    ExitCode.FORBIDDEN: "not allowed (approving your own plan)",
    ExitCode.ENVIRONMENT: "the machine's set-up: credentials, role, an unreachable database or endpoint",
    ExitCode.BLOCKED: "the guardrail blocked the plan or config",
    ExitCode.NEEDS_CLARIFICATION: "the intent was not understood; the plan asks a question instead",
    ExitCode.NOT_APPROVED: "the plan was rejected, or its approval request expired",
    ExitCode.FAILED: "the plan or its deployment failed (`error` says why)",
    ExitCode.ROLLED_BACK: "the deployment was rolled back to the previous config",
    ExitCode.AUDIT_BROKEN: "`agentops audit verify` found the audit log tampered with",
    ExitCode.INTERNAL: "a bug: reported in one line, no traceback",
}

# The plan statuses a script should stop at; every other status (done, waiting, in progress) is OK.
_STATUS_CODES: dict[str, ExitCode] = {
    "blocked": ExitCode.BLOCKED,
    "needs_clarification": ExitCode.NEEDS_CLARIFICATION,
    "rejected": ExitCode.NOT_APPROVED,
    "expired": ExitCode.NOT_APPROVED,
    "failed": ExitCode.FAILED,
    "rolled_back": ExitCode.ROLLED_BACK,
}


def for_status(status: str | None) -> ExitCode:
    """The exit code of a command whose result is a plan in this status."""
    return _STATUS_CODES.get(status or "", ExitCode.OK)


def for_error(exc: AgentOpsError) -> ExitCode:
    """The exit code of a refusal; the most specific kind wins."""
    for kind, code in (
        (EnvironmentProblem, ExitCode.ENVIRONMENT),
        (NotFound, ExitCode.NOT_FOUND),
        (Forbidden, ExitCode.FORBIDDEN),
        (Conflict, ExitCode.CONFLICT),
    ):
        if isinstance(exc, kind):
            return code
    return ExitCode.INPUT_ERROR


def table() -> str:
    """The table as plain text, for `--help`."""
    return "\n".join(f"{int(code):>3}  {MEANINGS[code]}" for code in ExitCode)
