"""The append-only, hash-chained audit log in the embedded SQLite database or Postgres: the source of truth.

All events of all plans form one chain (tools/audit/chain.py). Appends are idempotent on
(plan_id, step): a node that re-runs after a crash or an interrupt writes nothing twice. Digests are
made here too, in the same transaction as the events they cover, so a digest never disagrees with the
chain it was cut from; tools/audit/trail.py publishes them to S3 and mirrors events to DynamoDB, using
the `audit_sync` table to remember how far each remote copy has been written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.audit.chain import (
    GENESIS_HASH,
    AuditEvent,
    Digest,
    EventRecord,
    VerifyResult,
    canonical_json,
    event_hash,
    event_id_for,
    next_digest,
    parse_digest,
)
from tools.storage.database import Connection, Database

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditLog",
    "Digest",
    "EventRecord",
    "SqliteAuditLog",
    "VerifyResult",
    "canonical_json",
    "event_hash",
    "event_id_for",
]

LOCAL_STORE = "local log"  # how verification names this store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    plan_id    TEXT NOT NULL,
    step       TEXT NOT NULL,
    ts         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_plan ON audit_events (plan_id, seq);
CREATE TABLE IF NOT EXISTS audit_digests (
    digest_seq INTEGER PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    body       TEXT NOT NULL   -- Digest.body(): the same bytes that go to S3
);
CREATE TABLE IF NOT EXISTS audit_sync (
    target     TEXT PRIMARY KEY,   -- e.g. "dynamodb:agentops-audit", "s3-digests:bucket"
    seq        INTEGER NOT NULL    -- everything up to here is known to be written there
);
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


# Every append and digest holds this lock: one chain head, whatever the number of processes.
_CHAIN_LOCK = "audit-chain"


def _record(row: Any) -> EventRecord:
    return EventRecord(**{k: row[k] for k in EventRecord.__annotations__})  # type: ignore[typeddict-item]


class AuditLog:
    """Implements agentops.ports.AuditSink on a SQLite file or Postgres (tools/database.Database).

    `digest_every`: after an append leaves this many events no digest covers, a digest is made in the
    same transaction (0: only when `digest()` is called).
    """

    def __init__(self, db: Path | str | Database, clock: Callable[[], datetime] = _utc_now, digest_every: int = 0):
        self.db = Database.of(db)
        self.path = self.db.path  # the SQLite file (None on Postgres)
        self.clock = clock
        self.digest_every = digest_every
        with self.db.connect() as conn:
            conn.script(_SCHEMA)

    @contextmanager
    def together(self, recorder: Any) -> Iterator[None]:
        """Appends in the block, and `recorder`'s writes when it keeps them in this database, in one
        transaction (agentops.ports.CommitsTogether); otherwise each append commits on its own."""
        with self.db.transaction(_CHAIN_LOCK) if getattr(recorder, "db", None) is self.db else nullcontext():
            yield

    def append(self, plan_id: str, step: str, actor: str, payload: dict[str, Any]) -> bool:
        """Append one event; False (and nothing written) if this plan's step is already on the log."""
        event_id = event_id_for(plan_id, step)
        payload_json = canonical_json(payload)
        # An uncommitted transaction is rolled back when the connection closes, so any failure below
        # leaves the chain as it was.
        with self.db.connect() as conn:
            # The chain lock is taken before reading the chain head, so two writers (threads, processes,
            # replicas) cannot both link to the same previous event.
            conn.begin_write(_CHAIN_LOCK)
            if conn.execute("SELECT 1 FROM audit_events WHERE event_id = ?", (event_id,)).fetchone():
                return False
            head = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS_HASH)
            ts = self.clock().isoformat()
            digest = event_hash(seq, event_id, plan_id, step, ts, actor, payload_json, prev_hash)
            conn.execute(
                "INSERT INTO audit_events (seq, event_id, plan_id, step, ts, actor, payload, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, event_id, plan_id, step, ts, actor, payload_json, prev_hash, digest),
            )
            if self.digest_every and seq - _last_digested(conn) >= self.digest_every:
                self._digest_in(conn)
            conn.commit()
            return True

    # --- digests -------------------------------------------------------------------------------

    def digest(self) -> Digest | None:
        """Make a digest of the events since the last one; None (nothing written) if there are none."""
        with self.db.connect() as conn:
            conn.begin_write(_CHAIN_LOCK)  # the same lock appends take: the head cannot move meanwhile
            made = self._digest_in(conn)
            conn.commit()
            return made

    def _digest_in(self, conn: Connection) -> Digest | None:
        row = conn.execute("SELECT body FROM audit_digests ORDER BY digest_seq DESC LIMIT 1").fetchone()
        previous = parse_digest(row["body"], "the latest local digest") if row else None
        after = previous.last_seq if previous else 0
        records = [_record(r) for r in conn.execute("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq", (after,)).fetchall()]
        digest = next_digest(previous, records, self.clock())
        if digest:
            conn.execute(
                "INSERT INTO audit_digests (digest_seq, last_seq, body) VALUES (?, ?, ?)",
                (digest.digest_seq, digest.last_seq, digest.body()),
            )
        return digest

    def digests(self, after: int = 0) -> list[Digest]:
        with self.db.connect() as conn:
            rows = conn.execute("SELECT digest_seq, body FROM audit_digests WHERE digest_seq > ? ORDER BY digest_seq", (after,)).fetchall()
        return [parse_digest(r["body"], f"local digest {r['digest_seq']}") for r in rows]

    # --- reading -------------------------------------------------------------------------------

    def _rows(self, where: str = "", params: tuple = ()) -> list[Any]:
        with self.db.connect() as conn:
            return conn.execute(f"SELECT * FROM audit_events {where} ORDER BY seq", params).fetchall()

    def records(self, after: int = 0) -> list[EventRecord]:
        """Events as stored (payload as JSON text), in chain order, after event `after`."""
        return [_record(row) for row in self._rows("WHERE seq > ?", (after,))]

    def events(self, plan_id: str | None = None) -> list[AuditEvent]:
        rows = self._rows("WHERE plan_id = ?", (plan_id,)) if plan_id else self._rows()
        return [AuditEvent.from_record(_record(row)) for row in rows]

    def head(self) -> int:
        with self.db.connect() as conn:
            return conn.execute("SELECT COALESCE(MAX(seq), 0) AS head FROM audit_events").fetchone()["head"]

    # --- how far each remote copy has been written ------------------------------------------------

    def synced(self, target: str) -> int:
        with self.db.connect() as conn:
            row = conn.execute("SELECT seq FROM audit_sync WHERE target = ?", (target,)).fetchone()
        return row["seq"] if row else 0

    def mark_synced(self, target: str, seq: int) -> None:
        """Never moves back: two processes syncing at once both end at the furthest point."""
        with self.db.connect() as conn:
            conn.execute(
                "INSERT INTO audit_sync (target, seq) VALUES (?, ?) "
                f"ON CONFLICT (target) DO UPDATE SET seq = {self.db.greatest}(audit_sync.seq, excluded.seq)",
                (target, seq),
            )


def _last_digested(conn: Connection) -> int:
    return conn.execute("SELECT COALESCE(MAX(last_seq), 0) AS last FROM audit_digests").fetchone()["last"]


SqliteAuditLog = AuditLog  # the name from before Postgres: same class, a path still selects SQLite
