"""How a node finds its dependencies: the `Dependencies` passed as the run's LangGraph context.

There is no implicit default. A run without one is refused rather than given dependencies nobody chose
(with AGENTOPS_EXECUTE=true a default would be a real SageMaker deployer); LangGraph Studio gets the
embedded defaults because its graph (`graph/studio.py`) is built with them, explicitly.
"""

from __future__ import annotations

from typing import Any

from agentops.approval import Caller
from agentops.errors import AgentOpsError
from agentops.ports import Dependencies


class MissingDependencies(AgentOpsError):
    """A run was started without a `Dependencies` context."""


def dependencies_of(runtime: Any) -> Dependencies:
    """The run's dependencies (LangGraph's runtime context); raises MissingDependencies without them."""
    context = getattr(runtime, "context", None)
    if not isinstance(context, Dependencies):
        raise MissingDependencies("this run has no dependencies: pass context=Dependencies(...) (graph/wiring.py builds them)")
    return context


# Where a run carries the authenticated caller: the key LangGraph Server itself fills from its auth hook
# (api/langgraph_auth.py) and refuses from clients; the service fills it from its own authentication.
AUTH_USER = "langgraph_auth_user"
AUTH_PERMISSIONS = "langgraph_auth_permissions"


def caller_of(config: Any) -> Caller | None:
    """The authenticated person driving this run (None when nobody authenticated it)."""
    configurable = (config or {}).get("configurable") or {}
    return Caller.from_user(configurable.get(AUTH_USER), configurable.get(AUTH_PERMISSIONS))


def run_config(thread_id: str, caller: Caller | None = None) -> dict[str, Any]:
    """A run's config: its thread, and the authenticated caller driving it (if any)."""
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if caller is not None:
        configurable[AUTH_USER] = caller.as_user()
    return {"configurable": configurable}
