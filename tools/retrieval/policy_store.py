"""Policy retrieval: the knowledge base's sections in a persistent Chroma collection, reranked.

One record per (document, section), so evidence cites exactly the section an approver reads and a
guardrail violation names. The collection is rebuilt only when its fingerprint (the documents' content
plus the embedding function's name and config) changes: an edited policy or a new embedding model
re-indexes instead of mixing old and new vectors, and an unchanged one costs one metadata read.

Work that does not depend on the query is done once: the collection is checked at the first search and
then kept (a search that finds it gone — another process rebuilt it — checks again), the reranker
tokenises the sections when the store loads, and the results of a query are kept for as long as the
store (its fingerprint: the documents and the embedding function) is the same.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromadb
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction
from chromadb.errors import NotFoundError
from filelock import FileLock

from agentops.errors import AgentOpsError
from agentops.policy import PolicyDocument, Section, load_documents
from agentops.schemas import Evidence
from agentops.settings import Settings
from tools.retrieval.embeddings import HashingEmbeddingFunction
from tools.retrieval.rerank import LexicalReranker, Reranker

FINGERPRINT_KEY = "agentops_fingerprint"
# Part of the fingerprint: bump when the record layout below changes, so old collections are rebuilt.
RECORD_LAYOUT = 1
RESULTS_KEPT = 1024  # distinct (query, k) results remembered; intents repeat, so most searches are one


@dataclass(frozen=True)
class _Record:
    id: str
    document: PolicyDocument
    section: Section

    @property
    def indexed_text(self) -> str:
        """Title and heading go in with the body: questions often name the topic ("approval",
        "pricing") that only the heading states."""
        return f"{self.document.title}. {self.section.heading}.\n{self.section.text}"

    @property
    def metadata(self) -> dict[str, str]:
        return {"policy": self.document.id, "section": self.section.heading, "title": self.document.title}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _records(documents: list[PolicyDocument]) -> list[_Record]:
    """One record per section; a repeated heading within a document gets a numeric suffix (ids are unique)."""
    records = []
    for doc in documents:
        seen: dict[str, int] = {}
        for section in doc.sections:
            base = f"{doc.id}#{slug(section.heading)}"
            seen[base] = seen.get(base, 0) + 1
            record_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
            records.append(_Record(record_id, doc, section))
    return records


def fingerprint(records: list[_Record], embedding_function: EmbeddingFunction[Documents]) -> str:
    payload = {
        "layout": RECORD_LAYOUT,
        "embedding": {"name": embedding_function.name(), "config": embedding_function.get_config()},
        "records": [[r.id, r.indexed_text, r.metadata] for r in records],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class PolicyStore:
    """Search the policy documents by meaning; a `PolicyRetriever` for the retrieve node."""

    def __init__(
        self,
        persist_dir: Path,
        documents: list[PolicyDocument],
        collection_name: str = "policies",
        embedding_function: EmbeddingFunction[Documents] | None = None,
        reranker: Reranker | None = None,
        candidates: int = 10,
    ):
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        self.collection_name = collection_name
        self.candidates = candidates
        # Always our own function: Chroma's default would download an ONNX model at first use.
        self.embedding_function = embedding_function or HashingEmbeddingFunction()
        self.reranker: Reranker = reranker or LexicalReranker()
        self._records = {r.id: r for r in _records(documents)}
        self.fingerprint = fingerprint(list(self._records.values()), self.embedding_function)
        Path(persist_dir).mkdir(parents=True, exist_ok=True)
        # Nodes run in worker threads under the async app, and several processes may share one home (the
        # service and the CLI, two replicas starting at once): the check-and-build is one step for all of
        # them — a thread lock within the process, a file lock across processes.
        self._lock = threading.Lock()
        self._file_lock = FileLock(Path(persist_dir) / f"{collection_name}.index.lock")
        # Opening a fresh home creates Chroma's own tables, and two processes doing that at once fail with
        # "table collections already exists": the first open is serialised too.
        with self._file_lock:
            self._client = chromadb.PersistentClient(path=str(persist_dir), settings=chromadb.Settings(anonymized_telemetry=False))
        self._collection: Collection | None = None  # checked against the fingerprint; None: check at the next search
        self._results: OrderedDict[tuple[str, str, int], list[Evidence]] = OrderedDict()
        self._results_lock = threading.Lock()
        prepare = getattr(self.reranker, "prepare", None)
        if prepare is not None:  # tokenise the sections now, not on every query
            prepare([r.indexed_text for r in self._records.values()])

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PolicyStore:
        overrides.setdefault("collection_name", settings.collection_name)
        return cls(settings.chroma_dir, load_documents(settings.knowledge_base_dir), **overrides)

    def ensure_indexed(self) -> bool:
        """Make the collection match the documents; True when it had to be (re)built.

        Re-read on every call rather than remembered, because another process may have rebuilt it.
        """
        with self._lock, self._file_lock:
            existing = self._existing_collection()
            if existing is not None and (existing.metadata or {}).get(FINGERPRINT_KEY) == self.fingerprint:
                return False
            if existing is not None:
                # Recreate rather than upsert: a switched embedding function is refused by Chroma on the old
                # collection, and removed sections must disappear too.
                self._client.delete_collection(self.collection_name)
            self._build()
            return True

    def search(self, query: str, k: int = 3) -> list[Evidence]:
        if not query or not query.strip():
            raise AgentOpsError("the policy search query is empty: ask a question about the policy")
        if k < 1:
            raise AgentOpsError(f"the number of policy results must be at least 1, got {k}")
        key = (self.fingerprint, query, k)
        with self._results_lock:
            kept = self._results.get(key)
            if kept is not None:
                self._results.move_to_end(key)
        if kept is None:
            kept = self._search(query, k)
            with self._results_lock:
                self._results[key] = kept
                while len(self._results) > RESULTS_KEPT:
                    self._results.popitem(last=False)
        return [e.model_copy() for e in kept]

    def _search(self, query: str, k: int) -> list[Evidence]:
        if not self._records:
            self.ensure_indexed()
            return []
        try:
            found = self._query(query)
        except NotFoundError:  # another process rebuilt the collection since we checked it
            self._collection = None
            found = self._query(query)
        ids, passages, distances = found["ids"][0], found["documents"][0], found["distances"][0]
        # Cosine distance is 1 - similarity; the reranker blends the similarity in as its prior.
        similarities = [1.0 - d for d in distances]
        ranking = self.reranker.rerank(query, passages, prior_scores=similarities)
        return [self._evidence(ids[index], score) for index, score in ranking[:k]]

    def _query(self, query: str) -> Any:
        collection = self._collection
        if collection is None:
            self.ensure_indexed()
            collection = self._collection = self.collection()
        return collection.query(
            query_texts=[query],
            n_results=min(self.candidates, len(self._records)),
            include=["documents", "distances"],
        )

    def _evidence(self, record_id: str, score: float) -> Evidence:
        record = self._records[record_id]
        return Evidence(policy=record.document.id, section=record.section.heading, text=record.section.text, score=round(score, 4))

    def _existing_collection(self) -> Collection | None:
        try:
            # No embedding function here: the stored one may differ from ours, and only metadata is read.
            return self._client.get_collection(self.collection_name, embedding_function=None)
        except NotFoundError:
            return None

    def collection(self) -> Collection:
        """The Chroma collection as it is now (call `ensure_indexed` first to be sure it is current)."""
        return self._client.get_collection(self.collection_name, embedding_function=self.embedding_function)

    def _build(self) -> None:
        collection = self._client.create_collection(
            self.collection_name,
            embedding_function=self.embedding_function,
            configuration={"hnsw": {"space": "cosine"}},
        )
        records = list(self._records.values())
        if records:
            collection.add(
                ids=[r.id for r in records],
                documents=[r.indexed_text for r in records],
                metadatas=[r.metadata for r in records],
            )
        # The fingerprint is written last: a build that dies half-way leaves none, so the next call rebuilds.
        collection.modify(metadata={FINGERPRINT_KEY: self.fingerprint})
