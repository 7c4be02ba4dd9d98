"""What the three NVIDIA endpoint adapters share: where each service lives, bounded retries, and one
line that says what went wrong.

The clients are langchain-nvidia-ai-endpoints' own (`ChatNVIDIA`, `NVIDIAEmbeddings`, `NVIDIARerank`),
talking to NVIDIA's hosted catalog or to a self-hosted NIM. They raise `requests` exceptions for
transport problems and a bare `Exception("[status] title ...")` for HTTP errors; `call` turns both, and
replies that are not what the API returns, into `EndpointFailure` after a bounded number of attempts.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import requests
from pydantic import ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from agentops.errors import AgentOpsError
from agentops.schemas import Evidence
from agentops.settings import Settings

log = logging.getLogger(__name__)

HOSTED_BASE_URL = "https://integrate.api.nvidia.com/v1"
Service = Literal["planner", "embeddings", "reranker"]
T = TypeVar("T")

# The longest single wait between attempts, whatever the backoff setting doubles to.
_MAX_WAIT_SECONDS = 8.0
_STATUS = re.compile(r"^\[(\d{3})\]\s*([^\n]*)")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
# What the client raises while reading a reply that is not in the API's shape: JSON errors, and
# e.g. AttributeError when it calls .get on a string where the API promises an object.
_GARBLED = (ValueError, KeyError, TypeError, IndexError, AttributeError, AssertionError)


class EndpointFailure(AgentOpsError):
    """An NVIDIA endpoint gave no usable answer (after the retries that could have helped)."""


class MalformedReply(Exception):
    """The endpoint answered, but not in the shape its API promises. Retried like a 5xx."""


@dataclass(frozen=True)
class Endpoint:
    """One configured NVIDIA service: what it is called, where it lives, and how patiently to call it."""

    service: Service
    base_url: str
    model: str
    api_key: str | None
    timeout: float
    retries: int
    backoff: float
    telemetry: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, service: Service) -> Endpoint:
        key = settings.nvidia_api_key.get_secret_value() if settings.nvidia_api_key else None
        return cls(
            service=service,
            base_url=getattr(settings, f"{service}_base_url") or HOSTED_BASE_URL,
            model=getattr(settings, f"{service}_model"),
            api_key=key or None,
            timeout=settings.nim_timeout_seconds,
            retries=settings.nim_retries,
            backoff=settings.nim_backoff_seconds,
            telemetry=settings.nvidia_telemetry,
        )

    @property
    def hosted(self) -> bool:
        return self.base_url.rstrip("/") == HOSTED_BASE_URL

    @property
    def label(self) -> str:
        return f"NVIDIA {self.service} endpoint {self.base_url} ({self.model})"

    def client_kwargs(self) -> dict[str, Any]:
        """Constructor arguments every client takes. The base URL is always explicit, so a stray
        NVIDIA_BASE_URL in the environment cannot redirect a call."""
        kwargs: dict[str, Any] = {"model": self.model, "base_url": self.base_url, "usage_telemetry_enabled": self.telemetry}
        if self.api_key:
            kwargs["api_key"] = self.api_key
        return kwargs

    def configuration_problem(self) -> str | None:
        if self.hosted and not self.api_key:
            return (
                f"the {self.service} uses NVIDIA's hosted catalog but no API key is set: set NVIDIA_API_KEY, "
                f"or AGENTOPS_{self.service.upper()}_BASE_URL for a self-hosted NIM"
            )
        return None


def build_client(endpoint: Endpoint, factory: Callable[..., T], **extra: Any) -> T:
    """Construct a client (it sends nothing when given a model), with the timeout applied to every request."""
    problem = endpoint.configuration_problem()
    if problem:
        raise AgentOpsError(problem)
    try:
        client = factory(**endpoint.client_kwargs(), **extra)
    except ValidationError as exc:  # the library validates base_url
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise AgentOpsError(f"AGENTOPS_{endpoint.service.upper()}_BASE_URL '{endpoint.base_url}': {reason}") from None
    # NVIDIAEmbeddings and NVIDIARerank 1.5 accept no timeout argument (ChatNVIDIA does); their
    # request timeout lives on the underlying client, default 60 s. One place sets it for all three.
    for attribute in ("_client", "_async_client"):
        getattr(client, attribute).timeout = endpoint.timeout
    return client


def call(endpoint: Endpoint, request: Callable[[], T], lock: threading.Lock | None = None) -> T:
    """Run one request with bounded, backed-off retries of transient failures; `EndpointFailure` after.

    Each attempt holds `lock` when given. The 1.5 clients are not safe to share between threads: a
    request stores its payload on the client (`last_inputs`) and then posts what is stored there, so two
    concurrent plans could swap payloads. The backoff waits run outside the lock.
    """

    def attempt() -> T:
        with lock or nullcontext():
            return request()

    retrying = Retrying(
        stop=stop_after_attempt(1 + endpoint.retries),
        wait=wait_exponential(multiplier=endpoint.backoff, max=_MAX_WAIT_SECONDS),
        retry=retry_if_exception(transient),
        before_sleep=lambda state: log.warning(
            "%s: attempt %d failed (%s); retrying", endpoint.label, state.attempt_number, describe(state.outcome.exception(), endpoint)
        ),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except Exception as exc:
        if not from_endpoint(exc):
            raise  # a bug of ours, not the endpoint's: it must not pass for an outage and fall back
        attempts = retrying.statistics.get("attempt_number", 1)
        after = f" after {attempts} attempts" if attempts > 1 else ""
        raise EndpointFailure(f"{endpoint.label} failed{after}: {describe(exc, endpoint)}") from exc


def http_status(exc: BaseException) -> int | None:
    """The HTTP status in the client library's error message ("[500] Internal Server Error ...")."""
    match = _STATUS.match(str(exc))
    return int(match.group(1)) if match else None


def from_endpoint(exc: BaseException) -> bool:
    """The request failed, was refused, or its reply could not be read."""
    return isinstance(exc, (requests.RequestException, MalformedReply, *_GARBLED)) or http_status(exc) is not None


def transient(exc: BaseException) -> bool:
    """Worth another attempt: the network, a timeout, an overloaded or broken server, a garbled reply.
    A 4xx other than 429 will be refused again the same way."""
    if isinstance(exc, (requests.Timeout, requests.ConnectionError, MalformedReply)):
        return True
    status = http_status(exc)
    if status is not None:
        return status == 429 or status >= 500
    return isinstance(exc, _GARBLED)


def describe(exc: BaseException | None, endpoint: Endpoint) -> str:
    """One line a person can act on."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {endpoint.timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        reason = _ERRNO.search(str(exc))
        return f"could not connect ({reason.group(1).strip() if reason else 'unreachable'})"
    match = _STATUS.match(str(exc))
    if match:
        status, title = match.group(1), match.group(2).strip()
        hint = ": check NVIDIA_API_KEY" if status in ("401", "403") else ""
        return f"HTTP {status} {title}{hint}".rstrip()
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unusable reply ({type(exc).__name__}: {first_line[:120]})"


class OfflineEvidence(Evidence):
    """Evidence the offline store found because an NVIDIA endpoint failed. It travels with the evidence
    into the plan, so the plan node can put the fallback on the plan and its audit event."""

    fallback: str


class FallbackRetriever:
    """Policy search through the NVIDIA-backed store, with the offline store standing in when one of its
    endpoints fails (AGENTOPS_NIM_ON_FAILURE=fallback). Evidence only informs the planner and the
    approver; the guardrail reads the policy rules themselves, so degraded evidence never loosens a check."""

    def __init__(self, primary: Any, offline: Any) -> None:
        self.primary = primary
        self.offline = offline

    def search(self, query: str, k: int = 3) -> list[Evidence]:
        try:
            return self.primary.search(query, k)
        except EndpointFailure as failure:
            log.warning("policy search fell back to the offline store: %s", failure)
            return [OfflineEvidence(**e.model_dump(), fallback=str(failure)) for e in self.offline.search(query, k)]
