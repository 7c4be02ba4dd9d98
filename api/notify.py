"""Webhook notifications (Slack-compatible JSON) when approval is requested, decided or expires, and when a
deployment ends.

Never in the workflow's way: `notify` only puts the message on a queue; one background worker delivers
them, retrying with exponential backoff on network errors, 5xx and 429. A message that still fails is
logged and dropped: the audit log, not the chat, is the record. Each message has an id (plan + event), sent
as `X-AgentOps-Event-Id` so a receiver can drop duplicates; this process never sends one id twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import httpx

from agentops.settings import Settings

logger = logging.getLogger("agentops.webhook")

_QUEUE_LIMIT = 1000  # beyond this, new messages are dropped (and counted) rather than held in memory
_REMEMBERED_IDS = 10_000


class Webhook:
    def __init__(self, url: str, attempts: int = 4, backoff_seconds: float = 1.0, timeout_seconds: float = 5.0, metrics: Any = None):
        self.url = url
        self.attempts = attempts
        self.backoff = backoff_seconds
        self.timeout = timeout_seconds
        self.metrics = metrics
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        self._seen: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Any = None) -> Webhook | None:
        if not settings.webhook_url:
            return None
        return cls(
            settings.webhook_url, settings.webhook_attempts, settings.webhook_backoff_seconds, settings.webhook_timeout_seconds, metrics
        )

    def notify(self, event_id: str, kind: str, text: str, details: dict[str, Any]) -> None:
        """Queue one message (returns at once). A repeated event id is ignored."""
        if event_id in self._seen:
            return
        self._seen[event_id] = None
        if len(self._seen) > _REMEMBERED_IDS:
            self._seen.popitem(last=False)
        message = {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            "agentops": {"id": event_id, "event": kind, **details},
        }
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self._count("dropped")
            logger.warning("webhook queue full; dropped %s", event_id)

    async def deliver_forever(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                message = await self._queue.get()
                try:
                    await self._deliver(client, message)
                except Exception:  # a bug here must not stop every later notification
                    logger.exception("webhook delivery of %s failed", message["agentops"]["id"])
                finally:
                    self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued message was delivered or given up on (used at shutdown and in tests)."""
        await self._queue.join()

    async def _deliver(self, client: httpx.AsyncClient, message: dict[str, Any]) -> None:
        event_id = message["agentops"]["id"]
        for attempt in range(1, self.attempts + 1):
            outcome = await self._post(client, message, event_id)
            if outcome is None:
                self._count("delivered")
                return
            if outcome == "final" or attempt == self.attempts:
                break
            self._count("retried")
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        self._count("failed")
        logger.warning("webhook gave up on %s after %d attempt(s)", event_id, attempt)

    async def _post(self, client: httpx.AsyncClient, message: dict[str, Any], event_id: str) -> str | None:
        """None when delivered; "retry" for what may pass next time; "final" for what never will (4xx)."""
        try:
            response = await client.post(self.url, json=message, headers={"X-AgentOps-Event-Id": event_id})
        except httpx.HTTPError as exc:
            logger.info("webhook %s: %s", event_id, type(exc).__name__)
            return "retry"
        if response.is_success:
            return None
        logger.info("webhook %s: HTTP %s", event_id, response.status_code)
        return "retry" if response.status_code >= 500 or response.status_code == 429 else "final"

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhooks.labels(outcome=outcome).inc()
