"""What the service learns from watching runs: Prometheus metrics and webhook notifications.

Runs report each node as it starts and ends (LangGraph's "tasks" stream, see Orchestrator._steps); the
audit events a node produced say what happened (approval requested, decided, expired). One observer turns
them into metrics and messages, so the workflow itself knows nothing about either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from api.notify import Webhook

logger = logging.getLogger("agentops.api")

WEBHOOK_OUTCOMES = ("delivered", "retried", "failed", "dropped")
DECISION_OUTCOMES = ("approved", "rejected", "expired")
DEPLOYMENT_ENDS = ("deployed", "rolled_back", "torn_down", "failed")


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app: tests build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.intents = Counter(
            "agentops_intents",
            "Intents received, by environment and outcome (the plan's status, or refused).",
            ["env", "outcome"],
            registry=r,
        )
        self.decisions = Counter(
            "agentops_decisions", "Approval outcomes recorded: approved, rejected, expired.", ["env", "outcome"], registry=r
        )
        self.deployments = Counter(
            "agentops_deployments", "Deployments that ended, by environment and final status.", ["env", "status"], registry=r
        )
        self.node_seconds = Histogram(
            "agentops_node_duration_seconds",
            "Time spent in each workflow node.",
            ["node"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.llm_calls = Counter("agentops_llm_calls", "Planner LLM calls, by planner.", ["planner"], registry=r)
        self.requests = Counter(
            "agentops_http_requests", "HTTP requests by route template, method and status.", ["route", "method", "status"], registry=r
        )
        self.webhooks = Counter(
            "agentops_webhook_deliveries", "Webhook messages by outcome: delivered, retried, failed, dropped.", ["outcome"], registry=r
        )
        self.key_file_errors = Counter(
            "agentops_api_key_file_errors",
            "Times the API keys file changed into something that does not parse (every API key is refused until it is fixed).",
            registry=r,
        )
        # Known label sets start at zero, so /metrics shows them (and alerts can use rate()) before the first event.
        for outcome in WEBHOOK_OUTCOMES:
            self.webhooks.labels(outcome=outcome)

    def start_at_zero(self, envs: Iterable[str]) -> None:
        """Create the per-environment label sets of decisions and deployments at zero (once the policy is known)."""
        for env in envs:
            for outcome in DECISION_OUTCOMES:
                self.decisions.labels(env=env, outcome=outcome)
            for status in DEPLOYMENT_ENDS:
                self.deployments.labels(env=env, status=status)


def _money(value: Any) -> str:
    return f"${value:,.2f}/h" if isinstance(value, (int, float)) else "unknown cost"


class Observer:
    def __init__(self, metrics: Metrics, webhook: Webhook | None):
        self.metrics = metrics
        self.webhook = webhook
        self._started: dict[str, tuple[float, dict[str, Any]]] = {}  # task id -> (start, node input state)
        self._node_timers: dict[str, Any] = {}  # node -> its histogram child (`labels()` costs more than the observation)

    def on_task(self, plan_id: str, event: dict[str, Any]) -> None:
        """A node started (event has "input") or ended (event has "result"). Never raises into the run."""
        try:
            self._on_task(plan_id, event)
        except Exception:  # an observer bug must not fail a deployment
            logger.exception("observer failed on %s %s", plan_id, event.get("name"))

    def _on_task(self, plan_id: str, event: dict[str, Any]) -> None:
        if "input" in event:
            self._started[event["id"]] = (time.perf_counter(), event["input"] if isinstance(event["input"], dict) else {})
            return
        started, state = self._started.pop(event["id"], (None, {}))
        if started is not None:
            timer = self._node_timers.get(event["name"])
            if timer is None:
                timer = self._node_timers[event["name"]] = self.metrics.node_seconds.labels(event["name"])
            timer.observe(time.perf_counter() - started)
        result = event.get("result") if isinstance(event.get("result"), dict) else {}
        if not result.get("events"):
            return
        context = {**state, **result, "plan_id": plan_id}
        for audit_event in result["events"]:
            if audit_event["step"].startswith("plan."):
                planner = (result.get("planner") or {}).get("name", "unknown")
                self.metrics.llm_calls.labels(planner=planner).inc(audit_event["payload"].get("llm_calls", 0) or 0)
            else:
                self._approval_event(context, audit_event)

    def _approval_event(self, plan: dict[str, Any], event: dict[str, Any]) -> None:
        step, env, plan_id = event["step"], plan.get("env", "unknown"), plan["plan_id"]
        what = f"`{(plan.get('config') or {}).get('endpoint_name', plan_id)}` in *{env}*"
        if step == "approval.requested":
            peak = (plan.get("report") or {}).get("peak_cost_usd")
            self._send(
                plan_id,
                step,
                "approval.requested",
                f"Approval requested for {what} by {plan.get('requester')} — peak {_money(peak)}. Plan {plan_id}.",
                plan,
            )
        elif step.startswith("approval.decision."):
            verdict = "approved" if event["payload"].get("approved") else "rejected"
            self.metrics.decisions.labels(env=env, outcome=verdict).inc()
            reason = event["payload"].get("reason")
            self._send(
                plan_id,
                step,
                "approval.decided",
                f"{what} {verdict} by {event['actor']}" + (f": {reason}" if reason else "") + f". Plan {plan_id}.",
                plan,
            )
        elif step == "approval.expired":
            self.metrics.decisions.labels(env=env, outcome="expired").inc()
            self._send(
                plan_id, step, "approval.expired", f"The approval request for {what} expired; nothing was deployed. Plan {plan_id}.", plan
            )

    def on_deployment_finished(self, view: dict[str, Any]) -> None:
        """A run that deployed (or tried to) has ended."""
        status, env = view.get("status", "unknown"), view.get("env", "unknown")
        self.metrics.deployments.labels(env=env, status=status).inc()
        mode = (view.get("deployment") or {}).get("mode", "")
        endpoint = (view.get("config") or {}).get("endpoint_name", view["plan_id"])
        detail = f": {view['error']}" if view.get("error") else ""
        self._send(
            view["plan_id"],
            "deployment.finished",
            "deployment.finished",
            f"Deployment of `{endpoint}` in *{env}* ended {status}{f' ({mode})' if mode else ''}{detail}. Plan {view['plan_id']}.",
            view,
        )

    def _send(self, plan_id: str, step: str, kind: str, text: str, plan: dict[str, Any]) -> None:
        if self.webhook is None:
            return
        details = {
            "plan_id": plan_id,
            "env": plan.get("env"),
            "requester": plan.get("requester"),
            "status": plan.get("status"),
            "endpoint_name": (plan.get("config") or {}).get("endpoint_name"),
        }
        self.webhook.notify(f"{plan_id}:{step}", kind, text, details)
