"""The audit trail's arithmetic: event hashes, the chain, digests, and the checks that find tampering.

Pure functions, no I/O: the SQLite log, the DynamoDB table and the S3 bucket all hand their events
here as *records* (the stored fields, payload as its canonical JSON text), so every store is checked by
the same code.

- **Events** form ONE chain over all plans: event N stores the hash of event N-1 and its own hash over
  its content and that link. Editing an event breaks its hash; deleting or reordering events breaks the
  sequence or a link.
- **Digests** close what a chain alone cannot show — its newest events, or a whole plan, deleted (the
  rest of the chain still links). In the manner of CloudTrail's log file validation, digest N lists the
  chain head and the latest event hash of every plan that changed since digest N-1, and chains to
  digest N-1's hash. Kept where they cannot be rewritten (S3 Object Lock), they pin the events they name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

from pydantic import BaseModel, Field, ValidationError

GENESIS_HASH = "0" * 64
DIGEST_VERSION = 1


class EventRecord(TypedDict):
    """An event as stored: `payload` is the canonical JSON text the hash was computed over."""

    seq: int
    event_id: str
    plan_id: str
    step: str
    ts: str
    actor: str
    payload: str
    prev_hash: str
    hash: str


RECORD_FIELDS = tuple(EventRecord.__annotations__)


class AuditEvent(BaseModel):
    """An event for people and exports: the payload parsed."""

    seq: int
    event_id: str
    plan_id: str
    step: str
    ts: str
    actor: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AuditEvent:
        return cls(**{**record, "payload": json.loads(record["payload"])})


class PlanHead(BaseModel):
    seq: int
    hash: str


class Digest(BaseModel):
    """Digest N: what the chain looked like when it was made, chained to digest N-1."""

    version: int = DIGEST_VERSION
    digest_seq: int
    created_at: str
    first_seq: int  # the first event this digest covers: the one after digest N-1's last
    last_seq: int  # the chain head when the digest was made
    head_hash: str
    plans: dict[str, PlanHead]  # every plan that changed in first_seq..last_seq -> its latest event
    prev_digest_hash: str
    hash: str = ""

    def body(self) -> str:
        """The stored form (local table and S3 object alike): canonical JSON, hash included."""
        return canonical_json(self.model_dump())

    @classmethod
    def parse(cls, body: str | bytes) -> Digest:
        return cls.model_validate_json(body)


class TamperFound(Exception):
    """The first thing found wrong with the trail, in words, and where."""

    def __init__(self, problem: str, seq: int | None = None, digest: int | None = None):
        super().__init__(problem)
        self.problem, self.seq, self.digest = problem, seq, digest
        self.store: str | None = None  # set by the verifier that knows which store it was reading


class VerifyResult(BaseModel):
    ok: bool
    events: int
    digests: int = 0
    problem: str | None = None  # the first thing that is wrong, in words
    seq: int | None = None  # the event where it is wrong
    digest: int | None = None  # the digest where it is wrong
    store: str | None = None  # where it is wrong: "local log", "dynamodb:TABLE", "s3:BUCKET"
    undigested: int = 0  # newest events no digest covers yet: deleting them would go unnoticed
    stores: list[str] = Field(default_factory=list)  # what was checked
    warnings: list[str] = Field(default_factory=list)


# --- hashing ---------------------------------------------------------------------------------------


def event_id_for(plan_id: str, step: str) -> str:
    """Derived, not random: the same step of the same plan always has the same id."""
    return hashlib.sha256(f"{plan_id}\x00{step}".encode()).hexdigest()[:32]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(seq: int, event_id: str, plan_id: str, step: str, ts: str, actor: str, payload_json: str, prev_hash: str) -> str:
    content = canonical_json([seq, event_id, plan_id, step, ts, actor, payload_json, prev_hash])
    return hashlib.sha256(content.encode()).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    return event_hash(*(record[f] for f in RECORD_FIELDS if f != "hash"))


def day_of(ts: str) -> str:
    """The UTC day of an event time: the partition of the 'events of a day' index."""
    return parse_time(ts).date().isoformat()


def parse_time(text: str) -> datetime:
    """An ISO date or time; one without a zone is UTC."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _digest_hash(digest: Digest) -> str:
    return hashlib.sha256(canonical_json(digest.model_dump(exclude={"hash"})).encode()).hexdigest()


def next_digest(previous: Digest | None, records: Sequence[Mapping[str, Any]], now: datetime) -> Digest | None:
    """The digest after `previous` over `records` (the events after it, in order); None if there are none."""
    if not records:
        return None
    plans: dict[str, PlanHead] = {}
    for record in records:  # in order, so each plan ends on its latest event
        plans[record["plan_id"]] = PlanHead(seq=record["seq"], hash=record["hash"])
    digest = Digest(
        digest_seq=previous.digest_seq + 1 if previous else 1,
        created_at=now.isoformat(),
        first_seq=records[0]["seq"],
        last_seq=records[-1]["seq"],
        head_hash=records[-1]["hash"],
        plans=plans,
        prev_digest_hash=previous.hash if previous else GENESIS_HASH,
    )
    return digest.model_copy(update={"hash": _digest_hash(digest)})


def parse_digest(body: str | bytes, where: str) -> Digest:
    try:
        return Digest.parse(body)
    except ValidationError:
        raise TamperFound(f"{where} is not a valid digest") from None


# --- checks: each raises TamperFound at the first problem --------------------------------------------


def check_chain(records: Iterable[Mapping[str, Any]]) -> None:
    """Every event in order from 1, linked to its predecessor, its hash over its own content."""
    expected_seq, prev_hash = 1, GENESIS_HASH
    for record in records:
        seq = record["seq"]
        if seq < expected_seq:
            raise TamperFound(f"event {seq} appears twice (an event was added?)", seq=seq)
        if seq != expected_seq:
            raise TamperFound(f"sequence gap: expected event {expected_seq}, found {seq} (events deleted?)", seq=seq)
        if record["prev_hash"] != prev_hash:
            raise TamperFound(f"event {seq} does not link to event {seq - 1} (events deleted or reordered?)", seq=seq)
        if record_hash(record) != record["hash"]:
            raise TamperFound(
                f"event {seq} ({record['plan_id']} {record['step']}) was changed: its hash does not match its content", seq=seq
            )
        if record["event_id"] != event_id_for(record["plan_id"], record["step"]):
            raise TamperFound(f"event {seq} has an id that does not belong to its plan and step", seq=seq)
        expected_seq, prev_hash = seq + 1, record["hash"]


def check_digest_chain(digests: Sequence[Digest]) -> None:
    """Digests numbered from 1 with no gap, each sealed by its hash, linked to the one before, and
    covering the events right after the one before."""
    previous: Digest | None = None
    for digest in digests:
        n = digest.digest_seq
        expected = previous.digest_seq + 1 if previous else 1
        if n < expected:
            raise TamperFound(f"digest {n} appears twice", digest=n)
        if n != expected:
            after = f"digest {n} follows digest {expected - 1}" if previous else f"the first digest is {n}"
            raise TamperFound(f"digest chain gap: digest {expected} is missing ({after})", digest=expected)
        if _digest_hash(digest) != digest.hash:
            raise TamperFound(f"digest {n} was changed: its hash does not match its content", digest=n)
        if digest.prev_digest_hash != (previous.hash if previous else GENESIS_HASH):
            raise TamperFound(f"digest {n} does not link to digest {n - 1}", digest=n)
        first = previous.last_seq + 1 if previous else 1
        if digest.first_seq != first:
            raise TamperFound(
                f"digest {n} starts at event {digest.first_seq}, not at event {first} where digest {n - 1} left off", digest=n
            )
        previous = digest


def check_store(records: Sequence[Mapping[str, Any]], digests: Sequence[Digest], expected_plans: Iterable[str] = ()) -> None:
    """One store's events against the digests that should hold for it.

    Order matters for the message: a plan with no event left is named as such before the chain check
    reports the hole it leaves; the chain check names an edited or deleted event before the digests
    report the head they no longer match.
    """
    present = {r["plan_id"] for r in records}
    for plan_id, seq, digest in _plans_named(digests, expected_plans):
        if plan_id not in present:
            source = f"digest {digest} records its event {seq}" if digest else "the local log has its events"
            raise TamperFound(
                f"plan {plan_id} is missing: {source}, and no event of the plan is left (plan deleted?)", seq=seq, digest=digest
            )
    check_chain(records)
    by_seq = {r["seq"]: r for r in records}
    last = records[-1]["seq"] if records else 0
    for digest in digests:
        n = digest.digest_seq
        if digest.last_seq > last:
            raise TamperFound(
                f"the events end at {last}, but digest {n} covers events up to {digest.last_seq} (newest events deleted?)",
                seq=last + 1,
                digest=n,
            )
        if by_seq[digest.last_seq]["hash"] != digest.head_hash:
            raise TamperFound(
                f"event {digest.last_seq} is not the one digest {n} recorded: the chain was rewritten", seq=digest.last_seq, digest=n
            )
        for plan_id, head in digest.plans.items():
            record = by_seq.get(head.seq)
            if record is None or record["plan_id"] != plan_id or record["hash"] != head.hash:
                raise TamperFound(
                    f"event {head.seq} of plan {plan_id} is not the one digest {n} recorded: the chain was rewritten",
                    seq=head.seq,
                    digest=n,
                )


def _plans_named(digests: Sequence[Digest], expected_plans: Iterable[str]) -> list[tuple[str, int | None, int | None]]:
    named = {plan_id: (None, None) for plan_id in expected_plans}
    for digest in digests:
        for plan_id, head in digest.plans.items():
            named.setdefault(plan_id, (head.seq, digest.digest_seq))
    return sorted(((p, s, d) for p, (s, d) in named.items()), key=lambda item: (item[1] or 0, item[0]))


def check_mirror(records: Sequence[Mapping[str, Any]], source: Mapping[int, Mapping[str, Any]], written_up_to: int) -> None:
    """A mirror (DynamoDB, S3) against the local log it copies: everything written to it is still
    there, nothing is there that the source lacks, and each event is the source's event."""
    last = records[-1]["seq"] if records else 0
    if last < written_up_to:
        raise TamperFound(f"events {last + 1}–{written_up_to} were written here but are gone (newest events deleted?)", seq=last + 1)
    for record in records:
        original = source.get(record["seq"])
        if original is None:
            raise TamperFound(f"event {record['seq']} is not on the local log (added?)", seq=record["seq"])
        if original["hash"] != record["hash"]:
            raise TamperFound(
                f"event {record['seq']} differs from the local log's event {record['seq']}: the mirror was rewritten", seq=record["seq"]
            )
