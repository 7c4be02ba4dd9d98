"""Audit events mirrored to a DynamoDB table, for queries.

Key design (terraform/dynamodb.tf builds exactly `table_definition()`; tests/test_terraform.py checks):
- table key `plan_id` (hash) + `seq` (range): "all events of a plan, in order" is one Query;
- global secondary index `by_day`, key `day` (UTC date of the event) + `seq`: "events of a day", in
  order, is one Query. A day's events share one index partition; at a deployment orchestrator's rate
  (a handful of events per plan) that is far below a partition's write limit.

Every put is conditional on the item not existing, so a replay writes nothing twice and nothing is
ever overwritten; the payload is stored as the canonical JSON text the hash was computed over, so any
reader can recompute the chain from the table alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tools.audit.chain import EventRecord, TamperFound, day_of

PARTITION_KEY = "plan_id"
SORT_KEY = "seq"
DAY_INDEX = "by_day"
DAY_KEY = "day"
_STRING_FIELDS = tuple(f for f in EventRecord.__annotations__ if f != SORT_KEY)


def table_definition(table: str) -> dict[str, Any]:
    """The table this module expects, as `create_table` arguments (tests create it on moto from this)."""
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "N"},
            {"AttributeName": DAY_KEY, "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": DAY_INDEX,
                "KeySchema": [{"AttributeName": DAY_KEY, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "DeletionProtectionEnabled": True,
    }


def _item(record: EventRecord) -> dict[str, dict[str, str]]:
    item = {f: {"S": record[f]} for f in _STRING_FIELDS}  # type: ignore[literal-required]
    return item | {SORT_KEY: {"N": str(record["seq"])}, DAY_KEY: {"S": day_of(record["ts"])}}


def _record(item: dict[str, dict[str, str]]) -> EventRecord:
    """An item back to a record; an item someone stripped of a field is reported, not a crash."""
    where = f"item ({item.get(PARTITION_KEY, {}).get('S', '?')}, {item.get(SORT_KEY, {}).get('N', '?')})"
    try:
        values: dict[str, Any] = {f: item[f]["S"] for f in _STRING_FIELDS}
        values[SORT_KEY] = int(item[SORT_KEY]["N"])
        day = day_of(values["ts"])
    except (KeyError, ValueError) as exc:
        raise TamperFound(f"{where} is missing or garbles an attribute ({exc})") from None
    # `day` is not hashed (it is derived from `ts`), so it is checked here: a changed day would hide the
    # event from the day index without breaking the chain.
    if item.get(DAY_KEY, {}).get("S") != day:
        raise TamperFound(f"{where} has a day that does not match its time {values['ts']}", seq=values[SORT_KEY])
    return EventRecord(**values)  # type: ignore[typeddict-item]


class DynamoEventStore:
    """One remote copy of the chain (see tools/audit/trail.py) in a DynamoDB table."""

    def __init__(self, client: Any, table: str):
        self.client = client
        self.table = table
        self.name = f"dynamodb:{table}"

    def put(self, record: EventRecord) -> bool:
        """Write one event; False if an item with its key is already there (a replay)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_item(record),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def records(self, warnings: list[str] | None = None) -> list[EventRecord]:
        """Every item, in chain order. A scan on purpose: verification must see items added under any
        key, not only the ones a query would find."""
        pages = self.client.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
        return sorted((_record(item) for page in pages for item in page["Items"]), key=lambda r: r["seq"])

    def plan_records(self, plan_id: str) -> list[EventRecord]:
        """All events of a plan, in order: one query on the table key."""
        return list(
            self._query(
                KeyConditionExpression="#k = :v",
                ExpressionAttributeNames={"#k": PARTITION_KEY},
                ExpressionAttributeValues={":v": {"S": plan_id}},
                ConsistentRead=True,
            )
        )

    def day_records(self, day: str) -> list[EventRecord]:
        """Events of one UTC day (YYYY-MM-DD), in order: one query on the day index."""
        return list(
            self._query(
                IndexName=DAY_INDEX,
                KeyConditionExpression="#k = :v",
                ExpressionAttributeNames={"#k": DAY_KEY},
                ExpressionAttributeValues={":v": {"S": day}},
            )
        )

    def _query(self, **params: Any) -> Iterator[EventRecord]:
        for page in self.client.get_paginator("query").paginate(TableName=self.table, **params):
            yield from (_record(item) for item in page["Items"])
