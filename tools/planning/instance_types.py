"""The instance types SageMaker hosting knows, from botocore's own service model.

`ProductionVariantInstanceType` is the enum SageMaker validates `CreateEndpointConfig` against, shipped
with boto3: a type outside it would be refused by AWS, so the reader asks instead of planning it. The
price table stays the policy's (agentops/policy.py): a known type with no price is blocked there.
"""

from __future__ import annotations

import difflib
from functools import lru_cache

from botocore.loaders import create_loader


@lru_cache(maxsize=1)
def sagemaker_instance_types() -> frozenset[str]:
    """Every `ml.*` type a real-time endpoint variant may use (loaded once; ~0.5 s the first time)."""
    model = create_loader().load_service_model("sagemaker", "service-2")
    return frozenset(model["shapes"]["ProductionVariantInstanceType"]["enum"])


def closest_type(words: str, known: frozenset[str]) -> str | None:
    """The known type nearest to what was written ("g5.2xlrage" -> ml.g5.2xlarge), or None."""
    guess = "".join(words.lower().split())
    # The words as written, with "ml." put in front, and with a garbled first part replaced by it ("lm.c4.xlarge").
    guesses = {guess if guess.startswith("ml.") else "ml." + guess.removeprefix("ml"), "ml." + guess.partition(".")[2]}
    scored = [
        (difflib.SequenceMatcher(None, g, t).ratio(), t)
        for g in guesses
        for t in difflib.get_close_matches(g, _sorted(known), n=1, cutoff=0.75)
    ]
    return max(scored)[1] if scored else None


@lru_cache(maxsize=4)
def _sorted(known: frozenset[str]) -> list[str]:
    return sorted(known)
