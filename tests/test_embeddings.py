"""The local embedding function: deterministic across processes, unit length, and it ranks by meaning
well enough that related policy text sits closer than unrelated text."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from chromadb.utils.embedding_functions import config_to_embedding_function, known_embedding_functions

from agentops.settings import PROJECT_ROOT
from tools.retrieval.embeddings import HashingEmbeddingFunction, stem, terms


def cosine(ef: HashingEmbeddingFunction, a: str, b: str) -> float:
    va, vb = ef([a, b])
    return float(np.dot(va, vb))


def test_same_text_gives_the_same_vector_in_one_process():
    ef = HashingEmbeddingFunction()
    first, second = ef(["Prod needs a canary rollout"]), HashingEmbeddingFunction()(["Prod needs a canary rollout"])
    assert np.array_equal(first[0], second[0])


def test_vectors_are_identical_in_a_new_process():
    """A collection indexed in one process is queried from another: Python's salted hash() would break this."""
    text = "What is the hourly price of ml.m5.large?"
    script = (
        "import sys, json; from tools.retrieval.embeddings import HashingEmbeddingFunction as E; "
        "print(json.dumps(E()([sys.argv[1]])[0].tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", script, text], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT).stdout
    there = np.array(json.loads(out), dtype=np.float32)
    assert np.array_equal(there, HashingEmbeddingFunction()([text])[0])


@pytest.mark.parametrize("text", ["ml.g5.xlarge", "Every production deployment needs a human approval.", "a b c d e"])
def test_vectors_are_unit_length_and_sized_by_the_config(text: str):
    vector = HashingEmbeddingFunction(dimension=256)([text])[0]
    assert vector.shape == (256,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_related_text_is_closer_than_unrelated_text():
    ef = HashingEmbeddingFunction()
    question = "How much does an ml.m5.large cost per hour?"
    related = "The hourly price of ml.m5.large is 0.115 USD per instance-hour."
    unrelated = "Run agentops audit verify after any incident to check the hash chain."
    assert cosine(ef, question, related) > cosine(ef, question, unrelated) + 0.1


def test_word_forms_match_through_stems_and_character_ngrams():
    ef = HashingEmbeddingFunction()
    assert cosine(ef, "approval required", "the approver approved it") > cosine(ef, "approval required", "traffic shift")


def test_compound_names_also_match_their_parts():
    assert {"ml.g5.xlarge", "ml", "g5", stem("xlarge")} <= set(terms("Use ml.g5.xlarge"))
    assert "the" not in terms("the price")


def test_importing_the_module_registers_it_with_chroma():
    """Checked in a fresh process: in this one, creating any collection with it would register it anyway."""
    script = (
        "import tools.retrieval.embeddings; from chromadb.utils.embedding_functions import known_embedding_functions as k; "
        "print(k['agentops_hashing'].__name__)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.stdout.strip() == "HashingEmbeddingFunction", done.stderr
    assert known_embedding_functions[HashingEmbeddingFunction.name()] is HashingEmbeddingFunction


def test_rebuilds_from_its_config():
    """Chroma rebuilds the function from the stored config when a new process opens the collection."""
    ef = HashingEmbeddingFunction(dimension=128)
    rebuilt = config_to_embedding_function({"name": ef.name(), "config": ef.get_config()})
    assert rebuilt.get_config() == ef.get_config()
    assert np.array_equal(rebuilt(["canary"])[0], ef(["canary"])[0])
    assert not ef.is_legacy()


def test_a_config_from_another_recipe_version_is_refused():
    with pytest.raises(ValueError, match="re-index"):
        HashingEmbeddingFunction.build_from_config({"dimension": 1024, "version": 0})


def test_cosine_is_the_default_space():
    assert HashingEmbeddingFunction().default_space() == "cosine"
