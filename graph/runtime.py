"""Building the real dependencies and the durable checkpointer from Settings (the embedded defaults)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from langgraph.checkpoint.sqlite import SqliteSaver

from agentops.errors import AgentOpsError
from agentops.policy import load_policy
from agentops.settings import Settings
from graph.context import Dependencies
from tools.audit_log import SqliteAuditLog
from tools.plan_index import SqlitePlanIndex
from tools.policy_store import PolicyStore
from tools.rules_planner import RulesPlanner
from tools.sagemaker import DryRunDeployer


def build_dependencies(settings: Settings) -> Dependencies:
    if settings.execute:
        raise AgentOpsError("EXECUTE=true is not supported yet: deployments run in dry-run mode only (unset EXECUTE)")
    return Dependencies(
        settings=settings,
        policy=load_policy(settings.knowledge_base_dir),
        retriever=PolicyStore.from_settings(settings),
        planner=RulesPlanner(settings),
        deployer=DryRunDeployer(settings),
        audit_log=SqliteAuditLog(settings.app_db),
        plan_index=SqlitePlanIndex(settings.app_db),
    )


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """For callers that cannot pass a context (LangGraph Studio): built once from the environment."""
    return build_dependencies(Settings())


@contextmanager
def open_checkpointer(settings: Settings) -> Iterator[SqliteSaver]:
    """The durable SQLite checkpointer under AGENTOPS_HOME (thread-safe: from_conn_string sets check_same_thread=False)."""
    with SqliteSaver.from_conn_string(str(settings.checkpoint_db)) as saver:
        yield saver
