"""Building the real dependencies and the durable checkpointer from Settings: the embedded SQLite defaults,
or Postgres for all three stores (checkpoints, plan index, audit log) when AGENTOPS_DATABASE_URL is set."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

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
    """The durable checkpointer: SQLite under AGENTOPS_HOME, or Postgres over a connection pool, its
    tables migrated first. Synchronous: runs are driven on worker threads (app/service.py)."""
    if settings.database_url:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg_pool import ConnectionPool

        migrate_checkpoints(settings.database_url)
        # check: a pooled connection the server terminated is found (and replaced) before a run borrows it.
        with ConnectionPool(
            settings.database_url, min_size=1, max_size=20, open=False, kwargs=_saver_connection(), check=ConnectionPool.check_connection
        ) as pool:
            yield PostgresSaver(pool)  # type: ignore[arg-type]  # rows are dicts (kwargs' row_factory), which the pool's type cannot see
        return
    # One connection for every thread (the saver serialises them on its own lock). WAL with
    # synchronous=NORMAL, as the plan index and audit log have it (tools/storage/database.py): a commit
    # is not fsynced on its own, so a power cut can lose the last commits but a killed process loses
    # nothing; the 30 s busy timeout queues behind another process's write (the CLI beside the service).
    with closing(sqlite3.connect(settings.checkpoint_db, timeout=30, check_same_thread=False)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        yield SqliteSaver(conn)


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
