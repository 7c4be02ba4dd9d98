"""Work off the request path: each run or resume of a plan is a background task.

A request waits only until its work *settles* — the run pauses (approval), ends, refuses (a 4xx), or
starts slow work (deploy, watch) — and then answers, saying where to follow the rest. Progress streams
wake on every node the run passes.

The answer is built from what the run itself reports, never from a checkpoint read while the run goes on:
checkpoints are written behind the run, so such a read could see a state from several nodes back (a plan
still `planning`, or one with no status at all). When slow work starts, the state the slow node received
(LangGraph's task-start event carries it) is the plan as it stands; when the run ends, the view it
returned is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentops.errors import AgentOpsError
from api.observe import Observer
from app.service import DRIVE_THREADS, TaskObserver, out_of_service

logger = logging.getLogger("agentops.api")

SLOW_NODES = frozenset({"deploy", "watch"})
# Runs driven at once by this process, one per drive thread; more wait their turn here, on the event loop.
# Each running plan holds a database lock (Postgres: a pooled connection, tools/storage/database.py allows
# 50): unbounded, a burst of background deploys exhausted the pool and starved the threads (500s after a
# 60 s pool timeout) instead of queueing.
MAX_RUNNING = DRIVE_THREADS
KEEPALIVE_SECONDS = 15.0  # a comment line on an idle stream, so proxies do not cut it


@dataclass(eq=False)
class Run:
    plan_id: str
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    slow: bool = False  # reached deploy/watch: its end is a deployment's end
    task: asyncio.Task | None = None
    # When slow work started: the state the slow node received and its name (what the plan waits for).
    handed_over: tuple[dict[str, Any], list[str]] | None = None


@dataclass(frozen=True)
class Settled:
    """How a request's work settled: `view` (the plan view the run returned) when it paused or ended;
    otherwise `running`, with `state`/`waiting_for` taken from the run's own event as slow work began."""

    running: bool
    view: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    waiting_for: list[str] = field(default_factory=list)


class Runs:
    def __init__(self, observer: Observer, max_running: int = MAX_RUNNING):
        self.observer = observer
        self._slots = asyncio.Semaphore(max_running)
        self._active: dict[str, set[Run]] = {}
        self._signals: dict[str, asyncio.Event] = {}  # replaced on each change: a broadcast to current waiters

    def start(self, plan_id: str, work: Callable[[TaskObserver], Awaitable[dict[str, Any]]]) -> Run:
        """Start `work(on_task)` (an Orchestrator coroutine) in the background."""
        run = Run(plan_id)
        self._active.setdefault(plan_id, set()).add(run)
        run.task = asyncio.create_task(self._run(run, work), name=f"plan {plan_id}")
        run.task.add_done_callback(_log_failure)
        return run

    async def settle(self, run: Run) -> Settled:
        """Wait until the work settles. A refusal (AgentOpsError) is raised here, for the request to answer with."""
        settled = asyncio.ensure_future(run.settled.wait())
        try:
            await asyncio.wait({run.task, settled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            settled.cancel()
        if run.task.done() or run.handed_over is None:  # ended (or ending: no slow work began)
            return Settled(running=False, view=await run.task)
        state, waiting_for = run.handed_over
        return Settled(running=True, state=state, waiting_for=waiting_for)

    def running(self, plan_id: str) -> bool:
        return bool(self._active.get(plan_id))

    async def follow(self, plan_id: str, read: Callable[[str], Awaitable[dict[str, Any]]]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """("progress", brief) whenever the plan's status or next step changes while work runs, then
        ("end", plan view) once nothing runs for it (paused or ended); ("keepalive", {}) while idle."""
        last = None
        while True:
            running = self.running(plan_id)
            # Taken before reading the state: a change after the read still wakes us.
            signal = self._signals.setdefault(plan_id, asyncio.Event()) if running else None
            view = await read(plan_id)
            if signal is None:
                yield "end", view
                return
            brief = {"plan_id": plan_id, "status": view.get("status"), "waiting_for": view.get("waiting_for", [])}
            if brief != last:
                last = brief
                yield "progress", brief
            try:
                await asyncio.wait_for(signal.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield "keepalive", {}

    async def drain(self, timeout: float) -> None:
        """At shutdown: let running work finish (a deploy cut in half helps nobody), then cancel the rest."""
        tasks = [run.task for runs in self._active.values() for run in runs if run.task]
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, run: Run, work: Callable[[TaskObserver], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        def on_task(plan_id: str, event: dict[str, Any]) -> None:
            self.observer.on_task(plan_id, event)
            if "input" in event and event.get("name") in SLOW_NODES and not run.slow:
                run.slow = True
                state = event["input"] if isinstance(event["input"], dict) else {}
                run.handed_over = (dict(state), [event["name"]])
                run.settled.set()
            self._wake(plan_id)

        try:
            async with self._slots:
                view = await work(on_task)
            if run.slow:
                self.observer.on_deployment_finished(view)
            return view
        finally:
            runs = self._active.get(run.plan_id, set())
            runs.discard(run)
            if not runs:
                self._active.pop(run.plan_id, None)
            run.settled.set()
            self._wake(run.plan_id)

    def _wake(self, plan_id: str) -> None:
        signal = self._signals.pop(plan_id, None)
        if signal is not None:
            signal.set()


def _log_failure(task: asyncio.Task) -> None:
    # Retrieving the exception here also keeps asyncio from warning about one nobody awaited.
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and out_of_service(exc):
        # A full disk or a lost database: one line (the request answered 503); start-up finishes the plan.
        logger.error("background run %s stopped: %s: %s", task.get_name(), type(exc).__name__, exc)
    elif exc is not None and not isinstance(exc, AgentOpsError):
        logger.error("background run %s failed", task.get_name(), exc_info=exc)
