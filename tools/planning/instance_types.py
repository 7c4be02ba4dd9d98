"""The instance types SageMaker hosting knows, from botocore's own service model.

`ProductionVariantInstanceType` is the enum SageMaker validates `CreateEndpointConfig` against, shipped
with boto3: a type outside it would be refused by AWS, so the reader asks instead of planning it. The
price table stays the policy's (agentops/policy.py): a known type with no price is blocked there.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from botocore.loaders import create_loader


@lru_cache(maxsize=1)
def sagemaker_instance_types() -> frozenset[str]:
    """Every `ml.*` type a real-time endpoint variant may use (loaded once; ~0.5 s the first time)."""
    model = create_loader().load_service_model("sagemaker", "service-2")
    return frozenset(model["shapes"]["ProductionVariantInstanceType"]["enum"])


@lru_cache(maxsize=4096)
def closest_type(words: str, known: frozenset[str]) -> str | None:
    """The known type nearest to what was written ("g5.2xlrage" -> ml.g5.2xlarge, "lm.c4.xlarge" -> ml.c4.xlarge),
    or None. Family and size are matched separately: fast, and a typo in one part keeps the other."""
    parts = re.sub(r"\s*\.\s*|\s+", ".", words.lower().strip()).removeprefix("ml.").split(".")
    sizes = _sizes_by_family(known)
    if len(parts) < 2:
        matches = difflib.get_close_matches("ml." + parts[0], _sorted(known), n=1, cutoff=0.75)
        return matches[0] if matches else None
    family, size = parts[-2], parts[-1]
    if family not in sizes:
        close = difflib.get_close_matches(family, list(sizes), n=1, cutoff=0.6)
        if not close:
            return None
        family = close[0]
    close = difflib.get_close_matches(size, sizes[family], n=1, cutoff=0.6)
    return f"ml.{family}.{close[0]}" if close else None


@lru_cache(maxsize=4)
def _sizes_by_family(known: frozenset[str]) -> dict[str, list[str]]:
    sizes: dict[str, list[str]] = {}
    for name in sorted(known):
        _, family, size = name.split(".", 2)
        sizes.setdefault(family, []).append(size)
    return sizes


@lru_cache(maxsize=4)
def _sorted(known: frozenset[str]) -> list[str]:
    return sorted(known)
