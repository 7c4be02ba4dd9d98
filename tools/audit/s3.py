"""Digests (and, optionally, events) written to an S3 bucket under Object Lock, where nobody — not even
the account root — can delete or overwrite them until their retention date.

Each object is written once: `If-None-Match: *` makes a second write of the same key fail instead of
adding a version, and each carries a COMPLIANCE-mode retention date. Reading for verification takes
the bucket's word for nothing: every key must have exactly one version and no delete marker, and
`head_object` on that version must show the COMPLIANCE lock (terraform/s3.tf sets the same mode as the
bucket's default; tests/test_terraform.py checks they agree).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from tools.audit.chain import RECORD_FIELDS, Digest, EventRecord, TamperFound, canonical_json, parse_digest

LOCK_MODE = "COMPLIANCE"
DIGEST_PREFIX = "digests/"
EVENT_PREFIX = "events/"
_KEY = re.compile(r"^(?P<prefix>digests/|events/)(?P<n>\d{12})\.json$")


def object_key(prefix: str, number: int) -> str:
    """Zero-padded, so listing order is chain order."""
    return f"{prefix}{number:012d}.json"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class S3AuditArchive:
    """The digest chain in a bucket with Object Lock: the anchor `agentops audit verify` trusts."""

    def __init__(self, client: Any, bucket: str, retention_days: int, clock: Callable[[], datetime] = _utc_now):
        self.client = client
        self.bucket = bucket
        self.retention = timedelta(days=retention_days)
        self.clock = clock
        self.name = f"s3:{bucket}"

    # --- writing -------------------------------------------------------------------------------

    def put_digest(self, digest: Digest) -> bool:
        return self.put_locked(object_key(DIGEST_PREFIX, digest.digest_seq), digest.body())

    def put_locked(self, key: str, body: str) -> bool:
        """Write `key` once, locked; False if it is already there (a replay)."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body.encode(),
                ContentType="application/json",
                IfNoneMatch="*",
                ObjectLockMode=LOCK_MODE,
                ObjectLockRetainUntilDate=self.clock() + self.retention,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False
            raise
        return True

    # --- reading, checked ------------------------------------------------------------------------

    def digests(self, warnings: list[str]) -> list[Digest]:
        digests = []
        for number, key, body in self.read_locked(DIGEST_PREFIX, warnings):
            digest = parse_digest(body, key)
            if digest.digest_seq != number:
                raise TamperFound(f"{key} holds digest {digest.digest_seq}, not digest {number}", digest=number)
            digests.append(digest)
        return digests

    def read_locked(self, prefix: str, warnings: list[str]) -> list[tuple[int, str, bytes]]:
        """(number, key, body) of every object under `prefix`, in order, each confirmed written once and
        locked in COMPLIANCE mode. Raises TamperFound at the first object that is not."""
        versions, deleted = self._versions(prefix)
        found = []
        for key in sorted(set(versions) | deleted):
            number = _number(key, prefix)
            where = {"digest": number} if prefix == DIGEST_PREFIX else {"seq": number}
            if key in deleted:
                raise TamperFound(f"{key} was deleted: a delete marker hides it (its locked version is kept)", **where)
            if len(versions[key]) > 1:
                raise TamperFound(f"{key} was overwritten: it has {len(versions[key])} versions", **where)
            version = versions[key][0]
            self._check_lock(key, version, warnings, where)
            body = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version)["Body"].read()
            found.append((number, key, body))
        return found

    def _versions(self, prefix: str) -> tuple[dict[str, list[str]], set[str]]:
        versions: dict[str, list[str]] = defaultdict(list)
        deleted: set[str] = set()
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                versions[version["Key"]].append(version["VersionId"])
            deleted.update(marker["Key"] for marker in page.get("DeleteMarkers", []))
        return versions, deleted

    def _check_lock(self, key: str, version: str, warnings: list[str], where: dict[str, int]) -> None:
        # head_object, not get_object_retention: the lock headers come with it (and moto's
        # get_object_retention is broken).
        head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version)
        mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
        if mode != LOCK_MODE or until is None:
            raise TamperFound(f"{key} is not locked in {LOCK_MODE} mode (lock: {mode or 'none'}): it could be deleted", **where)
        if until <= self.clock():
            warnings.append(f"{key}: its lock expired on {until:%Y-%m-%d}; it can now be deleted")


class S3EventStore:
    """Events as locked objects in the archive's bucket: an optional second copy of the chain that,
    unlike the DynamoDB table, nobody can edit."""

    def __init__(self, archive: S3AuditArchive):
        self.archive = archive
        self.name = f"{archive.name}/{EVENT_PREFIX.rstrip('/')}"

    def put(self, record: EventRecord) -> bool:
        return self.archive.put_locked(object_key(EVENT_PREFIX, record["seq"]), canonical_json(record))

    def records(self, warnings: list[str]) -> list[EventRecord]:
        records = []
        for number, key, body in self.archive.read_locked(EVENT_PREFIX, warnings):
            try:
                record = json.loads(body)
            except ValueError:
                record = None
            if not isinstance(record, dict) or set(record) != set(RECORD_FIELDS):
                raise TamperFound(f"{key} is not a valid event", seq=number)
            if record["seq"] != number:
                raise TamperFound(f"{key} holds event {record['seq']}, not event {number}", seq=number)
            records.append(record)
        return records


def _number(key: str, prefix: str) -> int:
    match = _KEY.match(key)
    if not match or match["prefix"] != prefix:
        raise TamperFound(f"unexpected object {key} under {prefix}")
    return int(match["n"])
