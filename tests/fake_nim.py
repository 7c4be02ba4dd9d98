"""A fake NVIDIA NIM: a small HTTP server on 127.0.0.1 with the four routes AgentOps uses.

    GET  /v1/models             the model ids it was started with
    POST /v1/chat/completions   OpenAI-shaped; by default a policy-abiding plan for the prompt's environment
    POST /v1/embeddings         {"data": [{"index", "embedding"}]}; by default hashed-feature vectors
    POST /v1/ranking            {"rankings": [{"index", "logit"}]} best first; by default BM25 over the passages

The real langchain-nvidia-ai-endpoints clients talk to it unchanged. A test scripts what comes next on a
route (`script`), including errors, garbage and delays longer than the client's timeout, and reads back
every request it received (`requests`). Run it alone to watch `agentops` plan through it:

    .venv/bin/python tests/fake_nim.py --port 8000      # prints its URL, then one line per request on stderr
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.retrieval.embeddings import HashingEmbeddingFunction  # noqa: E402
from tools.retrieval.rerank import LexicalReranker  # noqa: E402

CHAT, EMBEDDINGS, RANKING, MODELS = "/v1/chat/completions", "/v1/embeddings", "/v1/ranking", "/v1/models"
DEFAULT_MODELS = ("nvidia/llama-3.1-nemotron-nano-8b-v1", "nvidia/nv-embedqa-e5-v5", "nvidia/nv-rerankqa-mistral-4b-v3")

# What the default chat answer deploys on, per environment: inside the default policy everywhere.
_DEFAULT_PLANS = {
    "dev": {"instance_type": "ml.m5.large", "instance_count": 1},
    "staging": {"instance_type": "ml.m5.large", "instance_count": 2},
    "prod": {
        "instance_type": "ml.g5.xlarge",
        "instance_count": 2,
        "deployment_strategy": "canary",
        "canary_percent": 10,
        "data_capture_percent": 20,
        "enable_model_monitor": True,
    },
}


@dataclass
class Reply:
    """One scripted answer. `body` (raw bytes) wins over `json`; `delay` holds the answer back."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    delay: float = 0.0


def chat(content: str, prompt_tokens: int = 100, completion_tokens: int = 50) -> Reply:
    """A chat completion whose message content is `content` (a dict is sent as its JSON text)."""
    text = content if isinstance(content, str) else json.dumps(content)
    return Reply(
        json={
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def rankings(*indices: int) -> Reply:
    """A ranking reply putting the passages in this order (logits fall from 5 by 1)."""
    return Reply(json={"rankings": [{"index": i, "logit": 5.0 - rank} for rank, i in enumerate(indices)]})


def error(status: int, message: str = "scripted failure") -> Reply:
    return Reply(status=status, json={"status": status, "title": message, "detail": message})


def slow(seconds: float = 30.0) -> Reply:
    """Held back for `seconds` (released at once when the fake stops): longer than any test's client timeout."""
    return Reply(json={}, delay=seconds)


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)


class FakeNim:
    def __init__(self, port: int = 0, models: tuple[str, ...] = DEFAULT_MODELS, log: TextIO | None = None):
        self.models = models
        self.log = log
        self.requests: list[Request] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._embedder = HashingEmbeddingFunction(dimension=256)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-nim", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeNim:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # delayed answers give up at once
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeNim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, path: str, *replies: Reply) -> None:
        """Queue answers for a route; once they are used up the route answers by default again."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.path == path]

    # --- serving -------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(Request(method, path, body))
            queued = self._scripts.get(path)
            scripted = queued.popleft() if queued else None
        if self.log:
            self.log.write(f"fake-nim {method} {path} model={body.get('model', '-')}{' (scripted)' if scripted else ''}\n")
            self.log.flush()
        if scripted is not None:
            if scripted.delay:
                self._released.wait(scripted.delay)
            return scripted
        return self._default(method, path, body)

    def _default(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        if method == "GET" and path == MODELS:
            return Reply(json={"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]})
        if method == "POST" and path == CHAT:
            return chat(default_plan(body))
        if method == "POST" and path == EMBEDDINGS:
            vectors = self._embedder([str(t) for t in body.get("input", [])])
            return Reply(json={"object": "list", "data": [{"index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]})
        if method == "POST" and path == RANKING:
            order = LexicalReranker().rerank(body["query"]["text"], [p["text"] for p in body["passages"]])
            return Reply(json={"rankings": [{"index": i, "logit": round(4 * s - 2, 4)} for i, s in order]})
        return error(404, f"no route {method} {path}")


def default_plan(body: dict[str, Any]) -> dict[str, Any]:
    """A plan inside the default policy for the environment the prompt names, keeping what it pins."""
    data = _prompt_data(body)
    env = data.get("environment", "dev")
    pinned = data.get("pinned_by_requester") or {}
    name = pinned.get("model_name", "model")
    plan = {
        "model_name": name,
        "endpoint_name": f"{name}-{env}",
        "model_data_url": f"s3://agentops-model-artifacts/models/{name}/model.tar.gz",
        "rollback_alarms": ["ModelMonitorAlarm", "DataDriftAlarm"],
        **_DEFAULT_PLANS.get(env, _DEFAULT_PLANS["dev"]),
    }
    return plan | pinned


def _prompt_data(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON document in the planner's first user message (how AgentOps hands over the request)."""
    for message in body.get("messages", []):
        if message.get("role") == "user":
            try:
                return json.loads(message["content"][message["content"].index("{") :])
            except (ValueError, KeyError):
                return {}
    return {}


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeNIM/1.0"

    def do_GET(self) -> None:
        self._respond("GET", {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        self._respond("POST", body)

    def _respond(self, method: str, body: dict[str, Any]) -> None:
        reply = self.server.fake.answer(method, self.path, body)  # type: ignore[attr-defined]
        payload = reply.body if reply.body is not None else json.dumps(reply.json).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left: that was the point

    def log_message(self, format: str, *args: Any) -> None:
        pass  # FakeNim.answer logs one line per request when asked to


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    fake = FakeNim(port=args.port, log=sys.stderr).start()
    # The URL alone on stdout's first line: a script (or a test) reads it to know the server is up.
    print(fake.url, flush=True)
    sys.stderr.write(f"fake NIM serving on {fake.url} (Ctrl-C stops it)\n")
    try:
        fake._thread.join()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
