"""Connections to the embedded SQLite database (plan index and audit log share one file)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
