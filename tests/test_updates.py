"""An update starts from what runs (agentops/updates.py): the plan keeps the last deployment's values for
what the requester did not state, the change lists what differs from it, and the plan index knows which
deployment stands on each endpoint — through deploys, rollbacks and teardowns, on SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import FIXED_NOW, MemoryRecorder, ScriptedPlanner, runtime_for, staging_config
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.ports import PlannerOutput
from agentops.schemas import Deployed, DeploymentConfig
from agentops.settings import Settings
from agentops.updates import CARRIED, MODEL, start_from
from app.service import Orchestrator
from nodes.plan import plan
from nodes.resolve import resolve
from tools.planning.rules import RulesPlanner
from tools.storage.plan_index import PlanIndex

RUNNING = DeploymentConfig.model_validate(
    staging_config(
        model_name="churn-v1",
        model_data_url="s3://models/churn/1/model.tar.gz",
        instance_type="ml.m5.xlarge",
        instance_count=3,
        autoscaling_min=2,
        autoscaling_max=5,
        data_capture_percent=20,
        enable_model_monitor=True,
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:1",
    )
).model_dump(mode="json")
PLANNED = DeploymentConfig.model_validate(
    staging_config(model_name="churn-v2", model_data_url="s3://models/churn/2/model.tar.gz", instance_count=1)
).model_dump(mode="json")
FIELDS = sorted(set().union(*CARRIED, MODEL))


# --- the rule -------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(stated=st.sets(st.sampled_from(FIELDS)), unversioned=st.booleans())
def test_what_was_stated_is_planned_and_each_unstated_group_is_what_runs(stated, unversioned):
    planned = PLANNED | ({"model_name": "churn"} if unversioned else {})
    config, kept = start_from(RUNNING, planned, stated | {"model_name"})  # the model is always named
    for field in stated - MODEL:
        assert config[field] == planned[field], field  # never replaced
    for group in CARRIED:
        source = planned if group & stated else RUNNING
        assert all(config[f] == source[f] for f in group), group
    keeps_model = unversioned and "model_data_url" not in stated
    assert all(config[f] == (RUNNING if keeps_model else planned)[f] for f in MODEL)
    assert set(kept) == {f for g in CARRIED if not g & stated for f in g} | (MODEL if keeps_model else set())
    DeploymentConfig.model_validate(config)  # the mix is a whole config


def test_a_new_version_keeps_the_fleet_and_a_stated_count_replaces_the_whole_capacity_group():
    config, kept = start_from(RUNNING, PLANNED, {"model_name"})
    assert (config["model_name"], config["instance_type"], config["instance_count"]) == ("churn-v2", "ml.m5.xlarge", 3)
    assert (config["autoscaling_min"], config["autoscaling_max"], config["data_capture_percent"]) == (2, 5, 20)
    assert "model_name" not in kept and "instance_type" in kept
    config, kept = start_from(RUNNING, PLANNED | {"autoscaling_min": 1, "autoscaling_max": 1}, {"model_name", "instance_count"})
    assert (config["instance_count"], config["autoscaling_min"], config["autoscaling_max"]) == (1, 1, 1)
    assert not {"instance_count", "autoscaling_min", "autoscaling_max"} & set(kept)


# --- the plan node -----------------------------------------------------------------------------------


def test_plan_node_starts_an_update_from_the_last_deployment_and_records_it(make_deps):
    deployed = Deployed(plan_id="old", deployed_at=FIXED_NOW - timedelta(days=1), config=RUNNING)
    recorder = MemoryRecorder({("staging", PLANNED["endpoint_name"]): [deployed]})
    scripted = ScriptedPlanner(PlannerOutput(planner="scripted", config=PLANNED, pinned=["model_name"]))
    state = {"plan_id": "p2", "intent": "update churn to v2", "env": "staging", "requester": "alice"}
    update = plan(state, runtime_for(make_deps(planner=scripted, plan_index=recorder)))
    assert update["config"]["model_name"] == "churn-v2"
    assert (update["config"]["instance_type"], update["config"]["instance_count"]) == ("ml.m5.xlarge", 3)
    assert update["basis"]["plan_id"] == "old" and "instance_count" in update["basis"]["kept"]
    payload = update["events"][0]["payload"]
    assert payload["config"] == update["config"] and payload["basis"] == {"plan_id": "old", "kept": update["basis"]["kept"]}


def test_plan_node_plans_a_new_endpoint_and_a_revision_round_as_before(make_deps):
    scripted = ScriptedPlanner(PlannerOutput(planner="scripted", config=PLANNED, pinned=["model_name"]))
    state = {"plan_id": "p2", "intent": "deploy churn v2", "env": "staging", "requester": "alice"}
    update = plan(state, runtime_for(make_deps(planner=scripted)))  # nothing deployed on churn-staging
    assert update["config"] == PLANNED and "basis" not in update
    deployed = Deployed(plan_id="old", deployed_at=FIXED_NOW, config=RUNNING)
    recorder = MemoryRecorder({("staging", PLANNED["endpoint_name"]): [deployed]})
    revising = state | {"config": PLANNED, "planner": {"rounds": 1}, "basis": {"plan_id": "old", "kept": []}}
    update = plan(revising, runtime_for(make_deps(planner=scripted, plan_index=recorder)))
    assert update["config"] == PLANNED and "basis" not in update  # the revision is the planner's; round 1 set the basis


def test_plan_node_keeps_the_running_version_when_the_model_is_named_without_one(make_deps, settings):
    deployed = Deployed(plan_id="old", deployed_at=FIXED_NOW, config=RUNNING | {"endpoint_name": "churn-staging"})
    recorder = MemoryRecorder({("staging", "churn-staging"): [deployed]})
    state = {"plan_id": "p3", "intent": "update churn in staging to 4 instances", "env": "staging", "requester": "alice"}
    update = plan(state, runtime_for(make_deps(planner=RulesPlanner(settings), plan_index=recorder)))
    config = update["config"]
    assert (config["model_name"], config["model_data_url"], config["instance_count"]) == ("churn-v1", RUNNING["model_data_url"], 4)
    assert (config["autoscaling_min"], config["autoscaling_max"]) == (4, 4)  # the stated count replaced the whole group
    # The planner assumed an artifact path by convention for "churn"; that value is gone, so is its warning.
    assert not any("convention" in w for w in update["planner"]["warnings"]), update["planner"]["warnings"]


@pytest.mark.parametrize("ceiling, status", [(5, "planning"), (4, "needs_clarification"), (2, "needs_clarification")])
def test_a_ceiling_below_what_runs_is_asked_about_not_guessed(make_deps, ceiling, status):
    """RUNNING serves 3 instances and scales to 5: a ceiling under that leaves no count to keep, and any
    other would be a default standing in for one the requester has to choose."""
    deployed = Deployed(plan_id="old", deployed_at=FIXED_NOW, config=RUNNING)
    recorder = MemoryRecorder({("staging", PLANNED["endpoint_name"]): [deployed]})
    scripted = ScriptedPlanner(PlannerOutput(planner="scripted", config=PLANNED, pinned=["model_name"]))
    state = {"plan_id": "p4", "intent": "x", "env": "staging", "requester": "alice", "constraints": {"max_instance_count": ceiling}}
    update = plan(state, runtime_for(make_deps(planner=scripted, plan_index=recorder)))
    assert update["status"] == status
    if status == "needs_clarification":
        assert update["config"] is None and "runs up to 5 instances" in update["question"] and f"at most {ceiling}" in update["question"]
    else:
        assert update["config"]["instance_count"] == 3 and update["basis"]["plan_id"] == "old"


# --- the resolve node ---------------------------------------------------------------------------------


def test_resolve_in_dry_run_shows_the_change_against_the_deployment_the_plan_started_from(make_deps):
    config, kept = start_from(RUNNING, PLANNED, {"model_name"})
    basis = {"plan_id": "old", "deployed_at": FIXED_NOW.isoformat(), "config": RUNNING, "kept": kept}
    state = {"plan_id": "p2", "env": "staging", "config": config, "basis": basis}
    change = resolve(state, runtime_for(make_deps()))["change"]
    assert change["action"] == "update" and change["known"] is False
    assert {(d["field"], d["current"], d["planned"]) for d in change["diff"]} == {
        ("model_name", "churn-v1", "churn-v2"),
        ("model_data_url", "s3://models/churn/1/model.tar.gz", "s3://models/churn/2/model.tar.gz"),
    }
    assert "plan old" in change["summary"] and "dry-run reads nothing" in change["summary"]


def test_a_rollback_returns_to_the_deployment_before_the_one_that_runs(make_deps):
    previous = Deployed(plan_id="v1", deployed_at=FIXED_NOW - timedelta(days=2), config=RUNNING)
    newest = Deployed(plan_id="v2", deployed_at=FIXED_NOW - timedelta(days=1), config=PLANNED)
    rollback = {"action": "rollback", "endpoint_name": PLANNED["endpoint_name"]}
    scripted = ScriptedPlanner(PlannerOutput(planner="scripted", config=rollback, pinned=["action", "endpoint_name"]))
    state = {"plan_id": "r1", "intent": "roll back churn", "env": "staging", "requester": "alice"}
    deps = make_deps(planner=scripted, plan_index=MemoryRecorder({("staging", PLANNED["endpoint_name"]): [newest, previous]}))
    update = plan(state, runtime_for(deps))
    assert update["config"] == rollback and update["basis"]["plan_id"] == "v2" and update["basis"]["previous"]["plan_id"] == "v1"
    change = resolve(state | update, runtime_for(deps))["change"]
    assert change["action"] == "rollback" and change["known"] is False and "plan v1" in change["summary"]
    assert ("model_name", "churn-v2", "churn-v1") in {(d["field"], d["current"], d["planned"]) for d in change["diff"]}
    # Only one deployment recorded: nothing known to return to, and the change says so as before.
    deps = make_deps(planner=scripted, plan_index=MemoryRecorder({("staging", PLANNED["endpoint_name"]): [newest]}))
    update = plan(state, runtime_for(deps))
    assert update["basis"]["previous"] is None
    change = resolve(state | update, runtime_for(deps))["change"]
    assert change["diff"] == [] and "read when the rollback runs" in change["summary"]


# --- the plan index -------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def index(request, tmp_path):
    target = tmp_path / "plans.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return PlanIndex(target)


def record(index: PlanIndex, plan_id: str, status: str, minutes: int, **config) -> None:
    index.record(
        {
            "plan_id": plan_id,
            "env": "staging",
            "requester": "alice",
            "intent": "x",
            "status": status,
            "created_at": FIXED_NOW.isoformat(),
            "updated_at": (FIXED_NOW + timedelta(minutes=minutes)).isoformat(),
            "config": {"endpoint_name": "churn-staging"} | config,
        }
    )


def test_the_index_knows_which_deployment_stands_through_rollbacks_and_teardowns(index):
    assert index.standing("staging", "churn-staging") == []
    record(index, "d1", "pending_approval", 1, model_name="churn-v1")  # not deployed yet: not standing
    assert index.standing("staging", "churn-staging") == []
    record(index, "d1", "deployed", 2, model_name="churn-v1")
    record(index, "d2", "deployed", 3, model_name="churn-v2")
    record(index, "d2", "deployed", 9, model_name="churn-v2")  # the audit node records again: one row
    assert [d.plan_id for d in index.standing("staging", "churn-staging", limit=5)] == ["d2", "d1"]
    assert index.standing("prod", "churn-staging") == []
    for _ in range(2):  # a rollback ends the newest deployment, once however often it is recorded
        record(index, "r1", "rolled_back", 4, action="rollback")
    [found] = index.standing("staging", "churn-staging", limit=5)
    assert (found.plan_id, found.config["model_name"]) == ("d1", "churn-v1")
    record(index, "t1", "torn_down", 5, action="teardown")
    assert index.standing("staging", "churn-staging") == []
    record(index, "d3", "deployed", 6, model_name="churn-v3")
    assert [d.plan_id for d in index.standing("staging", "churn-staging")] == ["d3"]


# --- the whole path -----------------------------------------------------------------------------------


def test_an_update_in_plain_words_keeps_the_fleet_that_was_deployed(tmp_path):
    with Orchestrator.open(Settings(home=tmp_path / "home", _env_file=None)) as orchestrator:
        first = orchestrator.run("deploy fraud-detector v3 to staging on 2 ml.m5.xlarge", "staging", "alice")
        assert first["status"] == "deployed"
        update = orchestrator.run("update fraud-detector in staging to v4", "staging", "alice")
        config = update["config"]
        assert (config["model_name"], config["instance_type"], config["instance_count"]) == ("fraud-detector-v4", "ml.m5.xlarge", 2)
        assert update["basis"]["plan_id"] == first["plan_id"]
        assert [d["field"] for d in update["change"]["diff"]] == ["model_name", "model_data_url"]
        # Dry-run plans the update of what the first plan left there (validated by botocore), not a second create.
        operations = [call["operation"] for call in update["deployment"]["calls"]]
        assert "UpdateEndpoint" in operations and "CreateEndpoint" not in operations, operations
        assert update["deployment"]["action"] == "update"

        back = orchestrator.run("roll back fraud-detector in staging", "staging", "alice")
        assert back["status"] == "rolled_back" and back["basis"]["previous"]["plan_id"] == first["plan_id"]
        [switch] = [c for c in back["deployment"]["calls"] if c["operation"] == "UpdateEndpoint"]
        assert switch["params"]["EndpointConfigName"] == first["deployment"]["resources"]["endpoint_config"]
        again = orchestrator.run("update fraud-detector in staging to v5", "staging", "alice")
        assert again["basis"]["plan_id"] == first["plan_id"]  # after the rollback, v3's deployment is what runs
        assert orchestrator.show(update["plan_id"])["basis"]["kept"] == update["basis"]["kept"]
