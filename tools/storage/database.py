"""The one connection layer under the plan index and the audit log: the embedded SQLite file, or Postgres.

Both stores write their SQL once, with `?` placeholders and portable statements; a `Database` hides the
three things that differ: how a connection is made (a short-lived SQLite connection, or one borrowed from
a psycopg pool), the placeholder style, and how a writer serialises with other processes (`begin_write`:
SQLite's BEGIN IMMEDIATE write lock, or a Postgres transaction holding an advisory lock on a name).
Rows are read by column name in both (sqlite3.Row / psycopg's dict_row); aggregates are aliased.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection in autocommit mode (transactions are explicit), closed on exit.

    WAL lets readers (lists, `audit verify`) run while a writer holds the lock; the 30 s busy timeout
    lets concurrent processes queue for the write lock instead of failing at once.
    """
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.row_factory = sqlite3.Row
        yield conn
    finally:
        conn.close()


class Connection:
    """One connection of either kind, with `?` placeholders; an open transaction is rolled back on exit."""

    def __init__(self, raw: Any, dialect: str):
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: tuple | list = ()) -> Any:
        if self.dialect == "postgres":
            return self.raw.execute(sql.replace("?", "%s"), tuple(params))
        return self.raw.execute(sql, params)

    def script(self, sql: str) -> None:
        """Several statements without parameters (schemas)."""
        if self.dialect == "postgres":
            # Replicas starting together would race on CREATE ... IF NOT EXISTS (a duplicate catalog row):
            # one migrates at a time.
            self.begin_write("agentops-migrate")
            self.raw.execute(sql)
            self.commit()
        else:
            self.raw.executescript(sql)

    def begin_write(self, lock: str) -> None:
        """Start a transaction that no other writer naming the same `lock` overlaps, in any process.

        SQLite has one write lock for the file, so every name shares it; Postgres serialises on an advisory
        lock held until the transaction ends (commit or rollback).
        """
        if self.dialect == "postgres":
            self.raw.execute("BEGIN")
            self.raw.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
        else:
            self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    def in_transaction(self) -> bool:
        if self.dialect == "postgres":
            from psycopg.pq import TransactionStatus

            return self.raw.info.transaction_status != TransactionStatus.IDLE
        return self.raw.in_transaction


class Database:
    """Where the plan index and audit log live: `Database(path)` (SQLite) or `Database.of("postgresql://...")`."""

    dialect = "sqlite"

    def __init__(self, path: Path):
        self.path = Path(path)

    @staticmethod
    def of(target: Path | str | Database) -> Database:
        """A Database from a SQLite path, a postgresql:// URL, or a Database (returned as it is)."""
        if isinstance(target, Database):
            return target
        if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
            return PostgresDatabase(target)
        return Database(Path(target))

    @property
    def greatest(self) -> str:
        """The two-argument maximum: SQLite's scalar MAX, Postgres' GREATEST."""
        return "GREATEST" if self.dialect == "postgres" else "MAX"

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a lock on `name` across processes until the block ends (however long it runs).

        SQLite: nothing to do — one process serves an embedded database, and its callers already take
        their in-process lock. Postgres: a session advisory lock on a pooled connection.
        """
        yield

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with connection(self.path) as raw:
            yield Connection(raw, self.dialect)  # closing a SQLite connection rolls back what was not committed


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: str):
        self.url = url
        self.path = None  # type: ignore[assignment]
        if url not in _reached:  # once per process: a one-line error now, not a pool retrying for a minute
            require_postgres(url)
            _reached.add(url)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        # Its own pool: a lock is held for a whole run, and the run's own reads and writes must never wait
        # for a connection behind the locks.
        with shared_pool(self.url, purpose="locks").connection() as raw:
            raw.execute("SELECT pg_advisory_lock(hashtextextended(%s, 1))", (name,))
            try:
                yield
            finally:
                raw.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 1))", (name,))

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with shared_pool(self.url).connection() as raw:
            conn = Connection(raw, self.dialect)
            try:
                yield conn
            finally:
                # A transaction left open (an early return, an error) is rolled back before the
                # connection goes back to the pool, so the next borrower starts clean.
                if not raw.closed and conn.in_transaction():
                    raw.execute("ROLLBACK")


_pools: dict[tuple[str, str], Any] = {}
_pools_lock = threading.Lock()
_reached: set[str] = set()


def shared_pool(url: str, purpose: str = "work") -> Any:
    """One psycopg pool per URL and purpose per process, opened on first use: the index and the log share
    the "work" pool; plan locks held for a run have the "locks" pool."""
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    with _pools_lock:
        pool = _pools.get((url, purpose))
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=10 if purpose == "work" else 50,
                open=True,
                timeout=60,
                kwargs={"autocommit": True, "row_factory": dict_row},
                check=ConnectionPool.check_connection,  # a connection the server terminated is replaced, not lent
            )
            _pools[(url, purpose)] = pool
        return pool


def require_postgres(url: str, timeout: float = 5) -> None:
    """Fail fast, in one line, when the database does not answer (rather than a pool waiting a minute)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from agentops.errors import EnvironmentProblem

    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return
    except psycopg.Error as exc:
        info = conninfo_to_dict(url)  # named without the password
        where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EnvironmentProblem(f"cannot connect to the database at {where} (AGENTOPS_DATABASE_URL): {reason}") from None


def postgres_reachable(url: str, timeout: float = 3) -> bool:
    """Whether a Postgres server answers at `url` (tests skip with a reason when it does not)."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=timeout):
            return True
    except Exception:
        return False
