"""The graph LangGraph Studio and `langgraph dev` load (langgraph.json).

Compiled without a checkpointer, because the server brings its own. The server cannot pass Python
objects, so its runs get the embedded defaults from the environment (`Settings()`), built once, on the
first run that needs them — named here, not picked up silently by every node.

Studio's plans are kept apart from the service's: their runs live in LangGraph Server's own checkpoints,
which the service and CLI cannot resume, so listing them in the service's plan index would offer plans
nobody there can decide. They keep their own plan index and hash-chained audit log in `studio.sqlite`
beside the service's files; they are decided in Studio (or the LangGraph SDK), by an authenticated
approver (api/langgraph_auth.py).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from agentops.ports import Dependencies
from agentops.settings import Settings, private_file
from graph.wiring import build_dependencies
from graph.workflow import build_graph
from tools.audit.local import SqliteAuditLog
from tools.audit.trail import AuditTrail
from tools.storage.plan_index import SqlitePlanIndex


@lru_cache(maxsize=1)
def studio_dependencies() -> Dependencies:
    settings = Settings()
    studio_db = private_file(settings.state_dir / "studio.sqlite")
    return replace(
        build_dependencies(settings),
        plan_index=SqlitePlanIndex(studio_db),
        audit_log=AuditTrail(SqliteAuditLog(studio_db, digest_every=settings.audit_digest_every)),
    )


graph = build_graph(default_context=studio_dependencies)
