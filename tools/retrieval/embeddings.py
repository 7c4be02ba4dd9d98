"""A local, offline, deterministic embedding function for Chroma: feature hashing of words and n-grams.

Chroma's default embedding function downloads an ONNX model on first use and fails offline, and a
sentence-transformers model adds ~1.2 GB. The policy corpus is small and its vocabulary precise
(instance types, environment names, dollar limits), so hashed lexical features retrieve it well and
cost nothing. In production `NVIDIAEmbeddings` replaces this; the policy store re-indexes on the switch.

The class is registered with Chroma, so a new process that imports this module can reopen a persisted
collection with `client.get_collection(name)` and Chroma rebuilds the function from its stored config.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

# Function words carry no topic; left in, they make every question look alike ("what is the ...").
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "may",
        "me",
        "must",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)

# Longest first, so "approvals" loses "s" before "al" is considered. Crude on purpose: it only needs to
# map approve/approval/approver/approved or price/prices/pricing to one key, not to be linguistics.
_SUFFIXES = ("ations", "ation", "ings", "ing", "ers", "er", "ed", "es", "al", "s", "e")
_WORD = re.compile(r"[a-z0-9]+(?:[.\-_][a-z0-9]+)*")
_COMPOUND_SEPARATOR = re.compile(r"[.\-_]")


def stem(word: str) -> str:
    """Strip one common English suffix, keeping at least three characters (numbers are left alone)."""
    if any(ch.isdigit() for ch in word):
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """Lowercased content words in order, stop words dropped. Compounds (ml.g5.xlarge) stay whole."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def terms(text: str) -> list[str]:
    """Stemmed words plus the parts of each compound, so "g5.xlarge" also matches "ml.g5.xlarge".

    Shared with the lexical reranker so both stages agree on what a term is.
    """
    result = []
    for word in words(text):
        result.append(stem(word))
        parts = [p for p in _COMPOUND_SEPARATOR.split(word) if p]
        if len(parts) > 1:
            result.extend(stem(p) for p in parts if p not in STOPWORDS)
    return result


def _char_ngrams(word: str, sizes: Iterable[int] = (3, 4, 5)) -> Iterable[str]:
    """Character n-grams of a word with boundary marks: they match word forms the stemmer misses."""
    marked = f"<{word}>"
    for n in sizes:
        for i in range(len(marked) - n + 1):
            yield marked[i : i + n]


def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    """Stable bucket and sign for a feature. Python's hash() is salted per process, so it cannot be used:
    a collection indexed in one process must be queried with the same vectors from another. The sign
    makes collisions cancel out on average instead of always adding up."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
    return digest % dimension, (1.0 if digest >> 63 else -1.0)


def _hashed(features: Counter[str], dimension: int) -> np.ndarray:
    """Sublinear tf (1 + log tf) in hashed buckets, L2-normalised so each feature group has equal say."""
    vector = np.zeros(dimension, dtype=np.float64)
    for feature, count in features.items():
        index, sign = _bucket(feature, dimension)
        vector[index] += sign * (1.0 + math.log(count))
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


@register_embedding_function
class HashingEmbeddingFunction(EmbeddingFunction[Documents]):
    """Word unigrams, word bigrams and character 3-5-grams, hashed into `dimension` buckets.

    Each group is normalised on its own before weighting: a passage has far more character n-grams than
    words, and unweighted they would drown the exact-word signal.
    """

    # Bump when the feature recipe changes: the version is part of the config, so the policy store's
    # fingerprint changes and stored vectors are rebuilt instead of being compared with new ones.
    VERSION = 1
    GROUP_WEIGHTS = {"word": 1.0, "bigram": 0.6, "char": 0.8}

    def __init__(self, dimension: int = 1024) -> None:
        if dimension < 16:
            raise ValueError(f"dimension must be at least 16, got {dimension}")
        self.dimension = dimension

    def __call__(self, input: Documents) -> Embeddings:
        return [self._embed(text).astype(np.float32) for text in input]

    def embed_query(self, input: Documents) -> Embeddings:
        """Queries and passages share one space: the features are symmetric, unlike e5's query/passage."""
        return self.__call__(input)

    def _embed(self, text: str) -> np.ndarray:
        content = words(text)
        groups = {
            "word": Counter(f"w:{t}" for t in terms(text)),
            "bigram": Counter(f"b:{stem(a)} {stem(b)}" for a, b in zip(content, content[1:], strict=False)),
            "char": Counter(f"c:{g}" for w in content for g in _char_ngrams(w)),
        }
        vector = sum(self.GROUP_WEIGHTS[name] * _hashed(features, self.dimension) for name, features in groups.items())
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    @staticmethod
    def name() -> str:
        return "agentops_hashing"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]  # vectors are unit length, so all three rank alike

    def get_config(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "version": self.VERSION}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingEmbeddingFunction:
        HashingEmbeddingFunction.validate_config(config)
        return HashingEmbeddingFunction(dimension=int(config["dimension"]))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        version = config.get("version")
        if version != HashingEmbeddingFunction.VERSION:
            raise ValueError(f"vectors were built by hashing recipe v{version}, this is v{HashingEmbeddingFunction.VERSION}: re-index")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Refuse an in-place change of dimension: old and new vectors would not be comparable."""
        if old_config.get("dimension") != new_config.get("dimension"):
            raise ValueError("the embedding dimension cannot change in place: re-create the collection")
