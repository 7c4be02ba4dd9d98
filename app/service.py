"""What the front ends (the CLI and the HTTP service) ask of AgentOps, on top of the compiled workflow.

Input is checked here before anything runs, so bad input changes nothing. Decisions go through the plan
index's conditional update first (one winner among racing approvers), then resume the paused run.

One plan's thread is driven by one caller at a time: an asyncio lock per plan within a process, and the
database's lock on the plan (Postgres: an advisory lock) across processes and replicas. `resume` /
`recover` finish what a process that died left unfinished, from the last checkpoint and the index.

Each command has a synchronous form (CLI: `invoke`/`get_state` on SqliteSaver) and an async one (HTTP:
`astream`/`aget_state` on AsyncSqliteSaver; `astream` is `ainvoke` that also reports each node). The
checks live in the shared `_`-methods below; the two forms differ only in how they drive the graph.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agentops.approval import APPROVER_ROLES, Answer, Caller, check_answer, check_approver, parse_answer
from agentops.errors import AgentOpsError, Conflict, NotFound
from agentops.guardrails import check_config
from agentops.intake import check_request
from agentops.ports import Dependencies
from agentops.schemas import Decision, GuardrailReport, PlanSummary
from agentops.settings import Settings
from graph.context import run_config
from graph.state import PlanState
from graph.wiring import build_dependencies, open_async_checkpointer, open_checkpointer
from graph.workflow import build_graph
from nodes.approval import decisions_in
from tools.storage.plan_index import SqlitePlanIndex

# The fields of a plan a person or a script reads; state internals (events) stay out.
_VIEW_FIELDS = (
    "plan_id",
    "status",
    "env",
    "requester",
    "intent",
    "created_at",
    "expires_at",
    "config",
    "change",
    "pinned",
    "reading",
    "question",
    "evidence",
    "planner",
    "decision",
    "deployment",
    "error",
)


def plan_view(state: dict[str, Any]) -> dict[str, Any]:
    report = state.get("report") or {}
    view = {key: state.get(key) for key in _VIEW_FIELDS if key in state}
    view |= {
        "hourly_cost_usd": report.get("hourly_cost_usd"),
        "peak_cost_usd": report.get("peak_cost_usd"),
        "verdict": report.get("verdict"),
        "requires_approval": report.get("requires_approval"),
        "approval_reasons": report.get("approval_reasons", []),
        "approvals": decisions_in(state),
    }
    return view


class RequestExpired(Conflict):
    """The approval request ran out before a decision: the plan ends `expired`, on the record."""


# Called with (plan_id, event) for each LangGraph "tasks" stream event (a node starting or finishing):
# how the HTTP service follows a run for progress streams, metrics and notifications.
TaskObserver = Callable[[str, dict[str, Any]], None]

_EXPIRED = Command(resume={"expired": True})

logger = logging.getLogger("agentops")

# Statuses a plan can be left in by a process that died; `recover` looks at these.
UNFINISHED_STATUSES = ("planning", "pending_approval", "approved", "deploying")
_WAITS_FOR_A_HUMAN = object()  # `_next_input`: nothing to do until someone decides
MIN_ID_PREFIX = 6  # the shortest part of a plan id the CLI accepts (tables never show less)
_MAX_RESUME_STEPS = 20  # a bound on re-driving one plan (each step is one stored decision or one continuation)


def resolve_plan_id(index: SqlitePlanIndex, text: str) -> str:
    """The plan id a person typed: the whole id, or a unique prefix of at least MIN_ID_PREFIX characters."""
    wanted = text.strip()
    if index.get(wanted) is not None:
        return wanted
    if len(wanted) < MIN_ID_PREFIX:
        raise NotFound(f"no plan with id '{text}' (a shortened id needs at least {MIN_ID_PREFIX} characters)")
    matches = index.resolve_prefix(wanted)
    if not matches:
        raise NotFound(f"no plan with id '{text}'")
    if len(matches) > 1:
        more = " (and more)" if len(matches) >= 10 else ""
        raise AgentOpsError(f"'{text}' matches several plans: {', '.join(matches)}{more}; give more characters")
    return matches[0]


class Orchestrator:
    def __init__(self, deps: Dependencies, checkpointer: BaseCheckpointSaver, plan_index: SqlitePlanIndex):
        self.deps = deps
        self.index = plan_index
        self.graph = build_graph(checkpointer)
        # Async callers drive a plan's thread from one task at a time; asyncio locks per plan (dropped when
        # nobody holds or waits for them). Sync callers are one process, one command.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @classmethod
    @contextmanager
    def open(cls, settings: Settings) -> Iterator[Orchestrator]:
        deps = build_dependencies(settings)
        with open_checkpointer(settings) as checkpointer:
            yield cls(deps, checkpointer, deps.plan_index)

    @classmethod
    @asynccontextmanager
    async def aopen(cls, settings: Settings) -> AsyncIterator[Orchestrator]:
        deps = build_dependencies(settings)
        async with open_async_checkpointer(settings) as checkpointer:
            yield cls(deps, checkpointer, deps.plan_index)

    # --- input -----------------------------------------------------------------------------------

    def new_plan(self, intent: str, env: str, requester: str, constraints: dict[str, Any] | None = None) -> PlanState:
        """A checked request as the initial state of a new plan (raises AgentOpsError; nothing runs)."""
        request = check_request(intent, env, requester, constraints, self.deps.policy)
        return PlanState(plan_id=uuid.uuid4().hex, created_at=self.deps.clock().isoformat(), events=[], **request)

    # --- commands --------------------------------------------------------------------------------

    def preview(self, intent: str, env: str, requester: str = "anonymous", constraints: dict[str, Any] | None = None) -> dict[str, Any]:
        """Retrieve, plan, resolve and check with no side effects: the workflow itself, with the same
        routing (re-plan rounds included), run on a throwaway in-memory checkpointer and stopped before
        its first write — the audit node."""
        state = self.new_plan(intent, env, requester, constraints)
        config = self._thread(state["plan_id"], _requester(state))
        dry_graph = build_graph(InMemorySaver(), interrupt_before=["audit"])
        dry_graph.invoke(state, config, context=self.deps)
        # The throwaway run's id names nothing that exists: leave it out rather than invite `show` on it.
        return {k: v for k, v in plan_view(dry_graph.get_state(config).values).items() if k != "plan_id"}

    def validate(self, config: dict[str, Any], env: str) -> GuardrailReport:
        if env not in self.deps.policy.environments:
            raise AgentOpsError(f"unknown environment '{env}': expected one of {', '.join(self.deps.policy.environments)}")
        return check_config(config, env, self.deps.policy)

    def run(self, intent: str, env: str, requester: str, constraints: dict[str, Any] | None = None) -> dict[str, Any]:
        state = self.new_plan(intent, env, requester, constraints)
        self.graph.invoke(state, self._thread(state["plan_id"], _requester(state)), context=self.deps)
        return self.show(state["plan_id"])

    def show(self, plan_id: str) -> dict[str, Any]:
        return self._view(plan_id, self.graph.get_state(self._thread(plan_id)))

    def approvals(self, env: str | None = None, sort: str = "expires") -> list[PlanSummary]:
        """Plans waiting for a decision, the soonest deadline first unless `sort="created"` (newest first)."""
        self.expire_overdue()
        return self.index.list(status="pending_approval", env=env, sort=sort, limit=10_000)

    def plans(
        self, status: str | None = None, env: str | None = None, limit: int = 100, requester: str | None = None, sort: str = "created"
    ) -> list[PlanSummary]:
        return self.index.list(status=status, env=env, requester=requester, limit=limit, sort=sort)

    def resolve_id(self, text: str) -> str:
        return resolve_plan_id(self.index, text)

    def decide(self, plan_id: str, approver: str | Caller, approved: bool, reason: str = "") -> dict[str, Any]:
        """`approver` is the authenticated caller; a plain name is the local operator of the CLI, who holds the
        database and so every role (agentops approve --as NAME)."""
        approver = _as_approver(approver)
        decision = self._decision(plan_id, approver, approved, reason)
        config = self._thread(plan_id, approver)
        with self._exclusive(plan_id):
            try:
                command = self._claim(plan_id, decision, self.graph.get_state(config).next)
            except RequestExpired:
                self.graph.invoke(_EXPIRED, config, context=self.deps)
                raise
            self.graph.invoke(command, config, context=self.deps)
        return self.show(plan_id)

    def expire_overdue(self) -> list[str]:
        """Expire every overdue request; the paused runs end as `expired`. The ids this call expired."""
        expired = self._claim_expiries()
        for plan_id in expired:
            config = self._thread(plan_id)
            with self._exclusive(plan_id):
                if "approval" in self.graph.get_state(config).next:
                    self.graph.invoke(_EXPIRED, config, context=self.deps)
        return expired

    def resume(self, plan_id: str) -> dict[str, Any]:
        """Continue a plan a dead process left unfinished: from its last checkpoint, with any decision the
        index holds that the paused run has not seen yet (the process died between the two). A plan that
        waits for a human, or has ended, is left as it is. Safe to repeat, and to run on several replicas."""
        config = self._thread(plan_id)
        with self._exclusive(plan_id):
            for _ in range(_MAX_RESUME_STEPS):
                graph_input, decided_by = self._next_input(plan_id, self.graph.get_state(config))
                if graph_input is _WAITS_FOR_A_HUMAN:
                    break
                self.graph.invoke(graph_input, self._thread(plan_id, decided_by), context=self.deps)
        return self.show(plan_id)

    def recover(self) -> list[str]:
        """`resume` every plan the index lists as unfinished; the ids looked at. One plan's failure is
        logged and does not stop the others."""
        plan_ids = self._unfinished()
        for plan_id in plan_ids:
            try:
                self.resume(plan_id)
            except Exception as exc:  # one line: `agentops resume --all` shows its log to a person
                logger.error("resuming plan %s failed: %s: %s", plan_id, type(exc).__name__, exc)
        return plan_ids

    # --- async forms (HTTP): the same checks, the graph driven with astream/aget_state ---------------

    async def ashow(self, plan_id: str) -> dict[str, Any]:
        return self._view(plan_id, await self.graph.aget_state(self._thread(plan_id)))

    async def arun(self, plan: PlanState, on_task: TaskObserver | None = None) -> dict[str, Any]:
        """Run a plan made by `new_plan` until it pauses or ends."""
        async with self._drive_lock(plan["plan_id"]):
            await self._adrive(plan["plan_id"], plan, on_task, _requester(plan))
        return await self.ashow(plan["plan_id"])

    async def adecide(
        self, plan_id: str, approver: str | Caller, approved: bool, reason: str = "", on_task: TaskObserver | None = None
    ) -> dict[str, Any]:
        approver = _as_approver(approver)
        decision = await asyncio.to_thread(self._decision, plan_id, approver, approved, reason)
        # Waits while an earlier step of this plan (its first run, another approver's decision) is still running.
        async with self._drive_lock(plan_id):
            waiting_for = (await self.graph.aget_state(self._thread(plan_id))).next
            try:
                command = await asyncio.to_thread(self._claim, plan_id, decision, waiting_for)
            except RequestExpired:
                await self._adrive(plan_id, _EXPIRED, on_task)
                raise
            await self._adrive(plan_id, command, on_task, approver)
        return await self.ashow(plan_id)

    async def aexpire_overdue(self, on_task: TaskObserver | None = None) -> list[str]:
        expired = await asyncio.to_thread(self._claim_expiries)
        for plan_id in expired:
            async with self._drive_lock(plan_id):
                if "approval" in (await self.graph.aget_state(self._thread(plan_id))).next:
                    await self._adrive(plan_id, _EXPIRED, on_task)
        return expired

    async def aresume(self, plan_id: str, on_task: TaskObserver | None = None) -> dict[str, Any]:
        """`resume` for async callers."""
        async with self._drive_lock(plan_id):
            for _ in range(_MAX_RESUME_STEPS):
                snapshot = await self.graph.aget_state(self._thread(plan_id))
                graph_input, decided_by = await asyncio.to_thread(self._next_input, plan_id, snapshot)
                if graph_input is _WAITS_FOR_A_HUMAN:
                    break
                await self._adrive(plan_id, graph_input, on_task, decided_by)
        return await self.ashow(plan_id)

    async def arecover(self, on_task: TaskObserver | None = None) -> list[str]:
        """`recover` for async callers (the HTTP service, at start-up)."""
        plan_ids = await asyncio.to_thread(self._unfinished)
        for plan_id in plan_ids:
            try:
                await self.aresume(plan_id, on_task)
            except Exception as exc:
                logger.error("resuming plan %s failed: %s: %s", plan_id, type(exc).__name__, exc)
        return plan_ids

    async def aapprovals(self, on_task: TaskObserver | None = None) -> list[PlanSummary]:
        await self.aexpire_overdue(on_task)
        return await asyncio.to_thread(self.index.list, status="pending_approval", sort="expires", limit=10_000)

    async def _adrive(self, plan_id: str, graph_input: Any, on_task: TaskObserver | None, caller: Caller | None = None) -> None:
        # stream_mode="tasks" reports each node as it starts and ends: progress for whoever follows the run.
        config = self._thread(plan_id, caller)
        async for event in self.graph.astream(graph_input, config, context=self.deps, stream_mode="tasks"):
            if on_task is not None:
                on_task(plan_id, event)

    @asynccontextmanager
    async def _drive_lock(self, plan_id: str) -> AsyncIterator[None]:
        """This process's lock on the plan first (so one waiter per process holds a connection), then the
        database's, entered and left off the event loop (it may wait for another replica)."""
        async with self._plan_lock(plan_id):
            held = self._exclusive(plan_id)
            await asyncio.to_thread(held.__enter__)
            try:
                yield
            finally:
                await asyncio.to_thread(held.__exit__, None, None, None)

    def _exclusive(self, plan_id: str) -> AbstractContextManager[None]:
        return self.index.db.exclusive(f"plan-run:{plan_id}")

    def _plan_lock(self, plan_id: str) -> asyncio.Lock:
        lock = self._locks.get(plan_id)
        if lock is None:
            lock = self._locks[plan_id] = asyncio.Lock()
        return lock

    # --- checks shared by both forms ---------------------------------------------------------------

    def _view(self, plan_id: str, snapshot: Any) -> dict[str, Any]:
        if not snapshot.values:
            raise NotFound(f"no plan with id '{plan_id}'")
        return self.view_of(snapshot.values, snapshot.next)

    def view_of(self, state: dict[str, Any], waiting_for: Any) -> dict[str, Any]:
        """The view of a plan from a state the run itself handed over (the HTTP answer while slow work runs)."""
        view = plan_view(state)
        required = self.deps.policy.approval.approvers_for(view["env"]) if view.get("requires_approval") else 0
        return view | {"approvers_required": required, "waiting_for": list(waiting_for)}

    def _decision(self, plan_id: str, approver: Caller, approved: bool, reason: str) -> Decision:
        """Everything that can be refused before the claim, by the approval node's own rules (agentops/approval.py),
        checked against the plan's row so a refusal is an answer and not a spent slot."""
        check_answer(parse_answer({"approved": approved, "reason": reason}))
        summary = self.index.get(plan_id)
        if summary is None:
            raise NotFound(f"no plan with id '{plan_id}'")
        if summary.status == "expired":
            raise RequestExpired(f"the approval request for plan {plan_id} expired at {summary.expires_at:%Y-%m-%d %H:%M} UTC")
        if summary.status != "pending_approval":
            raise Conflict(f"plan {plan_id} is {summary.status}, not waiting for approval")
        earlier = [d.approver for d in self.index.decisions(plan_id)]
        check_approver(plan_id, summary.requester, approver, earlier, self.deps.policy.approval.approvers_for(summary.env))
        return Decision(approved=approved, approver=approver.identity, reason=reason.strip())

    def _claim(self, plan_id: str, decision: Decision, waiting_for: tuple[str, ...]) -> Command:
        """Record the decision in the index (one winner per slot); the command that resumes the run with it.

        Raises RequestExpired after claiming the expiry of an overdue request: the caller then resumes
        the run with the expiry, so the plan ends `expired` on the record, and passes the refusal on.
        """
        summary = self.index.get(plan_id)
        if "approval" not in waiting_for:
            # Checked before any resume: Command(resume=...) on a thread that is not paused would start a fresh run.
            raise Conflict(f"plan {plan_id} is {summary.status if summary else 'gone'}, not waiting for approval")
        now = self.deps.clock()
        if self.index.expire(plan_id, now):
            raise RequestExpired(f"the approval request for plan {plan_id} expired at {summary.expires_at:%Y-%m-%d %H:%M} UTC")
        decision = decision.model_copy(update={"decided_at": now})
        if self.index.decide(plan_id, decision, now, self.deps.policy.approval.approvers_for(summary.env)) is None:
            current = self.index.get(plan_id)
            raise Conflict(f"plan {plan_id} is {current.status if current else 'gone'}: it was decided already")
        return Command(resume=_answer(decision))

    def _claim_expiries(self) -> list[str]:
        """Claim every overdue request's expiry in the index (one winner each); the ids this call claimed."""
        now = self.deps.clock()
        return [plan_id for plan_id in self.index.overdue(now) if self.index.expire(plan_id, now)]

    def _unfinished(self) -> list[str]:
        return [row.plan_id for status in UNFINISHED_STATUSES for row in self.index.list(status=status, limit=10_000)]

    def _next_input(self, plan_id: str, snapshot: Any) -> tuple[Any, Caller | None]:
        """What moves a stopped run on, and who: None (continue from the checkpoint), the index's next stored
        decision (by its approver, checked when it was claimed) or expiry for a run paused at approval, or
        _WAITS_FOR_A_HUMAN when nothing should."""
        if not snapshot.values:
            raise NotFound(f"no plan with id '{plan_id}'")
        if not snapshot.next:
            return _WAITS_FOR_A_HUMAN, None  # ended: nothing to continue
        if "approval" not in snapshot.next:
            return None, None  # died mid-run (planning, deploying): the nodes redo their step idempotently
        stored = self.index.decisions(plan_id)
        seen = len(decisions_in(snapshot.values))
        if len(stored) > seen:
            return Command(resume=_answer(stored[seen])), _as_approver(stored[seen].approver)
        summary = self.index.get(plan_id)
        if summary is not None and summary.status == "expired":
            return _EXPIRED, None
        return _WAITS_FOR_A_HUMAN, None

    @staticmethod
    def _thread(plan_id: str, caller: Caller | None = None) -> dict[str, Any]:
        return run_config(plan_id, caller)


def _as_approver(who: str | Caller) -> Caller:
    # A plain name comes from the local operator (the CLI), who holds the database and so every role.
    if isinstance(who, Caller):
        return who
    if not (who or "").strip():
        raise AgentOpsError("say who decides")
    return Caller(who.strip(), APPROVER_ROLES)


def _requester(plan: PlanState) -> Caller:
    """The caller who starts a plan's run: `new_plan`'s requester, from the front end's authentication."""
    return Caller(plan["requester"], frozenset({"requester"}))


def _answer(decision: Decision) -> dict[str, Any]:
    """The resume value: what was decided and why, nothing about who or when (agentops/approval.py)."""
    return Answer(approved=decision.approved, reason=decision.reason).model_dump()
