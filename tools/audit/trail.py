"""The audit trail: the local SQLite log, mirrored to AWS, verified as a whole.

Write path (`append`, the AuditSink the audit node calls):
1. the event goes onto the local chain and is committed — the local log is the source of truth;
2. then every remote copy is caught up from where it was last known to be (`audit_sync` in the local
   database): events to the DynamoDB table (and optionally to S3), digests to the S3 Object Lock bucket.
A remote failure is logged and swallowed: the event is already safe locally, the chain is untouched,
and the next append or `agentops audit sync` writes what is missing. Every remote write is
conditional (DynamoDB `attribute_not_exists`, S3 `If-None-Match`), so a catch-up or a replay never
writes anything twice and never overwrites.

Verification (`verify`) checks, and names the first thing wrong:
1. the digest chain: the locked copy in S3 when there is one (one version per object, COMPLIANCE lock
   confirmed with head_object, no gap, every link), agreeing with the local digests;
2. the local log against it: its chain, and every head the digests pinned;
3. each remote copy the same way, and against the local log: all that was written to it still there,
   every event identical, nothing added.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from agentops.errors import AgentOpsError, EnvironmentProblem
from agentops.settings import Settings
from tools.audit.chain import (
    AuditEvent,
    Digest,
    EventRecord,
    TamperFound,
    VerifyResult,
    check_digest_chain,
    check_mirror,
    check_store,
    parse_time,
)
from tools.audit.dynamodb import DynamoEventStore
from tools.audit.local import LOCAL_STORE, SqliteAuditLog
from tools.audit.s3 import S3AuditArchive, S3EventStore
from tools.sagemaker.aws import AwsClients, one_line

logger = logging.getLogger("agentops.audit")

_REMOTE_ERRORS = (BotoCoreError, ClientError, TamperFound)
# After a failed catch-up, appends leave AWS alone this long: an outage must not make every transition
# wait out botocore's timeouts. The events wait safely in the local log.
RETRY_AFTER_FAILURE = timedelta(seconds=60)


class EventMirror(Protocol):
    name: str

    def put(self, record: EventRecord) -> bool: ...

    def records(self, warnings: list[str]) -> list[EventRecord]: ...


class SyncReport(BaseModel):
    written: dict[str, int] = Field(default_factory=dict)  # target -> items newly written by this sync
    errors: list[str] = Field(default_factory=list)  # one line per target that could not be caught up


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditTrail:
    """Implements agentops.ports.AuditSink."""

    def __init__(
        self,
        log: SqliteAuditLog,
        mirrors: list[EventMirror] | None = None,
        archive: S3AuditArchive | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ):
        self.log = log
        self.mirrors = list(mirrors or [])
        self.archive = archive
        self.clock = clock
        # Until a sync succeeds in this process, assume an earlier process left something unwritten.
        self._behind = True
        self._quiet_until = datetime.min.replace(tzinfo=UTC)

    @property
    def _digest_target(self) -> str:
        return f"{self.archive.name}/digests" if self.archive else ""

    # --- writing -------------------------------------------------------------------------------

    def append(self, plan_id: str, step: str, actor: str, payload: dict[str, Any]) -> bool:
        written = self.log.append(plan_id, step, actor, payload)
        if (written or self._behind) and (self.mirrors or self.archive) and self.clock() >= self._quiet_until:
            errors = self.sync().errors
            if errors:
                self._quiet_until = self.clock() + RETRY_AFTER_FAILURE
            for error in errors:
                logger.warning("audit event kept in the local log; remote copy not written: %s (run `agentops audit sync`)", error)
        return written

    def digest(self) -> tuple[Digest | None, SyncReport]:
        """Digest the events since the last digest (if any), then publish whatever is pending."""
        made = self.log.digest()
        return made, self.sync()

    def sync(self) -> SyncReport:
        """Write to every remote copy what it does not have yet. Each target is caught up on its own:
        one that fails does not hold the others back."""
        report = SyncReport()
        for mirror in self.mirrors:
            self._catch_up(report, mirror.name, self.log.records, mirror.put, lambda r: r["seq"])
        if self.archive:
            self._catch_up(report, self._digest_target, self.log.digests, self.archive.put_digest, lambda d: d.digest_seq)
        self._behind = bool(report.errors)
        return report

    def _catch_up(
        self, report: SyncReport, target: str, pending: Callable[[int], list[Any]], put: Callable[[Any], bool], number: Callable[[Any], int]
    ) -> None:
        report.written[target] = 0
        try:
            for item in pending(self.log.synced(target)):
                report.written[target] += put(item)
                self.log.mark_synced(target, number(item))  # after each item: a failure keeps what got through
        except _REMOTE_ERRORS as exc:
            report.errors.append(f"{target}: {one_line(str(exc)) or type(exc).__name__}")

    # --- verification --------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        """Every store, in the order the module docstring gives; the first problem found.

        Reads go from the furthest copy inwards (how far a copy was written, then the copy, then the
        local log), so a process appending and syncing meanwhile can only make a copy look *behind*,
        never make it look tampered with.
        """
        warnings: list[str] = []
        records: list[EventRecord] = []
        digests: list[Digest] = []
        try:
            published: list[Digest] = []
            if self.archive:
                with _checking(self.archive.name):
                    promised = self.log.synced(self._digest_target)
                    published = self.archive.digests(warnings)
                    check_digest_chain(published)
                    if len(published) < promised:
                        raise TamperFound(
                            f"digests {len(published) + 1}–{promised} were published but are not in the bucket", digest=len(published) + 1
                        )
            with _checking(LOCAL_STORE):
                # Digests before events: an append racing with us can then only add events no digest names.
                digests = self.log.digests()
                records = self.log.records()
                check_digest_chain(digests)
            if self.archive:
                with _checking(self.archive.name):
                    digests = self._anchor(published, digests, warnings)
            with _checking(LOCAL_STORE):
                check_store(records, digests)
            source = {r["seq"]: r for r in records}
            for mirror in self.mirrors:
                with _checking(mirror.name):
                    self._check_mirror(mirror, source, digests, warnings)
        except TamperFound as found:
            return VerifyResult(
                ok=False,
                events=len(records),
                digests=len(digests),
                problem=f"{found.store}: {found.problem}",
                seq=found.seq,
                digest=found.digest,
                store=found.store,
                stores=self.stores,
                warnings=warnings,
            )
        last_digested = digests[-1].last_seq if digests else 0
        return VerifyResult(
            ok=True,
            events=len(records),
            digests=len(digests),
            undigested=len(records) - last_digested,
            stores=self.stores,
            warnings=warnings,
        )

    @property
    def stores(self) -> list[str]:
        return [LOCAL_STORE] + ([self.archive.name] if self.archive else []) + [m.name for m in self.mirrors]

    def _anchor(self, published: list[Digest], local: list[Digest], warnings: list[str]) -> list[Digest]:
        """The digests to trust: the locked ones in S3 (already checked), then local ones not published yet."""
        mine = {d.digest_seq: d for d in local}
        for digest in published:
            n = digest.digest_seq
            if n not in mine:
                raise TamperFound(f"digest {n} is in the bucket but not in the local log (local digests deleted?)", digest=n)
            if mine[n].hash != digest.hash:
                raise TamperFound(f"local digest {n} differs from its locked copy in the bucket (local digests rewritten?)", digest=n)
        unpublished = [d for d in local if d.digest_seq > len(published)]
        if unpublished:
            warnings.append(
                f"{len(unpublished)} digest(s) not yet in {self.archive.name if self.archive else 'the bucket'}: run `agentops audit sync`"
            )
        anchor = published + unpublished
        check_digest_chain(anchor)  # the unpublished ones must continue the locked chain
        return anchor

    def _check_mirror(self, mirror: EventMirror, source: dict[int, EventRecord], digests: list[Digest], warnings: list[str]) -> None:
        written = self.log.synced(mirror.name)  # first: the mirror must hold at least this much
        records = mirror.records(warnings)
        if records and records[-1]["seq"] > max(source, default=0):  # appended and synced since we read the log
            source = source | {r["seq"]: r for r in self.log.records(after=max(source, default=0))}
        expected_plans = {r["plan_id"] for seq, r in source.items() if seq <= written}
        check_store(records, [d for d in digests if d.last_seq <= written], expected_plans)
        check_mirror(records, source, written)
        behind = len(source) - len(records)
        if behind > 0:
            warnings.append(f"{mirror.name} is {behind} event(s) behind the local log: run `agentops audit sync`")

    # --- reading -------------------------------------------------------------------------------

    def export(self, since: datetime, until: datetime | None = None, source: str = "local") -> list[AuditEvent]:
        """Events with since <= ts < until, in chain order, from the local log or the DynamoDB table
        (read through its day index: one query per day)."""
        until = until or self.clock() + timedelta(seconds=1)
        if source == "local":
            records = self.log.records()
        elif source == "dynamodb":
            records = self._dynamodb_days(since, until)
        else:
            raise AgentOpsError(f"unknown export source '{source}': expected local or dynamodb")
        return [AuditEvent.from_record(r) for r in records if since <= parse_time(r["ts"]) < until]

    def _dynamodb_days(self, since: datetime, until: datetime) -> list[EventRecord]:
        table = next((m for m in self.mirrors if isinstance(m, DynamoEventStore)), None)
        if table is None:
            raise AgentOpsError("no DynamoDB table is configured: set AGENTOPS_AUDIT_DYNAMODB_TABLE")
        records: list[EventRecord] = []
        with _checking(table.name):
            try:
                day = since.date()
                while day <= until.date():
                    records += table.day_records(day.isoformat())
                    day += timedelta(days=1)
            except TamperFound as found:
                raise AgentOpsError(f"{table.name} looks tampered with ({found.problem}): run `agentops audit verify`") from None
        return sorted(records, key=lambda r: r["seq"])


@contextmanager
def _checking(store: str) -> Iterator[None]:
    """Name the store a problem was found in; an unreachable store is an error, not a verdict."""
    try:
        yield
    except TamperFound as found:
        found.store = found.store or store
        raise
    except (BotoCoreError, ClientError) as exc:
        raise EnvironmentProblem(f"cannot read {store}: {one_line(str(exc)) or type(exc).__name__}") from None


# --- from settings -----------------------------------------------------------------------------------


def build_audit_trail(settings: Settings, clock: Callable[[], datetime] = _utc_now) -> AuditTrail:
    """The local log, plus the AWS copies the settings name, through the same clients execute mode uses
    (boto3's credential chain, AGENTOPS_AWS_REGION / _ENDPOINT_URL / _MAX_ATTEMPTS)."""
    log = SqliteAuditLog(settings.database, clock=clock, digest_every=settings.audit_digest_every)
    mirrors: list[EventMirror] = []
    archive = None
    if settings.audit_dynamodb_table or settings.audit_s3_bucket:
        clients = AwsClients(settings)
        if settings.audit_dynamodb_table:
            mirrors.append(DynamoEventStore(clients("dynamodb"), settings.audit_dynamodb_table))
        if settings.audit_s3_bucket:
            archive = S3AuditArchive(clients("s3"), settings.audit_s3_bucket, settings.audit_retention_days, clock)
            if settings.audit_s3_events:
                mirrors.append(S3EventStore(archive))
    return AuditTrail(log, mirrors, archive, clock)
