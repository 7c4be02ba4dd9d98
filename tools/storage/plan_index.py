"""The plan index: one row per plan (status, env, requester, timestamps), in SQLite or Postgres
(tools/storage/database.py: the same SQL on both).

LangGraph has no "list threads" API; lists and the approvals queue read this table, never a scan of
checkpoints. Human decisions live in a second table, one row per decision in numbered slots: a decision
is a conditional insert (the plan pending and unexpired, the approver not the requester) checked by its
row count, and the slot and approver constraints make of racing approvers exactly one win each slot —
and no one fill two. Racing decisions on one plan also queue on a per-plan write lock (across processes
and replicas), and the move to approved/rejected is itself conditional on the plan still pending. The plan's status moves to approved once enough slots hold approvals (policy
`approval.approvers_required`), to rejected on the first rejection.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from agentops.policy import person_key
from agentops.schemas import TERMINAL_STATUSES, Decision, Deployed, PlanSummary
from tools.storage.database import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    plan_id       TEXT PRIMARY KEY,
    env           TEXT NOT NULL,
    requester     TEXT NOT NULL,
    intent        TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    expires_at    TEXT,
    endpoint_name TEXT,
    peak_cost_usd REAL,
    decision      TEXT
);
CREATE INDEX IF NOT EXISTS plans_status ON plans (status, created_at);
CREATE TABLE IF NOT EXISTS decisions (
    plan_id      TEXT NOT NULL REFERENCES plans (plan_id),
    slot         INTEGER NOT NULL,   -- 1 for a plan's first decision, 2 for its second, ...
    approver     TEXT NOT NULL,
    approver_key TEXT NOT NULL,      -- lower-cased approver: one person never fills two slots
    approved     INTEGER NOT NULL,
    decision     TEXT NOT NULL,      -- the Decision as JSON
    PRIMARY KEY (plan_id, slot),
    UNIQUE (plan_id, approver_key)
);
-- A run being driven: marked before the graph moves, cleared once it paused or ended. A mark left behind
-- names a run a process died in (kill -9, a lost database): start-up continues or fails it.
CREATE TABLE IF NOT EXISTS plan_runs (
    plan_id     TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL
);
-- Deployments that ended `deployed`, one row per plan: the newest on an endpoint not ended since (by a
-- rollback plan or a teardown, named in ended_by) is what runs there, as far as AgentOps knows, and what
-- a later plan for that endpoint starts from (agentops/updates.py).
CREATE TABLE IF NOT EXISTS deployments (
    plan_id       TEXT PRIMARY KEY,
    env           TEXT NOT NULL,
    endpoint_name TEXT NOT NULL,
    config        TEXT NOT NULL,     -- the DeploymentConfig as JSON
    deployed_at   TEXT NOT NULL,
    ended_by      TEXT               -- the rollback or teardown plan that ended it
);
CREATE INDEX IF NOT EXISTS deployments_endpoint ON deployments (env, endpoint_name, deployed_at);
-- Idempotency-Key of a POST: per caller, the plan it named and a hash of the request it came with.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope         TEXT NOT NULL,     -- who sent it (person_key of the caller) and what for
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    plan_id       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
"""

# Once a human has decided (or the request expired), the workflow's own progress reports may move the
# plan forward but never back to waiting for a decision.
_DECIDED = tuple(sorted(TERMINAL_STATUSES | {"approved", "deploying"}))


class PlanIndex:
    """Implements agentops.ports.PlanRecorder, plus the queries and the decision the front ends need."""

    def __init__(self, db: Path | str | Database):
        self.db = Database.of(db)
        self.path = self.db.path  # the SQLite file (None on Postgres)
        with self.db.connect() as conn:
            conn.script(_SCHEMA)  # idempotent: the migration every process runs at start-up

    def _execute(self, sql: str, params: tuple = ()) -> int:
        with self.db.connect() as conn:
            return conn.execute(sql, params).rowcount

    def _select(self, sql: str, params: tuple = ()) -> list[Any]:
        with self.db.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def record(self, state: dict[str, Any]) -> None:
        """Upsert a plan's row from workflow state (called by the audit node at every transition), and
        keep what runs on its endpoint: a deployment joins it, a rollback or teardown ends it.

        No transaction of its own: each statement is idempotent, the audit node's pass already is one
        transaction where the log and the index share a database, and this runs on every transition."""
        self._record_row(state)
        self._record_deployment(state)

    def _record_row(self, state: dict[str, Any]) -> None:
        config = state.get("config") or {}
        report = state.get("report") or {}
        now = state.get("updated_at") or state["created_at"]
        self._execute(
            """
            INSERT INTO plans (plan_id, env, requester, intent, status, created_at, updated_at, expires_at,
                               endpoint_name, peak_cost_usd, decision)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (plan_id) DO UPDATE SET
                status = excluded.status, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
                endpoint_name = excluded.endpoint_name, peak_cost_usd = excluded.peak_cost_usd,
                decision = COALESCE(excluded.decision, plans.decision)
            WHERE NOT (plans.status IN ({}) AND excluded.status IN ('planning', 'pending_approval'))
            """.format(", ".join("?" * len(_DECIDED))),
            (
                state["plan_id"],
                state["env"],
                state["requester"],
                state["intent"],
                state["status"],
                state["created_at"],
                now,
                state.get("expires_at"),
                config.get("endpoint_name"),
                report.get("peak_cost_usd"),
                json.dumps(state["decision"]) if state.get("decision") else None,
                *_DECIDED,
            ),
        )

    def _record_deployment(self, state: dict[str, Any]) -> None:
        """Idempotent, as every audit pass is: a plan joins once, and ends at most what stood before it."""
        config, status = state.get("config") or {}, state.get("status")
        endpoint, action = config.get("endpoint_name"), config.get("action", "deploy")
        if not endpoint:
            return
        plan_id, env, now = state["plan_id"], state["env"], state.get("updated_at") or state["created_at"]
        if status == "deployed" and action == "deploy":
            self._execute(
                "INSERT INTO deployments (plan_id, env, endpoint_name, config, deployed_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (plan_id) DO NOTHING",
                (plan_id, env, endpoint, json.dumps(config, sort_keys=True), now),
            )
        elif status == "torn_down" and action == "teardown":
            self._execute(
                "UPDATE deployments SET ended_by = ? WHERE env = ? AND endpoint_name = ? AND ended_by IS NULL",
                (plan_id, env, endpoint),
            )
        elif status == "rolled_back" and action == "rollback":
            # The endpoint returns to the config before the newest deployment: that one ends, once.
            self._execute(
                """
                UPDATE deployments SET ended_by = ?
                WHERE plan_id = (SELECT plan_id FROM deployments WHERE env = ? AND endpoint_name = ? AND ended_by IS NULL
                                 ORDER BY deployed_at DESC, plan_id DESC LIMIT 1)
                  AND NOT EXISTS (SELECT 1 FROM deployments WHERE ended_by = ?)
                """,
                (plan_id, env, endpoint, plan_id),
            )

    def standing(self, env: str, endpoint_name: str, limit: int = 1) -> list[Deployed]:
        rows = self._select(
            "SELECT plan_id, config, deployed_at FROM deployments WHERE env = ? AND endpoint_name = ? AND ended_by IS NULL "
            "ORDER BY deployed_at DESC, plan_id DESC LIMIT ?",
            (env, endpoint_name, limit),
        )
        return [Deployed(plan_id=row["plan_id"], deployed_at=row["deployed_at"], config=json.loads(row["config"])) for row in rows]

    def decide(self, plan_id: str, decision: Decision, now: datetime, required: int = 1) -> int | None:
        """Record one decision on a pending, unexpired plan; the slot it filled, or None if it did not count.

        It does not count when the plan is not pending (decided, expired, unknown), the approver is the
        requester, or the approver has decided on this plan already. The plan becomes `rejected` on a
        rejection and `approved` when the `required`-th approval lands; before that it stays pending.
        """
        with self.db.connect() as conn:
            # The per-plan write lock makes the slot count and the insert one step against other approvers
            # of this plan, in any process; the constraints would refuse a duplicate slot or approver anyway.
            conn.begin_write(f"plan-decision:{plan_id}")
            slot = conn.execute("SELECT COUNT(*) + 1 AS slot FROM decisions WHERE plan_id = ?", (plan_id,)).fetchone()["slot"]
            inserted = conn.execute(
                "INSERT INTO decisions (plan_id, slot, approver, approver_key, approved, decision) "
                "SELECT plan_id, ?, ?, ?, ?, ? FROM plans "
                "WHERE plan_id = ? AND status = 'pending_approval' AND lower(trim(requester)) <> ? "
                "AND (expires_at IS NULL OR expires_at > ?) "
                "ON CONFLICT DO NOTHING",
                (
                    slot,
                    decision.approver,
                    person_key(decision.approver),
                    int(decision.approved),
                    decision.model_dump_json(),
                    plan_id,
                    person_key(decision.approver),
                    now.isoformat(),
                ),
            )
            if inserted.rowcount != 1:
                conn.rollback()
                return None
            if not decision.approved or slot >= required:
                # Conditional on the plan still pending: the one transition out of pending_approval.
                moved = conn.execute(
                    "UPDATE plans SET status = ?, decision = ?, updated_at = ? WHERE plan_id = ? AND status = 'pending_approval'",
                    ("approved" if decision.approved else "rejected", decision.model_dump_json(), now.isoformat(), plan_id),
                )
                if moved.rowcount != 1:
                    conn.rollback()
                    return None
            conn.commit()
            return slot

    def decisions(self, plan_id: str) -> list[Decision]:
        """A plan's decisions in the order they were made (slot 1 first)."""
        rows = self._select("SELECT decision FROM decisions WHERE plan_id = ? ORDER BY slot", (plan_id,))
        return [Decision.model_validate_json(row["decision"]) for row in rows]

    def expire(self, plan_id: str, now: datetime) -> bool:
        """Mark one overdue pending plan expired. True if this call expired it."""
        return (
            self._execute(
                "UPDATE plans SET status = 'expired', updated_at = ? WHERE plan_id = ? AND status = 'pending_approval' AND expires_at <= ?",
                (now.isoformat(), plan_id, now.isoformat()),
            )
            == 1
        )

    def overdue(self, now: datetime) -> list[str]:
        rows = self._select("SELECT plan_id FROM plans WHERE status = 'pending_approval' AND expires_at <= ?", (now.isoformat(),))
        return [row["plan_id"] for row in rows]

    def get(self, plan_id: str) -> PlanSummary | None:
        rows = self._select("SELECT * FROM plans WHERE plan_id = ?", (plan_id,))
        return _summary(rows[0]) if rows else None

    def list(
        self, status: str | None = None, env: str | None = None, requester: str | None = None, limit: int = 100, sort: str = "created"
    ) -> list[PlanSummary]:
        """Plans, newest first (`sort="created"`) or the soonest approval deadline first (`sort="expires"`)."""
        clauses, params = [], []
        for column, value in (("status", status), ("env", env), ("requester", requester)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._select(f"SELECT * FROM plans {where} ORDER BY {_ORDER[sort]} LIMIT ?", (*params, limit))
        return [_summary(row) for row in rows]

    def resolve_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of the plans whose id starts with `prefix` (at most `limit`, newest first): one id means unique."""
        rows = self._select(
            "SELECT plan_id FROM plans WHERE substr(plan_id, 1, ?) = ? ORDER BY created_at DESC, plan_id LIMIT ?",
            (len(prefix), prefix, limit),
        )
        return [row["plan_id"] for row in rows]

    # --- runs in flight ---------------------------------------------------------------------------------

    def mark_running(self, plan_id: str, now: datetime) -> None:
        self._execute("INSERT INTO plan_runs (plan_id, started_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (plan_id, now.isoformat()))

    def clear_running(self, plan_id: str) -> None:
        self._execute("DELETE FROM plan_runs WHERE plan_id = ?", (plan_id,))

    def running(self) -> list[str]:
        """Plans marked as being driven: by a live process, or by one that died mid-run."""
        return [row["plan_id"] for row in self._select("SELECT plan_id FROM plan_runs ORDER BY started_at")]

    # --- idempotency keys ---------------------------------------------------------------------------

    def claim_key(self, scope: str, key: str, request_hash: str, plan_id: str, now: datetime) -> tuple[str, str]:
        """Store `key` for `plan_id` unless the scope used it already; (plan_id, request_hash) of its first
        use. One statement inserts (racing claims: one wins), a second reads the winner."""
        with self.db.connect() as conn:
            conn.execute(
                "INSERT INTO idempotency_keys (scope, key, request_hash, plan_id, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (scope, key, request_hash, plan_id, now.isoformat()),
            )
            row = conn.execute("SELECT plan_id, request_hash FROM idempotency_keys WHERE scope = ? AND key = ?", (scope, key)).fetchone()
        return row["plan_id"], row["request_hash"]


_ORDER = {
    "created": "created_at DESC, plan_id",
    # Plans without a deadline (never asked for approval) after those with one.
    "expires": "CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, created_at, plan_id",
}


def _summary(row: Any) -> PlanSummary:
    data = dict(row)
    data["decision"] = json.loads(data["decision"]) if data["decision"] else None
    return PlanSummary.model_validate(data)


SqlitePlanIndex = PlanIndex  # the name from before Postgres: same class, a path still selects SQLite
