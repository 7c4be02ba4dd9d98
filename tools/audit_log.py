"""The append-only, hash-chained audit log in the embedded SQLite database.

All events of all plans form one chain: event N stores the hash of event N-1 and its own hash over
its content and that previous hash. Editing an event breaks its hash; deleting or reordering events
breaks the sequence or the chain. Appends are idempotent on (plan_id, step): a node that re-runs after
a crash or an interrupt writes nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import BaseModel

from tools.sqlite_db import connection

GENESIS_HASH = "0" * 64

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
"""


class AuditEvent(BaseModel):
    seq: int
    event_id: str
    plan_id: str
    step: str
    ts: str
    actor: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyResult(BaseModel):
    ok: bool
    events: int
    problem: str | None = None  # the first thing that is wrong, in words
    seq: int | None = None  # where it is wrong


def event_id_for(plan_id: str, step: str) -> str:
    """Derived, not random: the same step of the same plan always has the same id."""
    return hashlib.sha256(f"{plan_id}\x00{step}".encode()).hexdigest()[:32]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(seq: int, event_id: str, plan_id: str, step: str, ts: str, actor: str, payload_json: str, prev_hash: str) -> str:
    content = canonical_json([seq, event_id, plan_id, step, ts, actor, payload_json, prev_hash])
    return hashlib.sha256(content.encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class SqliteAuditLog:
    """Implements graph.context.AuditSink on a SQLite file."""

    def __init__(self, path: Path, clock: Callable[[], datetime] = _utc_now):
        self.path = Path(path)
        self.clock = clock
        with connection(self.path) as conn:
            conn.executescript(_SCHEMA)

    def append(self, plan_id: str, step: str, actor: str, payload: dict[str, Any]) -> bool:
        """Append one event; False (and nothing written) if this plan's step is already on the log."""
        event_id = event_id_for(plan_id, step)
        payload_json = canonical_json(payload)
        # An uncommitted transaction is rolled back when the connection closes, so any failure below
        # leaves the chain as it was.
        with connection(self.path) as conn:
            # IMMEDIATE takes the write lock before reading the chain head, so two writers (threads or
            # processes) cannot both link to the same previous event.
            conn.execute("BEGIN IMMEDIATE")
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
            conn.execute("COMMIT")
            return True

    def _rows(self, where: str = "", params: tuple = ()) -> Iterator[sqlite3.Row]:
        with connection(self.path) as conn:
            yield from conn.execute(f"SELECT * FROM audit_events {where} ORDER BY seq", params)

    def events(self, plan_id: str | None = None) -> list[AuditEvent]:
        rows = self._rows("WHERE plan_id = ?", (plan_id,)) if plan_id else self._rows()
        return [AuditEvent(**{**dict(row), "payload": json.loads(row["payload"])}) for row in rows]

    def verify(self) -> VerifyResult:
        """Recompute every hash and link; report the first event that does not fit."""
        expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
        for row in self._rows():
            count += 1
            seq = row["seq"]
            if seq != expected_seq:
                return VerifyResult(ok=False, events=count, seq=seq, problem=f"sequence gap: expected event {expected_seq}, found {seq} (events deleted?)")
            if row["prev_hash"] != prev_hash:
                return VerifyResult(ok=False, events=count, seq=seq, problem=f"event {seq} does not link to event {seq - 1} (events deleted or reordered?)")
            recomputed = event_hash(seq, row["event_id"], row["plan_id"], row["step"], row["ts"], row["actor"], row["payload"], row["prev_hash"])
            if recomputed != row["hash"]:
                return VerifyResult(ok=False, events=count, seq=seq, problem=f"event {seq} ({row['plan_id']} {row['step']}) was changed: its hash does not match its content")
            if row["event_id"] != event_id_for(row["plan_id"], row["step"]):
                return VerifyResult(ok=False, events=count, seq=seq, problem=f"event {seq} has an id that does not belong to its plan and step")
            expected_seq, prev_hash = seq + 1, row["hash"]
        return VerifyResult(ok=True, events=count)
