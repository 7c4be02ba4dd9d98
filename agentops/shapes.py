"""SageMaker's own limits on the values a plan carries (lengths, patterns, allowed values), as data.

The guardrail checks them so that `agentops validate`, the guardrail and the deployer agree: a config the
guardrail allows is one whose calls botocore's service model accepts, and an image URI with a space or an
artifact URL over SageMaker's length limit is blocked before anyone approves it, not refused by AWS at the
third call of a deployment. The data (`sagemaker_shapes.json`) is generated from botocore's service models by
`python -m tools.sagemaker.validation` (the same models the deployer validates every call against); a test
fails when the installed botocore says otherwise. The domain reads it as plain data and imports no adapter.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

SHAPES_FILE = Path(__file__).with_name("sagemaker_shapes.json")


class FieldRule(BaseModel):
    source: str = Field(description="Where botocore defines it, e.g. 'sagemaker CreateModel PrimaryContainer.Image'.")
    max_length: int | None = None
    pattern: str | None = None
    enum: list[str] | None = None


class ShapeRules(BaseModel):
    """Per config field, the rule of the API member it becomes."""

    botocore: str = Field(description="The botocore version the rules were generated from.")
    fields: dict[str, FieldRule]

    def problems(self, field: str, value: Any) -> list[str]:
        rule = self.fields.get(field)
        if rule is None or value is None:
            return []
        values = value if isinstance(value, list) else [value]
        found: list[str] = []
        for item in values:
            text = str(item)
            shown = text if len(text) <= 80 else text[:77] + "..."
            if rule.max_length is not None and len(text) > rule.max_length:
                found.append(f"{field} is {len(text)} characters long; SageMaker takes at most {rule.max_length} ({rule.source})")
            if rule.pattern is not None and not _compiled(rule.pattern).fullmatch(text):
                found.append(f"{field} '{shown}' does not match SageMaker's pattern {rule.pattern} ({rule.source})")
            if rule.enum is not None and text not in rule.enum:
                found.append(f"{field} '{shown}' is not a value SageMaker accepts ({rule.source})")
        return found


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@cache
def default_shape_rules() -> ShapeRules:
    return ShapeRules.model_validate(json.loads(SHAPES_FILE.read_text()))
