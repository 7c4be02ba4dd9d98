"""`NVIDIAEmbeddings` as the Chroma collection's embedding function.

Retrieval models such as nv-embedqa-e5-v5 embed a question and a passage differently, so indexing sends
`input_type: passage` (Chroma's `__call__`) and searching sends `input_type: query` (`embed_query`).
The function is registered with Chroma and its config names the model and the endpoint (never the key),
so a new process can reopen the collection, and the policy store's fingerprint changes with the model:
switching models re-indexes instead of mixing vectors from two models in one collection.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function
from langchain_nvidia_ai_endpoints import NVIDIAEmbeddings

from agentops.settings import Settings
from tools.nvidia.client import Endpoint, MalformedReply, build_client, call

# Passages longer than the model's window are cut at the end rather than refused: a policy section is
# still found by its opening, and a refusal would fail the whole index.
TRUNCATE = "END"


@register_embedding_function
class NimEmbeddingFunction(EmbeddingFunction[Documents]):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client = build_client(endpoint, NVIDIAEmbeddings, truncate=TRUNCATE)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> NimEmbeddingFunction:
        return cls(Endpoint.from_settings(settings, "embeddings"))

    def __call__(self, input: Documents) -> Embeddings:
        texts = list(input)
        return call(self.endpoint, lambda: _checked(self._client.embed_documents(texts), len(texts)), self._lock)

    def embed_query(self, input: Documents) -> Embeddings:
        return [call(self.endpoint, lambda t=text: _checked([self._client.embed_query(t)], 1), self._lock)[0] for text in input]

    @staticmethod
    def name() -> str:
        return "agentops_nvidia"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"model": self.endpoint.model, "base_url": self.endpoint.base_url, "truncate": TRUNCATE}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> NimEmbeddingFunction:
        """Reopen with the stored model and endpoint; key, timeout and retries come from this process's settings."""
        NimEmbeddingFunction.validate_config(config)
        settings = Settings()
        base = Endpoint.from_settings(settings, "embeddings")
        return NimEmbeddingFunction(Endpoint(**{**base.__dict__, "model": config["model"], "base_url": config["base_url"]}))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        missing = {"model", "base_url"} - set(config)
        if missing:
            raise ValueError(f"NVIDIA embedding config lacks {', '.join(sorted(missing))}")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("model") != new_config.get("model"):
            raise ValueError("the embedding model cannot change in place: re-create the collection")


def _checked(vectors: Any, expected: int) -> list[list[float]]:
    """One finite vector per text, all of one length: anything else would corrupt the index silently."""
    if not isinstance(vectors, list) or len(vectors) != expected:
        raise MalformedReply(f"expected {expected} embeddings, got {len(vectors) if isinstance(vectors, list) else type(vectors).__name__}")
    sizes = {len(v) if isinstance(v, list) else -1 for v in vectors}
    if len(sizes) != 1 or sizes == {-1} or sizes == {0}:
        raise MalformedReply("embeddings of differing or empty sizes")
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for v in vectors for x in v):
        raise MalformedReply("embeddings hold values that are not finite numbers")
    return [[float(x) for x in v] for v in vectors]
