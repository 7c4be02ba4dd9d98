"""An update starts from what runs: a new plan for an endpoint AgentOps has deployed keeps that
deployment's values for everything the requester did not state, instead of the planner's defaults.

"update fraud-detector in prod to v4" while v3 runs on two ml.g5.xlarge plans v4 on two ml.g5.xlarge —
not on the environment's default instance type — and the plan's change lists what differs from the
deployment it started from. What the requester stated always wins (their words are the plan); the rest
comes from the running deployment, whole groups at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentops.schemas import FieldChange

# The endpoint as it runs, in groups that only move together: a stated instance count replaces the whole
# capacity group (keeping the old autoscaling range around a new count could contradict it), and data
# capture goes with the monitor that reads it. What this rollout does (strategy, canary share) and the
# requester's budget belong to each plan, and the model and its artifact are what an update changes.
CARRIED: tuple[frozenset[str], ...] = (
    frozenset({"instance_type"}),
    frozenset({"instance_count", "autoscaling_min", "autoscaling_max"}),
    frozenset({"image_uri"}),
    frozenset({"rollback_alarms"}),
    frozenset({"data_capture_percent", "enable_model_monitor"}),
)


MODEL = frozenset({"model_name", "model_data_url"})


def start_from(running: dict[str, Any], planned: dict[str, Any], stated: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """`planned`, with every group the requester stated nothing of taken from `running`; and the fields taken.

    The model is always named (the endpoint follows from it), so it is kept when it was named without a
    version — "fraud-detector" while fraud-detector-v3 runs — and no artifact was stated: the version that
    runs stays, rather than a versionless name and an artifact path assumed by convention."""
    stated = set(stated)
    groups = list(CARRIED)
    unversioned = str(running.get("model_name", "")).startswith(f"{planned.get('model_name')}-")
    if unversioned and "model_data_url" not in stated:
        groups.append(MODEL)
        stated -= MODEL
    config, kept = dict(planned), []
    for group in groups:
        if group & stated:
            continue
        for field in sorted(group):
            if field in running:
                config[field] = running[field]
                kept.append(field)
    return config, kept


def differences(running: dict[str, Any], planned: dict[str, Any]) -> list[FieldChange]:
    """Every field whose planned value differs from the running deployment's, in the config's order."""
    fields = list(dict.fromkeys([*planned, *running]))
    return [
        FieldChange(field=field, current=running.get(field), planned=planned.get(field))
        for field in fields
        if field != "action" and running.get(field) != planned.get(field)
    ]
