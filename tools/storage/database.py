"""The one connection layer under the plan index and the audit log: the embedded SQLite file, or Postgres.

Both stores write their SQL once, with `?` placeholders and portable statements; a `Database` hides the
three things that differ: how a connection is made, the placeholder style, and how a writer serialises
with other processes (`begin_write`: SQLite's BEGIN IMMEDIATE write lock, or a Postgres transaction
holding an advisory lock on a name). Rows are read by column name in both (sqlite3.Row / psycopg's
dict_row); aggregates are aliased.

Connections are opened once, not per statement: SQLite keeps one connection per thread per database
file (opening and closing one cost ~8 ms and an fsync each), in WAL mode with synchronous=NORMAL — a
commit is durable once the WAL is checkpointed, and a power cut can lose the last commits but never
corrupt the file; a process crash loses nothing. Postgres borrows from one psycopg pool per URL,
connections checked before they are lent. `transaction()` lets several stores' writes on one thread
commit together (the audit node's events and the plan index row): a store's own transaction inside it
becomes a savepoint.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_savepoints = itertools.count(1)


class Connection:
    """One connection of either kind, with `?` placeholders. Outside a shared transaction, one left open
    is rolled back when the block using it ends; inside one (`nested`), a store's transaction is a savepoint."""

    def __init__(self, raw: Any, dialect: str, nested: bool = False, write_lock: Any = None):
        self.raw = raw
        self.dialect = dialect
        self.nested = nested
        self._savepoint: str | None = None
        self._write_lock = write_lock  # SQLite: this process's writers queue here (see Database._write_lock)
        self._holding = False

    def execute(self, sql: str, params: tuple | list = ()) -> Any:
        if self.dialect == "postgres":
            return self.raw.execute(sql.replace("?", "%s"), tuple(params))
        if self._write_lock is not None and not self.raw.in_transaction and sql.lstrip()[:6].upper() != "SELECT":
            with self._write_lock:  # a write in autocommit mode takes the file's write lock too
                return self.raw.execute(sql, params)
        return self.raw.execute(sql, params)

    def script(self, sql: str) -> None:
        """Several statements without parameters (schemas)."""
        if self.dialect == "postgres":
            # Replicas starting together would race on CREATE ... IF NOT EXISTS (a duplicate catalog row,
            # or DeadlockDetected between two creating the same index): one migrates at a time.
            self.begin_write("agentops-migrate")
            self.raw.execute(sql)
            self.commit()
        else:
            self.raw.executescript(sql)

    def begin_write(self, lock: str) -> None:
        """Start a transaction that no other writer naming the same `lock` overlaps, in any process.

        SQLite has one write lock for the file, so every name shares it; Postgres serialises on an advisory
        lock held until the transaction ends (commit or rollback) — the outer one, inside a shared transaction.
        """
        if self.nested:
            self._savepoint = f"agentops_{next(_savepoints)}"
            self.raw.execute(f"SAVEPOINT {self._savepoint}")
        elif self.dialect == "postgres":
            self.raw.execute("BEGIN")
        else:
            if self._write_lock is not None:
                self._write_lock.acquire()
                self._holding = True
            try:
                self.raw.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._release()
                raise
        if self.dialect == "postgres":
            self.raw.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))

    def commit(self) -> None:
        if self.nested:
            if self._savepoint:
                self.raw.execute(f"RELEASE SAVEPOINT {self._savepoint}")
                self._savepoint = None
            return
        try:
            self.raw.execute("COMMIT")
        finally:
            self._release()

    def rollback(self) -> None:
        if self.nested:
            if self._savepoint:
                self.raw.execute(f"ROLLBACK TO SAVEPOINT {self._savepoint}")
                self.raw.execute(f"RELEASE SAVEPOINT {self._savepoint}")
                self._savepoint = None
            return
        try:
            self.raw.execute("ROLLBACK")
        finally:
            self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            self._write_lock.release()

    def in_transaction(self) -> bool:
        if self.nested:
            return self._savepoint is not None
        if self._holding:
            return True
        if self.dialect == "postgres":
            from psycopg.pq import TransactionStatus

            return self.raw.info.transaction_status != TransactionStatus.IDLE
        return self.raw.in_transaction

    def end(self) -> None:
        """What was begun and not committed is undone (an early return, an error)."""
        if self.in_transaction():
            self.rollback()


class Database:
    """Where the plan index and audit log live: `Database.of(path)` (SQLite) or `Database.of("postgresql://...")`."""

    dialect = "sqlite"

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()  # .raw: this thread's connection; .shared: an open transaction()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        # One process serves an embedded database, so its writers queue on a Python lock and wake the moment
        # it is free; left to SQLite, a writer finding the file locked sleeps and polls (up to 100 ms a time).
        self._write_lock = threading.RLock()

    @staticmethod
    def of(target: Path | str | Database) -> Database:
        """A Database from a SQLite path, a postgresql:// URL, or a Database (returned as it is). Stores
        naming the same target share one Database (its connections, and `transaction()`)."""
        if isinstance(target, Database):
            return target
        postgres = isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))
        key = str(target) if postgres else str(Path(target).resolve())
        with _databases_lock:
            db = _databases.get(key)
            if db is None:
                db = PostgresDatabase(str(target)) if postgres else Database(Path(target))
                _databases[key] = db
            return db

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
        shared = getattr(self._local, "shared", None)
        if shared is not None:
            conn = Connection(shared.raw, self.dialect, nested=True, write_lock=self._write_lock)
            try:
                yield conn
            finally:
                conn.end()
            return
        with self._borrow() as raw:
            conn = Connection(raw, self.dialect, write_lock=self._write_lock)
            try:
                yield conn
            finally:
                if not getattr(raw, "closed", False):
                    conn.end()

    @contextmanager
    def transaction(self, lock: str = "shared-transaction") -> Iterator[None]:
        """Every store's statements on this thread, until the block ends, in one transaction: committed
        when it ends, rolled back on an exception. Nests: an inner block joins the outer one."""
        if getattr(self._local, "shared", None) is not None:
            yield
            return
        with self._borrow() as raw:
            conn = Connection(raw, self.dialect, write_lock=self._write_lock)
            conn.begin_write(lock)
            self._local.shared = conn
            try:
                yield
            except BaseException:
                self._local.shared = None
                conn.rollback()
                raise
            self._local.shared = None
            conn.commit()

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = self._open()
        yield raw

    def _open(self) -> sqlite3.Connection:
        # Autocommit (transactions are explicit). WAL lets readers (lists, `audit verify`) run while a
        # writer holds the lock; the 30 s busy timeout queues concurrent writers instead of failing them.
        raw = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.row_factory = sqlite3.Row
        with self._opened_lock:
            self._opened.append(raw)
        return raw

    def close(self) -> None:
        """Close every thread's connection (a thread that uses the database again opens a new one)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        self._local = threading.local()
        for raw in opened:
            raw.close()


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: str):
        self.url = url
        self.path = None  # type: ignore[assignment]
        self._local = threading.local()
        self._write_lock = None  # Postgres queues writers itself (row locks, advisory locks)
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
    def _borrow(self) -> Iterator[Any]:
        with shared_pool(self.url).connection() as raw:
            yield raw

    def close(self) -> None:
        pass  # the pools are per process (shared_pool)


_databases: weakref.WeakValueDictionary[str, Database] = weakref.WeakValueDictionary()
_databases_lock = threading.Lock()


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
                check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not lent
            )
            _pools[(url, purpose)] = pool
        return pool


def close_pools(url: str) -> None:
    """Close this process's pools for `url` (a test's throwaway schema; otherwise they live as long as the process)."""
    with _pools_lock:
        pools = [_pools.pop(key) for key in list(_pools) if key[0] == url]
    for pool in pools:
        pool.close()


def take_session_lock(conn: Any, name: str, poll: float = 0.05) -> None:
    """Take a session advisory lock on `name` (key space 0) by polling `pg_try_advisory_lock`, never by
    waiting inside a statement.

    A migration that runs CREATE INDEX CONCURRENTLY (LangGraph's checkpoint tables) waits for every open
    transaction to end, and a replica blocked in `pg_advisory_lock` is one: the two wait on each other
    until Postgres kills one with DeadlockDetected. Each try here is a transaction that ends at once.
    """
    import time

    while not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS got", (name,)).fetchone()[_first(conn)]:
        time.sleep(poll)
        poll = min(poll * 2, 0.5)


def _first(conn: Any) -> Any:
    # Rows are dicts on the pools' connections (dict_row) and tuples on a plain one.
    from psycopg.rows import dict_row

    return "got" if conn.row_factory is dict_row else 0


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
