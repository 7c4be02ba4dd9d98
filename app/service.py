"""What the front ends (the CLI and the HTTP service) ask of AgentOps, on top of the compiled workflow.

Input is checked here before anything runs, so bad input changes nothing. Decisions go through the plan
index's conditional update first (one winner among racing approvers), then resume the paused run.

One implementation, async (`Orchestrator`); the CLI drives the same coroutines through a blocking portal
(`Orchestrator.open` -> `BlockingOrchestrator`: an event loop on a private thread).

One plan's thread is driven by one caller at a time: an asyncio lock per plan within a process, and the
database's lock on the plan (Postgres: an advisory lock) across processes and replicas.

Crashes. The checkpoint is the source of truth, and the plan index and audit log never run ahead of it.
A run is driven in a worker thread (LangGraph's synchronous loop: no hop to the event loop per node or
per checkpoint write) and its checkpoints are made durable at chosen points, not after every node
(docs/runbook.md, "Recover", has what a crash between two of them costs):
- the accepted request: a plan's index row, then its input checkpoint, before any node runs;
- the record: every run that passes through the audit node pauses before it (a static breakpoint,
  `THINK`), so the state the audit node writes from — and that deploy acts on — is durable before the
  first write. The nodes before it (intake … guardrail, approval) only compute, so a crash among them
  costs their re-run, from the last durable point;
- the pause for a human (the interrupt) and the end.
From the record on (`act`): audit, deploy and watch run with durability "exit" in dry-run (their only
writes are the audit node's, idempotent for the same state) and "sync" in execute mode (each AWS step
durable before the next; its checkpoint costs nothing next to a SageMaker call). Every drive is marked
in the index (`plan_runs`) until it pauses or ends. At start-up `recover` looks at every plan marked or
left in an unfinished status and continues it from its checkpoint, or — with no checkpoint at all (killed
before its input was saved, a full disk) — ends it `failed` with the reason, through the audit node.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import sqlite3
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import psycopg
from anyio.from_thread import BlockingPortal, start_blocking_portal
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime
from langgraph.types import Command, Durability, StateSnapshot

from agentops.approval import APPROVER_ROLES, Answer, Caller, check_answer, check_approver, parse_answer
from agentops.errors import AgentOpsError, Conflict, EnvironmentProblem, NotFound
from agentops.guardrails import check_config
from agentops.intake import check_request
from agentops.policy import person_key
from agentops.ports import Dependencies
from agentops.schemas import Decision, GuardrailReport, PlanSummary
from agentops.settings import Settings
from graph.context import run_config
from graph.state import PlanState
from graph.wiring import build_dependencies, open_checkpointer
from graph.workflow import build_graph
from nodes.approval import decisions_in
from nodes.audit import audit as write_the_record
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
    "basis",
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

# Statuses a plan can be left in by a process that died; `recover` looks at these (and at runs marked in flight).
UNFINISHED_STATUSES = ("planning", "pending_approval", "approved", "deploying")
_WAITS_FOR_A_HUMAN = object()  # `_next_input`: nothing to do until someone decides
MIN_ID_PREFIX = 6  # the shortest part of a plan id the CLI accepts (tables never show less)
_MAX_RESUME_STEPS = 20  # a bound on re-driving one plan (each step is one stored decision or one continuation)
# The static breakpoint of every drive: the run pauses before the audit node, so what it records (and
# what deploy then acts on) is durable before the first write (module docstring).
THINK = ["audit"]
DRIVE_THREADS = 32  # plans driven at once by one process (the HTTP service queues more: api/runs.py)
_T = TypeVar("_T")
# LangGraph's names (private since 1.0, so spelled out): `update_state(as_node=...)` to store a run's input,
# and the key of a stream's "updates" event when the run stops at a breakpoint or an interrupt.
_AS_INPUT = "__input__"
_INTERRUPT = "__interrupt__"
_START = "__start__"  # the first task of a run whose input is saved
NEVER_SAVED = "the service stopped before the plan's first step was saved (killed, or the disk was full); nothing ran: submit it again"


def transient(exc: BaseException) -> bool:
    """A lost database connection (Postgres restarted, a pooled connection terminated): worth one retry."""
    return isinstance(exc, psycopg.OperationalError)


def out_of_service(exc: BaseException) -> bool:
    """The machine, not the request, stops this: a database that is full, locked, unreachable or gone."""
    if isinstance(exc, EnvironmentProblem | psycopg.OperationalError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(
            reason in str(exc) for reason in ("disk is full", "database is locked", "unable to open", "disk I/O error", "readonly database")
        )
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # pragma: no cover - psycopg_pool ships with the postgres extra
        return False
    return isinstance(exc, PoolTimeout)


def request_hash(kind: str, **fields: Any) -> str:
    """What an Idempotency-Key is bound to: the operation and its input, canonically."""
    return hashlib.sha256(json.dumps({"kind": kind, **fields}, sort_keys=True, default=str).encode()).hexdigest()


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
    """The service: every command, async. `open` gives the CLI a blocking form of the same object.

    The async commands hold no database or graph work on the event loop: a plan's drive (its locks, the
    graph's steps, the index writes around them) is one call on a drive thread; short reads go to
    `asyncio.to_thread`. The blocking halves (`_run`, `_decide`, …) are what those threads run."""

    def __init__(self, deps: Dependencies, checkpointer: BaseCheckpointSaver, plan_index: SqlitePlanIndex):
        self.deps = deps
        self.index = plan_index
        self.graph = build_graph(checkpointer)
        # Drives of a plan's thread come from one task at a time; asyncio locks per plan (dropped when
        # nobody holds or waits for them), then the database's lock across processes.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Their own threads: a drive holds one for the whole run (execute mode: minutes of watching), and
        # short reads on the default pool must never queue behind them.
        self._drives = ThreadPoolExecutor(max_workers=DRIVE_THREADS, thread_name_prefix="agentops-run")
        self._act_durability: Durability = "sync" if deps.deployer.mode == "execute" else "exit"

    @classmethod
    @asynccontextmanager
    async def aopen(cls, settings: Settings, deps: Dependencies | None = None) -> AsyncIterator[Orchestrator]:
        """The service on the configured stores (`deps` replaces the real dependencies: tests)."""
        deps = deps or build_dependencies(settings)
        with open_checkpointer(settings) as checkpointer:
            core = cls(deps, checkpointer, deps.plan_index)
            try:
                yield core
            finally:
                # A drive still running dies with the process, as in a crash; start-up continues it.
                core._drives.shutdown(wait=False, cancel_futures=True)

    @classmethod
    @contextmanager
    def open(cls, settings: Settings, deps: Dependencies | None = None) -> Iterator[BlockingOrchestrator]:
        """The same service for synchronous callers (the CLI): its event loop runs on a private thread."""
        with start_blocking_portal() as portal, portal.wrap_async_context_manager(cls.aopen(settings, deps)) as core:
            yield BlockingOrchestrator(core, portal)

    # --- input -----------------------------------------------------------------------------------

    def new_plan(self, intent: str, env: str, requester: str, constraints: dict[str, Any] | None = None) -> PlanState:
        """A checked request as the initial state of a new plan (raises AgentOpsError; nothing runs)."""
        request = check_request(intent, env, requester, constraints, self.deps.policy)
        return PlanState(plan_id=uuid.uuid4().hex, created_at=self.deps.clock().isoformat(), events=[], **request)

    async def aaccept(self, plan: PlanState, idempotency_key: str) -> PlanState:
        """The plan a submission carrying `idempotency_key` stands for: `plan` on the key's first use, the
        first plan (its id) when the requester sent the same request with it before. The same key with
        another request is a Conflict. `arun` on the result is safe however often the client retries."""
        digest = request_hash("plan", intent=plan["intent"], env=plan["env"], constraints=plan.get("constraints") or {})
        scope = f"plans:{person_key(plan['requester'])}"
        plan_id, first_digest = await asyncio.to_thread(
            self.index.claim_key, scope, idempotency_key, digest, plan["plan_id"], self.deps.clock()
        )
        if first_digest != digest:
            raise Conflict("this Idempotency-Key was used with a different request: send a new key for a new request")
        return PlanState(**(plan | {"plan_id": plan_id}))

    # --- commands --------------------------------------------------------------------------------

    async def apreview(
        self, intent: str, env: str, requester: str = "anonymous", constraints: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Retrieve, plan, resolve and check with no side effects: the workflow itself, with the same
        routing (re-plan rounds included), run on a throwaway in-memory checkpointer and stopped before
        its first write — the audit node."""
        return await asyncio.to_thread(self._preview, self.new_plan(intent, env, requester, constraints))

    def _preview(self, state: PlanState) -> dict[str, Any]:
        config = self._thread(state["plan_id"], _requester(state))
        dry_graph = build_graph(InMemorySaver(), interrupt_before=["audit"])
        dry_graph.invoke(state, config, context=self.deps)
        # The throwaway run's id names nothing that exists: leave it out rather than invite `show` on it.
        return {k: v for k, v in plan_view(dry_graph.get_state(config).values).items() if k != "plan_id"}

    def validate(self, config: dict[str, Any], env: str) -> GuardrailReport:
        if env not in self.deps.policy.environments:
            raise AgentOpsError(f"unknown environment '{env}': expected one of {', '.join(self.deps.policy.environments)}")
        return check_config(config, env, self.deps.policy)

    def plans(
        self, status: str | None = None, env: str | None = None, limit: int = 100, requester: str | None = None, sort: str = "created"
    ) -> list[PlanSummary]:
        return self.index.list(status=status, env=env, requester=requester, limit=limit, sort=sort)

    def resolve_id(self, text: str) -> str:
        return resolve_plan_id(self.index, text)

    async def ashow(self, plan_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.show, plan_id)

    def show(self, plan_id: str) -> dict[str, Any]:
        snapshot = self._state(plan_id)
        if snapshot.values.get("plan_id"):
            return self.view_of(snapshot.values, snapshot.next)
        # Accepted, but no step has run yet (being started, or cut off by a crash or a full disk until
        # start-up continues or fails it): the index row is all there is, and it is shown, not a 404.
        summary = self.index.get(plan_id)
        if summary is None:
            raise NotFound(f"no plan with id '{plan_id}'")
        return summary.model_dump(mode="json") | {"approvals": [], "approvers_required": 0, "waiting_for": []}

    async def arun(self, plan: PlanState, on_task: TaskObserver | None = None) -> dict[str, Any]:
        """Run a plan made by `new_plan` (or `aaccept`) until it pauses or ends. A plan that exists already
        (a retried submission) is not started again: it is continued if a dead process left it mid-run."""
        return await self._holding(plan["plan_id"], self._run, plan, self._from_thread(on_task))

    async def adecide(
        self,
        plan_id: str,
        approver: str | Caller,
        approved: bool,
        reason: str = "",
        on_task: TaskObserver | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Record a decision and resume the run with it. `approver` is the authenticated caller; a plain name
        is the local operator of the CLI, who holds the database and so every role (agentops approve --as
        NAME). With `idempotency_key`, a retry of a decision that was recorded answers the plan as it stands
        (continuing the run if the first attempt died before it did); the same key with another decision is
        a Conflict."""
        approver = _as_approver(approver)
        if idempotency_key is None:
            # Refusals first, without the plan's lock: a refused decision does not wait for a running step.
            decision = await asyncio.to_thread(self._decision, plan_id, approver, approved, reason)
            return await self._holding(plan_id, self._decide, plan_id, decision, self._from_thread(on_task), approver)
        # Retries of one key queue on the plan's lock, so each sees whether the first recorded its decision.
        return await self._holding(
            plan_id, self._decide_once, plan_id, approver, approved, reason, idempotency_key, self._from_thread(on_task)
        )

    async def aexpire_overdue(self, on_task: TaskObserver | None = None) -> list[str]:
        """Expire every overdue request; the paused runs end as `expired`. The ids this call expired."""
        expired = await asyncio.to_thread(self._claim_expiries)
        for plan_id in expired:
            await self._holding(plan_id, self._end_expired, plan_id, self._from_thread(on_task))
        return expired

    async def aapprovals(self, on_task: TaskObserver | None = None, env: str | None = None, sort: str = "expires") -> list[PlanSummary]:
        """Plans waiting for a decision, the soonest deadline first unless `sort="created"` (newest first)."""
        await self.aexpire_overdue(on_task)
        return await asyncio.to_thread(self.index.list, status="pending_approval", env=env, sort=sort, limit=10_000)

    async def aresume(self, plan_id: str, on_task: TaskObserver | None = None) -> dict[str, Any]:
        """Continue a plan a dead process left unfinished: from its last checkpoint, with any decision the
        index holds that the paused run has not seen yet (the process died between the two); a plan with
        no checkpoint at all ends `failed`, on the record. A plan that waits for a human, or has ended, is
        left as it is (its index row brought in line with the checkpoint). Safe to repeat, and to run on
        several replicas."""
        return await self._holding(plan_id, self._resume, plan_id, self._from_thread(on_task))

    async def arecover(self, on_task: TaskObserver | None = None) -> list[str]:
        """`aresume` every plan marked in flight or left in an unfinished status; the ids looked at. One
        plan's failure is logged and does not stop the others."""
        plan_ids = await asyncio.to_thread(self._unfinished)
        for plan_id in plan_ids:
            try:
                await self.aresume(plan_id, on_task)
            except Exception as exc:  # one line: `agentops resume --all` shows its log to a person
                logger.error("resuming plan %s failed: %s: %s", plan_id, type(exc).__name__, exc)
        return plan_ids

    # --- holding a plan ---------------------------------------------------------------------------

    async def _holding(self, plan_id: str, work: Callable[..., _T], *args: Any) -> _T:
        """`work(*args)` on a drive thread, holding the plan: this process's lock first (so one waiter per
        process holds a thread or a connection), then the database's (it may wait for another replica)."""
        async with self._plan_lock(plan_id):
            done = asyncio.get_running_loop().run_in_executor(self._drives, functools.partial(self._exclusively, plan_id, work, *args))
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                # A thread cannot be stopped: the plan stays held until its work is over, or a second drive could start beside it.
                await asyncio.wait([done])
                raise

    def _exclusively(self, plan_id: str, work: Callable[..., _T], *args: Any) -> _T:
        with self.index.db.exclusive(f"plan-run:{plan_id}"):
            return work(*args)

    def _plan_lock(self, plan_id: str) -> asyncio.Lock:
        lock = self._locks.get(plan_id)
        if lock is None:
            lock = self._locks[plan_id] = asyncio.Lock()
        return lock

    @staticmethod
    def _from_thread(on_task: TaskObserver | None) -> TaskObserver | None:
        """`on_task` as a drive thread may call it: handed to the event loop (the observers are not thread-safe)."""
        if on_task is None:
            return None
        loop = asyncio.get_running_loop()
        return lambda plan_id, event: loop.call_soon_threadsafe(on_task, plan_id, event)

    # --- the blocking work, with the plan held --------------------------------------------------------

    def _run(self, plan: PlanState, on_task: TaskObserver | None) -> dict[str, Any]:
        plan_id = plan["plan_id"]
        # A retried submission (the same Idempotency-Key) names a plan that may have run: its row says so
        # at the cost of one indexed read, and its checkpoint is read only then.
        if self.index.get(plan_id) is not None and self._state(plan_id).values:
            self._continue(plan_id, on_task)
        else:
            # The row first: a plan that never reaches its first checkpoint is still found (and failed) at start-up.
            self.index.record({**plan, "status": "planning", "updated_at": self.deps.clock().isoformat()})
            try:
                self._drive(plan_id, plan, on_task, _requester(plan))
            except Exception:
                self._fail_if_never_saved(plan_id, on_task)
                raise
        return self.show(plan_id)

    def _decide(self, plan_id: str, decision: Decision, on_task: TaskObserver | None, approver: Caller) -> dict[str, Any]:
        """Claim the decision in the index, then resume the run with it."""
        waiting_for = self._state(plan_id).next
        # Marked before the claim: a process dying between the claim (say `rejected`, a terminal status) and
        # the resumed run is found at start-up, which resumes the run with the stored decision.
        self.index.mark_running(plan_id, self.deps.clock())
        try:
            command = self._claim(plan_id, decision, waiting_for)
        except RequestExpired:
            self._drive(plan_id, _EXPIRED, on_task)
            raise
        except AgentOpsError:
            self.index.clear_running(plan_id)  # refused: nothing changed
            raise
        self._drive(plan_id, command, on_task, approver)
        return self.show(plan_id)

    def _decide_once(
        self, plan_id: str, approver: Caller, approved: bool, reason: str, key: str, on_task: TaskObserver | None
    ) -> dict[str, Any]:
        if self._decided_before(plan_id, approver.identity, approved, reason, key):
            self._continue(plan_id, on_task)
            return self.show(plan_id)
        return self._decide(plan_id, self._decision(plan_id, approver, approved, reason), on_task, approver)

    def _end_expired(self, plan_id: str, on_task: TaskObserver | None) -> None:
        if "approval" in self._state(plan_id).next:
            self._drive(plan_id, _EXPIRED, on_task)

    def _resume(self, plan_id: str, on_task: TaskObserver | None) -> dict[str, Any]:
        self._continue(plan_id, on_task)
        return self.show(plan_id)

    # --- driving the graph ------------------------------------------------------------------------

    def _drive(self, plan_id: str, graph_input: Any, on_task: TaskObserver | None, caller: Caller | None = None) -> None:
        """Move the run on, marked in flight until it pauses or ends (a mark left behind tells start-up
        a process died in it). A lost database connection is retried once, from the last checkpoint."""
        self.index.mark_running(plan_id, self.deps.clock())
        try:
            self._stream(plan_id, graph_input, on_task, caller)
        except Exception as exc:
            if not transient(exc):
                raise
            logger.warning("plan %s: database connection lost (%s); continuing from its last checkpoint", plan_id, exc)
            snapshot = self._state(plan_id)
            retry, decided_by = (graph_input, caller) if not snapshot.values else self._next_input(plan_id, snapshot)
            if retry is not _WAITS_FOR_A_HUMAN:
                self._stream(plan_id, retry, on_task, decided_by or caller)
        self.index.clear_running(plan_id)

    def _stream(self, plan_id: str, graph_input: Any, on_task: TaskObserver | None, caller: Caller | None) -> None:
        """The run, durable at the points the module docstring names: a new plan's input first; then the
        nodes up to the record, saved once, at the pause before it; then the record and what follows."""
        config = self._thread(plan_id, caller)
        if isinstance(graph_input, dict):
            self.graph.update_state(config, graph_input, as_node=_AS_INPUT)
            graph_input = None
        if self._steps(graph_input, config, on_task, durability="exit", interrupt_before=THINK):
            self._steps(None, config, on_task, durability=self._act_durability)

    def _steps(self, graph_input: Any, config: dict[str, Any], on_task: TaskObserver | None, **options: Any) -> bool:
        """One LangGraph run; True if it stopped at a static breakpoint (not at an interrupt, nor the end).
        "tasks" reports each node as it starts and ends: progress for whoever follows the run."""
        at_breakpoint = False
        for mode, event in self.graph.stream(graph_input, config, context=self.deps, stream_mode=["tasks", "updates"], **options):
            if mode == "tasks":
                if on_task is not None:
                    on_task(config["configurable"]["thread_id"], event)
            elif _INTERRUPT in event:
                at_breakpoint = event[_INTERRUPT] == ()  # an interrupt() call carries its Interrupt values
        return at_breakpoint

    def _continue(self, plan_id: str, on_task: TaskObserver | None) -> None:
        """`_resume`'s work."""
        for _ in range(_MAX_RESUME_STEPS):
            snapshot = self._state(plan_id)
            if not snapshot.values and self._fail_if_never_saved(plan_id, on_task):
                continue
            graph_input, decided_by = self._next_input(plan_id, snapshot)
            if graph_input is _WAITS_FOR_A_HUMAN:
                self._reconcile(plan_id, snapshot)
                return
            self._drive(plan_id, graph_input, on_task, decided_by)
        logger.error("plan %s still moves after %d continuations; left for the next pass", plan_id, _MAX_RESUME_STEPS)

    def _fail_if_never_saved(self, plan_id: str, on_task: TaskObserver | None) -> bool:
        """A plan with an index row and no checkpoint ends `failed`, on the record: the failure is stored as
        the checkpoint after `retrieve` (which routes failures to the audit node), then the audit node
        writes it. True if it did; best effort (on a full disk this fails too, and start-up tries again)."""
        config = self._thread(plan_id)
        try:
            summary = self.index.get(plan_id)
            if summary is None or self._state(plan_id).values:
                return False
            failed = {
                "plan_id": plan_id,
                "intent": summary.intent,
                "env": summary.env,
                "requester": summary.requester,
                "created_at": summary.created_at.isoformat(),
                "status": "failed",
                "error": NEVER_SAVED,
                "events": [{"step": "recovery.failed", "actor": "agentops", "payload": {"status": "failed", "error": NEVER_SAVED}}],
            }
            self.graph.update_state(config, failed, as_node="retrieve")
            self._drive(plan_id, None, on_task)
        except Exception as exc:
            logger.error("plan %s has no checkpoint and could not be failed on the record yet: %s: %s", plan_id, type(exc).__name__, exc)
            return False
        return True

    def _state(self, plan_id: str) -> StateSnapshot:
        return self.graph.get_state(self._thread(plan_id))

    def _reconcile(self, plan_id: str, snapshot: Any) -> None:
        """A paused or ended run: the index row and audit log written from the checkpoint if they lag it
        (what the audit node would write; idempotent), and the in-flight mark cleared."""
        summary = self.index.get(plan_id)
        ended = not snapshot.next
        if summary is not None and ended and summary.status != snapshot.values.get("status"):
            logger.warning(
                "plan %s: index said %s, its checkpoint %s; recorded from the checkpoint",
                plan_id,
                summary.status,
                snapshot.values.get("status"),
            )
            write_the_record(snapshot.values, Runtime(context=self.deps))
        self.index.clear_running(plan_id)

    def _decided_before(self, plan_id: str, approver: str, approved: bool, reason: str, key: str) -> bool:
        """Whether this Idempotency-Key's decision was recorded already (Conflict if the key came with another)."""
        digest = request_hash("decision", plan_id=plan_id, approved=approved, reason=reason.strip())
        scope = f"decisions:{person_key(approver)}"
        _, first_digest = self.index.claim_key(scope, key, digest, plan_id, self.deps.clock())
        if first_digest != digest:
            raise Conflict("this Idempotency-Key was used with a different decision: send a new key for a new request")
        return any(person_key(d.approver) == person_key(approver) for d in self.index.decisions(plan_id))

    # --- checks --------------------------------------------------------------------------------------

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
        claimed = []
        for plan_id in self.index.overdue(now):
            # Marked before the claim, as a decision is: a crash before the run ends `expired` is found at start-up.
            self.index.mark_running(plan_id, now)
            if self.index.expire(plan_id, now):
                claimed.append(plan_id)
        return claimed

    def _unfinished(self) -> list[str]:
        listed = [row.plan_id for status in UNFINISHED_STATUSES for row in self.index.list(status=status, limit=10_000)]
        return list(dict.fromkeys([*self.index.running(), *listed]))

    def _next_input(self, plan_id: str, snapshot: Any) -> tuple[Any, Caller | None]:
        """What moves a stopped run on, and who: None (continue from the checkpoint), the index's next stored
        decision (by its approver, checked when it was claimed) or expiry for a run paused at approval, or
        _WAITS_FOR_A_HUMAN when nothing should."""
        if not snapshot.values:
            raise NotFound(f"no plan with id '{plan_id}'")
        if not snapshot.next:
            return _WAITS_FOR_A_HUMAN, None  # ended: nothing to continue
        if snapshot.next == (_START,):
            # Its input saved, no step run: started as at submission, by its requester (the index row holds
            # the authenticated name the service accepted it from).
            summary = self.index.get(plan_id)
            return None, Caller(summary.requester, frozenset({"requester"})) if summary else None
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


class BlockingOrchestrator:
    """The Orchestrator for synchronous callers (the CLI, scripts): each command runs the async one on the
    portal's event loop. The CLI talks to the service in-process, so it sends no Idempotency-Key: a
    command that fails has done nothing a retry could repeat, or left a run that `resume` continues."""

    def __init__(self, core: Orchestrator, portal: BlockingPortal):
        self.core, self.portal = core, portal
        self.deps, self.index, self.graph = core.deps, core.index, core.graph

    def new_plan(self, intent: str, env: str, requester: str, constraints: dict[str, Any] | None = None) -> PlanState:
        return self.core.new_plan(intent, env, requester, constraints)

    def preview(self, intent: str, env: str, requester: str = "anonymous", constraints: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.portal.call(self.core.apreview, intent, env, requester, constraints)

    def validate(self, config: dict[str, Any], env: str) -> GuardrailReport:
        return self.core.validate(config, env)

    def run(self, intent: str, env: str, requester: str, constraints: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.portal.call(self.core.arun, self.core.new_plan(intent, env, requester, constraints))

    def show(self, plan_id: str) -> dict[str, Any]:
        return self.core.show(plan_id)

    def approvals(self, env: str | None = None, sort: str = "expires") -> list[PlanSummary]:
        return self.portal.call(self.core.aapprovals, None, env, sort)

    def plans(
        self, status: str | None = None, env: str | None = None, limit: int = 100, requester: str | None = None, sort: str = "created"
    ) -> list[PlanSummary]:
        return self.core.plans(status=status, env=env, limit=limit, requester=requester, sort=sort)

    def resolve_id(self, text: str) -> str:
        return self.core.resolve_id(text)

    def decide(self, plan_id: str, approver: str | Caller, approved: bool, reason: str = "") -> dict[str, Any]:
        return self.portal.call(self.core.adecide, plan_id, approver, approved, reason)

    def expire_overdue(self) -> list[str]:
        return self.portal.call(self.core.aexpire_overdue)

    def resume(self, plan_id: str) -> dict[str, Any]:
        return self.portal.call(self.core.aresume, plan_id)

    def recover(self) -> list[str]:
        return self.portal.call(self.core.arecover)
