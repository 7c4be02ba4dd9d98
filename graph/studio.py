"""The graph LangGraph Studio and `langgraph dev` load (langgraph.json).

Compiled without a checkpointer, because the server brings its own. The server cannot pass Python
objects, so its runs get the embedded defaults from the environment (`Settings()`), built once, on the
first run that needs them — named here, not picked up silently by every node.
"""

from __future__ import annotations

from functools import lru_cache

from agentops.ports import Dependencies
from agentops.settings import Settings
from graph.wiring import build_dependencies
from graph.workflow import build_graph


@lru_cache(maxsize=1)
def studio_dependencies() -> Dependencies:
    return build_dependencies(Settings())


graph = build_graph(default_context=studio_dependencies)
