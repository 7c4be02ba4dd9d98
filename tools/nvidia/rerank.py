"""`NVIDIARerank` as the policy store's second stage: a cross-encoder reads the query with each of the
first-stage candidates (10 by default) and orders them; the store keeps the top k (3 by default)."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_nvidia_ai_endpoints import NVIDIARerank

from agentops.settings import Settings
from tools.nvidia.client import Endpoint, MalformedReply, build_client, call

# More than the policy store ever sends, so the client returns every passage it ranked.
_RETURN_ALL = 1000


class NimReranker:
    """A `tools.retrieval.rerank.Reranker`: the endpoint's order, with its logits squashed to 0..1."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client = build_client(endpoint, NVIDIARerank, top_n=_RETURN_ALL, truncate="END")
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> NimReranker:
        return cls(Endpoint.from_settings(settings, "reranker"))

    def rerank(self, query: str, passages: Sequence[str], prior_scores: Sequence[float] | None = None) -> list[tuple[int, float]]:
        """The cross-encoder judges the passages itself; the first-stage similarities are not needed."""
        if not passages:
            return []
        documents = [Document(page_content=text, metadata={"position": i}) for i, text in enumerate(passages)]
        ranked = call(self.endpoint, lambda: _checked(self._client.compress_documents(documents, query), len(passages)), self._lock)
        # A logistic of the logit: scores in 0..1 like the offline reranker's, so evidence from either
        # compares on one scale (the retrieve node merges two questions' results by score).
        return [(position, round(_logistic(logit), 6)) for position, logit in ranked]


def _logistic(x: float) -> float:
    # Written so that exp never overflows, whatever the sign and size of the logit.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _checked(documents: Sequence[Document], passages: int) -> list[tuple[int, float]]:
    ranked = [(doc.metadata.get("position"), doc.metadata.get("relevance_score")) for doc in documents]
    positions = [p for p, _ in ranked]
    if len(set(positions)) != len(positions) or not all(isinstance(p, int) and 0 <= p < passages for p in positions):
        raise MalformedReply("rankings repeat a passage or name one that was not sent")
    if not all(isinstance(s, (int, float)) and math.isfinite(s) for _, s in ranked):
        raise MalformedReply("rankings carry a logit that is not a finite number")
    # The API returns rankings best first; sorting again (stably) keeps a careless server honest.
    return sorted(((p, float(s)) for p, s in ranked), key=lambda pair: pair[1], reverse=True)
