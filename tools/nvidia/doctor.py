"""`agentops doctor`: what each model-backed part is configured to use, and whether its endpoint answers.

Each NVIDIA endpoint is asked for its model list (GET /v1/models) and then sent one minimal real request
of the kind the workflow sends (a one-token chat completion, one embedding, one ranking of one passage),
no retries, the configured timeout, through the same client class the workflow uses: an endpoint that
lists its models but fails every real call is a problem, not "ok".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agentops.errors import AgentOpsError
from agentops.settings import Settings
from tools.nvidia.client import Endpoint, Service, build_client, call

_OFFLINE = {"planner": "rules (offline)", "embeddings": "local hashing (offline)", "reranker": "local BM25 + vector (offline)"}


@dataclass
class Check:
    service: Service
    uses: str
    endpoint: str | None = None
    model: str | None = None
    ok: bool = True
    detail: str = "no endpoint needed"


def _client_factory(service: Service) -> Callable[..., Any]:
    from langchain_nvidia_ai_endpoints import ChatNVIDIA, NVIDIAEmbeddings, NVIDIARerank

    return {"planner": ChatNVIDIA, "embeddings": NVIDIAEmbeddings, "reranker": NVIDIARerank}[service]


def check_service(settings: Settings, service: Service) -> Check:
    if getattr(settings, service) != "nim":
        return Check(service, _OFFLINE[service])
    endpoint = replace(Endpoint.from_settings(settings, service), retries=0)
    check = Check(service, "nim", endpoint.base_url, endpoint.model)
    try:
        client = build_client(endpoint, _client_factory(service))
        served = {m.id for m in call(endpoint, lambda: client.available_models)}
    except AgentOpsError as problem:  # configuration (key, URL) or the endpoint itself
        check.ok, check.detail = False, str(problem)
        return check
    if endpoint.model in served:
        check.detail = "reachable; serves the model"
    elif endpoint.hosted:
        check.detail = "reachable; the model is not in the catalog listing (hosted retrieval models often are not)"
    else:
        check.ok = False
        check.detail = f"reachable, but it serves {', '.join(sorted(served)) or 'no models'}, not {endpoint.model}"
        return check
    try:
        call(endpoint, lambda: _minimal_request(service, client))
    except Exception as problem:  # any failure of the real call is the finding; the doctor never raises
        check.ok = False
        check.detail = f"lists its models, but a real {_REQUEST[service]} failed: {str(problem) or type(problem).__name__}"
        return check
    check.detail += f"; a real {_REQUEST[service]} answered"
    return check


_REQUEST = {"planner": "chat completion", "embeddings": "embedding request", "reranker": "ranking request"}


def _minimal_request(service: Service, client: Any) -> None:
    """The smallest request of the kind the workflow sends: it must come back in the shape the workflow reads."""
    if service == "planner":
        reply = client.invoke("Answer with the word ok.", max_tokens=1)
        if not isinstance(reply.content, str):
            raise ValueError("the chat reply has no text")
    elif service == "embeddings":
        if not client.embed_query("doctor"):
            raise ValueError("the embedding is empty")
    else:
        from langchain_core.documents import Document

        ranked = client.compress_documents([Document(page_content="doctor")], "doctor")
        if len(ranked) != 1:
            raise ValueError("the ranking left out the passage")


def diagnose(settings: Settings) -> dict[str, Any]:
    checks = [check_service(settings, service) for service in ("planner", "embeddings", "reranker")]
    return {
        "settings": {
            "on_failure": settings.nim_on_failure,
            "timeout_seconds": settings.nim_timeout_seconds,
            "retries": settings.nim_retries,
            "backoff_seconds": settings.nim_backoff_seconds,
            "planner_thinking": settings.planner_thinking,
            "planner_max_revisions": settings.planner_max_revisions,
            "api_key": "set" if settings.nvidia_api_key else "not set",
            "telemetry": settings.nvidia_telemetry,
        },
        "checks": [c.__dict__ for c in checks],
        "ok": all(c.ok for c in checks),
    }
