"""Second-stage ranking of the candidate passages the vector search returned.

The `Reranker` shape is that of NVIDIA's `/v1/ranking` reply (`rankings: [{index, logit}]`, best first),
so an `NVIDIARerank` adapter slots in where `LexicalReranker` is the offline default.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Protocol

from rank_bm25 import BM25Okapi

from tools.retrieval.embeddings import terms


class Reranker(Protocol):
    def rerank(self, query: str, passages: Sequence[str], prior_scores: Sequence[float] | None = None) -> list[tuple[int, float]]:
        """(index into `passages`, score) pairs, best first.

        `prior_scores` are the first-stage similarities (0..1), one per passage. A hybrid reranker blends
        them in; a cross-encoder such as NVIDIA's reads the passages itself and may ignore them.
        """
        ...


class _LuceneIdfBM25(BM25Okapi):
    """BM25Okapi with Lucene's idf, log(1 + (N - n + 0.5) / (n + 0.5)), which is never negative.

    Okapi's idf is zero for a term in half the documents and negative above that (rank_bm25 then floors
    it). Over a corpus of ten candidates that throws away most matches: with two candidates, a term only
    one of them has would count for nothing.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = math.log(1.0 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


class LexicalReranker:
    """BM25 over the candidates, blended with the first-stage vector similarity; scores in 0..1.

    BM25 brings what hashed vectors lack: inverse document frequency, so a rare exact term ("0.115",
    "ml.m5.xlarge", "autoscaling") outweighs words every section shares ("deployment", "instance").
    The vector score keeps the fuzzy match (word forms, reordered phrases) that exact terms miss.
    """

    def __init__(self, lexical_weight: float = 0.5, k1: float = 1.2, b: float = 0.75):
        if not 0.0 <= lexical_weight <= 1.0:
            raise ValueError(f"lexical_weight must be within 0..1, got {lexical_weight}")
        self.lexical_weight = lexical_weight
        self.k1 = k1
        self.b = b

    def rerank(self, query: str, passages: Sequence[str], prior_scores: Sequence[float] | None = None) -> list[tuple[int, float]]:
        if not passages:
            return []
        if prior_scores is not None and len(prior_scores) != len(passages):
            raise ValueError(f"{len(prior_scores)} prior scores for {len(passages)} passages")
        lexical = self._lexical_scores(query, passages)
        if prior_scores is None:
            blended = lexical
        else:
            prior = _scaled_to_best(prior_scores)
            w = self.lexical_weight
            blended = [w * lex + (1.0 - w) * vec for lex, vec in zip(lexical, prior, strict=False)]
        # Ties keep the first-stage order (sorted is stable), so equal scores never shuffle arbitrarily.
        return sorted(enumerate(blended), key=lambda pair: pair[1], reverse=True)

    def prepare(self, passages: Sequence[str]) -> None:
        """Tokenise the passages a store will hand over (its sections) once, ahead of the first query."""
        for passage in passages:
            _passage_terms(passage)

    def _lexical_scores(self, query: str, passages: Sequence[str]) -> list[float]:
        """BM25 over the candidates, scaled so the best one scores 1."""
        query_terms = terms(query)
        corpus = [list(_passage_terms(passage)) for passage in passages]
        if not query_terms:
            return [0.0] * len(passages)
        return _scaled_to_best(_LuceneIdfBM25(corpus, k1=self.k1, b=self.b).get_scores(query_terms))


@functools.lru_cache(maxsize=4096)
def _passage_terms(passage: str) -> tuple[str, ...]:
    """A passage's terms, stemmed once: the candidates are the knowledge base's sections, over and over."""
    return tuple(terms(passage)) or ("",)  # BM25Okapi divides by document length


def _scaled_to_best(scores: Sequence[float]) -> list[float]:
    """Divide by the best score so both signals span 0..1 alike. Raw, they do not: cosine similarities
    of a short query to long passages sit around 0.1-0.4 while BM25 is unbounded, and whichever is larger
    would decide alone. Negative scores (none from BM25 here, but a caller's prior may have them, e.g.
    a cosine similarity below zero) are clipped: they are evidence of nothing."""
    clipped = [max(float(score), 0.0) for score in scores]
    best = max(clipped, default=0.0)
    return [score / best for score in clipped] if best > 0 else [0.0] * len(clipped)
