"""How a node finds its dependencies: the `Dependencies` passed as the run's LangGraph context.

There is no implicit default. A run without one is refused rather than given dependencies nobody chose
(with AGENTOPS_EXECUTE=true a default would be a real SageMaker deployer); LangGraph Studio gets the
embedded defaults because its graph (`graph/studio.py`) is built with them, explicitly.
"""

from __future__ import annotations

from typing import Any

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
