"""Building the real dependencies and the durable checkpointer from Settings: the embedded SQLite defaults,
or Postgres for all three stores (checkpoints, plan index, audit log) when AGENTOPS_DATABASE_URL is set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agentops.policy import load_policy
from agentops.ports import Dependencies, Planner, PolicyRetriever
from agentops.settings import Settings
from tools.audit.trail import build_audit_trail
from tools.planning.rules import RulesPlanner
from tools.retrieval.policy_store import PolicyStore
from tools.sagemaker.dry_run import DryRunDeployer
from tools.sagemaker.execute import executor_from_settings
from tools.storage.plan_index import SqlitePlanIndex


def build_dependencies(settings: Settings) -> Dependencies:
    # Execute mode refuses to start without an execution role ARN or AWS credentials (AgentOpsError).
    deployer, watcher = executor_from_settings(settings) if settings.execute else (DryRunDeployer(settings), None)
    return Dependencies(
        settings=settings,
        policy=load_policy(settings.knowledge_base_dir),
        retriever=build_retriever(settings),
        planner=build_planner(settings),
        deployer=deployer,
        watcher=watcher,
        audit_log=build_audit_trail(settings),  # the local log, mirrored to AWS when settings name a table/bucket
        plan_index=SqlitePlanIndex(settings.database),
    )


# The NVIDIA modules are imported only when configured: the client library costs ~0.8 s to import.


def build_planner(settings: Settings) -> Planner:
    if settings.planner == "nim":
        from tools.nvidia.planner import NimPlanner

        return NimPlanner(settings)
    return RulesPlanner(settings)


def build_retriever(settings: Settings) -> PolicyRetriever:
    """The policy store with the configured embeddings and reranker. With either on an NVIDIA endpoint
    and AGENTOPS_NIM_ON_FAILURE=fallback, the offline store stands in when an endpoint fails; it keeps
    its own collection, so neither rebuilds the other's."""
    offline = PolicyStore.from_settings(settings)
    if settings.embeddings == "local" and settings.reranker == "local":
        return offline
    from tools.nvidia.client import FallbackRetriever
    from tools.nvidia.embeddings import NimEmbeddingFunction
    from tools.nvidia.rerank import NimReranker

    nim = PolicyStore.from_settings(
        settings,
        embedding_function=NimEmbeddingFunction.from_settings(settings) if settings.embeddings == "nim" else None,
        reranker=NimReranker.from_settings(settings) if settings.reranker == "nim" else None,
        collection_name=f"{settings.collection_name}-nim" if settings.embeddings == "nim" else settings.collection_name,
    )
    return nim if settings.nim_on_failure == "fail" else FallbackRetriever(nim, offline)


@contextmanager
def open_checkpointer(settings: Settings) -> Iterator[BaseCheckpointSaver[Any]]:
    """The durable checkpointer: SQLite under AGENTOPS_HOME (thread-safe: from_conn_string sets
    check_same_thread=False), or Postgres over a connection pool, its tables migrated first."""
    if settings.database_url:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg_pool import ConnectionPool

        migrate_checkpoints(settings.database_url)
        # check: a pooled connection the server terminated is found (and replaced) before a run borrows it.
        with ConnectionPool(
            settings.database_url, min_size=1, max_size=10, open=False, kwargs=_saver_connection(), check=ConnectionPool.check_connection
        ) as pool:
            yield PostgresSaver(pool)  # type: ignore[arg-type]  # rows are dicts (kwargs' row_factory), which the pool's type cannot see
        return
    with SqliteSaver.from_conn_string(str(settings.checkpoint_db)) as saver:
        yield saver


@asynccontextmanager
async def open_async_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The same store for async callers (the HTTP service opens it once, in its lifespan): SqliteSaver
    has no async methods, so AsyncSqliteSaver on the file, or AsyncPostgresSaver on an async pool."""
    if settings.database_url:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg_pool import AsyncConnectionPool

        migrate_checkpoints(settings.database_url)
        async with AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=20,
            open=False,
            kwargs=_saver_connection(),
            check=AsyncConnectionPool.check_connection,
        ) as pool:
            yield AsyncPostgresSaver(pool)  # type: ignore[arg-type]  # as above
        return
    async with AsyncSqliteSaver.from_conn_string(str(settings.checkpoint_db)) as saver:
        yield saver


def _saver_connection() -> dict[str, Any]:
    from psycopg.rows import dict_row

    # What the Postgres savers require of their connections (langgraph-checkpoint-postgres' README).
    return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


def migrate_checkpoints(url: str) -> None:
    """Create or upgrade the checkpoint tables (idempotent). Replicas starting together take turns on a
    session advisory lock: the saver's migrations are not safe to run twice at once."""
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    from tools.storage.database import take_session_lock

    with psycopg.connect(url, **_saver_connection()) as conn:
        take_session_lock(
            conn, "agentops-migrate-checkpoints"
        )  # polled: the setup's CREATE INDEX CONCURRENTLY would deadlock a blocked waiter
        try:
            PostgresSaver(conn).setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended('agentops-migrate-checkpoints', 0))")
