"""The watcher and the watch node: status sequences from botocore's Stubber, an injected clock, no waiting."""

from __future__ import annotations

from typing import Any

import pytest
from aws_testing import FakeClock, aws_env, endpoint_response, queue_statuses, stubbed  # noqa: F401  (aws_env: fixture)
from fakes import runtime_for

from agentops.errors import AgentOpsError
from agentops.settings import Settings
from nodes.watch import transition_events, watch
from tools.sagemaker.watch import EndpointWatcher

NAME = "fraud-detector-prod"
OLD, NEW = "fraud-detector-v2-0000aaaa", "fraud-detector-v3-3f2a9c1b"
URL = "http://127.0.0.1:9"  # never contacted: every client here is stubbed
ALARMS = [f"{NAME}-ModelMonitorAlarm", f"{NAME}-DataDriftAlarm"]


def deployment(action: str = "update", **changes: Any) -> dict[str, Any]:
    base = {
        "mode": "execute",
        "action": action,
        "status": "deploying",
        "endpoint": NAME,
        "target_endpoint_config": NEW,
        "origin_endpoint_config": OLD if action != "create" else None,
        "alarms": ALARMS,
        "calls": [],
        "executed": [],
    }
    return base | changes


@pytest.fixture
def watcher_for(aws_env, tmp_path):
    """A watcher on stubbed SageMaker and CloudWatch clients and a fake clock; returns (watcher, stubs, clock)."""

    def build(**settings_changes: Any):
        sagemaker, sagemaker_stub = stubbed("sagemaker", URL)
        cloudwatch, cloudwatch_stub = stubbed("cloudwatch", URL)
        clock = FakeClock()
        settings = Settings(_env_file=None, home=tmp_path, **settings_changes)
        clients = {"sagemaker": sagemaker, "cloudwatch": cloudwatch}
        watcher = EndpointWatcher(settings, clients.__getitem__, sleep=clock.sleep, monotonic=clock.monotonic)
        return watcher, sagemaker_stub, cloudwatch_stub, clock

    return build


def alarm(name: str, state: str) -> dict[str, Any]:
    return {"AlarmName": name, "StateValue": state}


def test_a_new_endpoint_is_deployed_once_in_service_on_its_config(watcher_for):
    watcher, stub, _, clock = watcher_for()
    queue_statuses(stub, NAME, [("Creating", None), ("Creating", None), ("Creating", None), ("InService", NEW)])

    outcome = watcher.watch(deployment("create"))

    assert outcome["status"] == "deployed" and outcome["endpoint_config"] == NEW
    assert [t["status"] for t in outcome["transitions"]] == ["Creating", "InService"], "only changes are recorded"
    assert clock.sleeps == [15.0, 22.5, 33.75], "the poll interval grows"
    stub.assert_no_pending_responses()


def test_back_on_the_old_config_after_rolling_back_is_rolled_back_with_the_alarm(watcher_for):
    watcher, stub, cloudwatch, _ = watcher_for()
    queue_statuses(stub, NAME, [("Updating", OLD), ("RollingBack", OLD), ("InService", OLD)])
    cloudwatch.add_response(
        "describe_alarms", {"MetricAlarms": [alarm(ALARMS[0], "OK"), alarm(ALARMS[1], "ALARM")]}, expected_params={"AlarmNames": ALARMS}
    )

    outcome = watcher.watch(deployment())

    assert outcome["status"] == "rolled_back"
    assert outcome["alarms"] == [ALARMS[1]]
    assert outcome["reason"] == f"SageMaker rolled the update back (rollback alarm {ALARMS[1]} in ALARM)"
    assert [t["status"] for t in outcome["transitions"]] == ["Updating", "RollingBack", "InService"]


def test_a_rollback_whose_alarm_has_cleared_says_so(watcher_for):
    watcher, stub, cloudwatch, _ = watcher_for()
    queue_statuses(stub, NAME, [("Updating", OLD), ("InService", OLD)])
    cloudwatch.add_response("describe_alarms", {"MetricAlarms": [alarm(ALARMS[0], "OK"), alarm(ALARMS[1], "OK")]})

    outcome = watcher.watch(deployment())

    assert outcome["status"] == "rolled_back" and outcome["alarms"] == []
    assert "no rollback alarm is in ALARM any more" in outcome["reason"]


def test_in_service_on_the_old_config_before_the_update_shows_is_not_a_rollback(watcher_for):
    """Right after UpdateEndpoint, DescribeEndpoint may still show the old fleet InService."""
    watcher, stub, _, _ = watcher_for()
    queue_statuses(stub, NAME, [("InService", OLD), ("Updating", OLD), ("InService", NEW)])

    assert watcher.watch(deployment())["status"] == "deployed"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Failed", "endpoint fraud-detector-prod failed: image not found"),
        ("UpdateRollbackFailed", "could not roll back (image not found)"),
    ],
)
def test_failure_states_end_failed_with_sagemakers_reason(watcher_for, status, expected):
    watcher, stub, _, _ = watcher_for()
    stub.add_response("describe_endpoint", endpoint_response(NAME, "Updating", OLD))
    stub.add_response("describe_endpoint", endpoint_response(NAME, status, OLD, reason="image not found"))

    outcome = watcher.watch(deployment())

    assert outcome["status"] == "failed"
    assert expected in outcome["reason"]
    assert outcome["transitions"][-1]["reason"] == "image not found"


def test_update_rollback_failed_tells_who_to_page(watcher_for):
    watcher, stub, _, _ = watcher_for()
    stub.add_response("describe_endpoint", endpoint_response(NAME, "UpdateRollbackFailed", OLD, reason="capacity"))

    assert "page the on-call engineer" in watcher.watch(deployment())["reason"]


def test_someone_elses_config_is_a_failure_not_a_success(watcher_for):
    watcher, stub, _, _ = watcher_for()
    queue_statuses(stub, NAME, [("Updating", OLD), ("InService", "someone-elses-config")])

    outcome = watcher.watch(deployment())

    assert outcome["status"] == "failed" and "someone-elses-config" in outcome["reason"]


def test_a_rollback_plan_succeeds_on_the_config_it_returns_to(watcher_for):
    watcher, stub, _, _ = watcher_for()
    queue_statuses(stub, NAME, [("Updating", NEW), ("InService", OLD)])

    outcome = watcher.watch(deployment("rollback", target_endpoint_config=OLD, origin_endpoint_config=NEW))

    assert outcome["status"] == "rolled_back" and outcome["alarms"] == []


def test_a_teardown_is_done_when_the_endpoint_is_gone(watcher_for):
    watcher, stub, _, _ = watcher_for()
    queue_statuses(stub, NAME, [("Deleting", NEW), ("Deleted", None)])

    outcome = watcher.watch(deployment("teardown", target_endpoint_config=None))

    assert outcome["status"] == "torn_down"
    assert [t["status"] for t in outcome["transitions"]] == ["Deleting", "Deleted"]


def test_the_watch_gives_up_at_its_timeout_with_a_bounded_number_of_polls(watcher_for):
    watcher, stub, _, clock = watcher_for(watch_timeout_seconds=300, watch_poll_seconds=15, watch_max_poll_seconds=60)
    queue_statuses(stub, NAME, [("Updating", OLD)] * 20)

    outcome = watcher.watch(deployment())

    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith(f"endpoint {NAME} was still Updating after ")
    assert "describe-endpoint" in outcome["reason"]
    assert max(clock.sleeps) == 60 and sum(clock.sleeps) <= 300
    assert outcome["polls"] == len(clock.sleeps) + 1 < 20


def test_a_long_rollout_gets_the_time_its_own_settings_allow(watcher_for):
    watcher, stub, _, clock = watcher_for(watch_timeout_seconds=60, watch_poll_seconds=60, watch_max_poll_seconds=60)
    queue_statuses(stub, NAME, [("Updating", OLD)] * 3 + [("InService", NEW)])
    update = {
        "operation": "UpdateEndpoint",
        "params": {
            "DeploymentConfig": {"BlueGreenUpdatePolicy": {"MaximumExecutionTimeoutInSeconds": 3600, "TerminationWaitInSeconds": 300}}
        },
    }

    assert watcher.watch(deployment(calls=[update]))["status"] == "deployed"
    assert sum(clock.sleeps) == 180 > 60


def test_throttled_polls_are_retried_not_fatal(watcher_for):
    watcher, stub, _, clock = watcher_for(aws_throttle_backoff_seconds=2)
    stub.add_client_error("describe_endpoint", "ThrottlingException", "Rate exceeded")
    stub.add_response("describe_endpoint", endpoint_response(NAME, "InService", NEW))

    assert watcher.watch(deployment())["status"] == "deployed"
    assert clock.sleeps == [2.0]


def test_access_denied_while_watching_is_an_actionable_error(watcher_for):
    watcher, stub, _, _ = watcher_for()
    stub.add_client_error("describe_endpoint", "AccessDeniedException", "not authorized to perform: sagemaker:DescribeEndpoint")

    with pytest.raises(AgentOpsError, match=r"^AWS denied DescribeEndpoint fraud-detector-prod .*allow sagemaker:DescribeEndpoint"):
        watcher.watch(deployment())


# --- the node ------------------------------------------------------------------------------------------------


class ScriptedWatcher:
    def __init__(self, outcome: dict[str, Any] | Exception):
        self.outcome = outcome
        self.watched: list[dict[str, Any]] = []

    def watch(self, deployment: dict[str, Any]) -> dict[str, Any]:
        self.watched.append(deployment)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class FinishingDeployer:
    mode = "execute"

    def __init__(self, error: AgentOpsError | None = None):
        self.error = error
        self.finished: list[dict[str, Any]] = []

    def finish(self, deployment: dict[str, Any]) -> dict[str, Any]:
        self.finished.append(deployment)
        if self.error:
            raise self.error
        return deployment | {"executed": [{"operation": "RegisterScalableTarget", "subject": "x", "outcome": "applied"}]}


def transitions(*statuses: str) -> list[dict[str, Any]]:
    return [{"status": s, "endpoint_config": NEW, "reason": None, "after_seconds": float(i)} for i, s in enumerate(statuses)]


def test_node_passes_a_dry_run_through_untouched(make_deps):
    watcher = ScriptedWatcher(AssertionError("nothing to watch in dry-run"))
    state = {"plan_id": "p", "status": "deployed", "deployment": {"mode": "dry_run", "status": "deployed"}}

    assert watch(state, runtime_for(make_deps(watcher=watcher))) == {}
    assert watcher.watched == []


def test_node_records_every_change_of_state_and_finishes_a_deployed_endpoint(make_deps):
    outcome = {
        "status": "deployed",
        "reason": None,
        "alarms": [],
        "endpoint_config": NEW,
        "transitions": transitions("Updating", "InService"),
    }
    deployer = FinishingDeployer()
    state = {"plan_id": "p", "status": "deploying", "deployment": deployment()}

    update = watch(state, runtime_for(make_deps(watcher=ScriptedWatcher(outcome), deployer=deployer)))

    assert update["status"] == "deployed" and "error" not in update
    assert [e["step"] for e in update["events"]] == ["watch.Updating", "watch.InService", "watch.result"]
    assert update["events"][-1]["payload"]["executed"][0]["operation"] == "RegisterScalableTarget"
    assert len(deployer.finished) == 1 and update["deployment"]["watch"] == outcome


def test_node_does_not_finish_a_rolled_back_endpoint(make_deps):
    outcome = {
        "status": "rolled_back",
        "reason": "alarm",
        "alarms": ALARMS[:1],
        "endpoint_config": OLD,
        "transitions": transitions("Updating"),
    }
    deployer = FinishingDeployer()

    update = watch(
        {"plan_id": "p", "status": "deploying", "deployment": deployment()},
        runtime_for(make_deps(watcher=ScriptedWatcher(outcome), deployer=deployer)),
    )

    assert update["status"] == "rolled_back" and deployer.finished == []
    assert update["events"][-1]["payload"]["alarms"] == ALARMS[:1]


def test_node_fails_the_plan_when_finishing_fails_and_says_the_endpoint_is_live(make_deps):
    outcome = {"status": "deployed", "reason": None, "alarms": [], "endpoint_config": NEW, "transitions": transitions("InService")}
    deployer = FinishingDeployer(AgentOpsError("AWS denied RegisterScalableTarget endpoint/x (AccessDeniedException: no)"))

    update = watch(
        {"plan_id": "p", "status": "deploying", "deployment": deployment()},
        runtime_for(make_deps(watcher=ScriptedWatcher(outcome), deployer=deployer)),
    )

    assert update["status"] == "failed"
    assert update["error"].startswith(f"endpoint {NAME} is InService on {NEW}, but finishing it failed: AWS denied RegisterScalableTarget")


def test_node_turns_a_lost_watch_into_a_failed_plan(make_deps):
    watcher = ScriptedWatcher(AgentOpsError("AWS denied DescribeEndpoint x"))

    update = watch({"plan_id": "p", "status": "deploying", "deployment": deployment()}, runtime_for(make_deps(watcher=watcher)))

    assert update["status"] == "failed" and update["error"] == f"lost track of endpoint {NAME}: AWS denied DescribeEndpoint x"


def test_step_names_stay_unique_when_a_status_comes_back():
    steps = [e["step"] for e in transition_events(transitions("InService", "Updating", "RollingBack", "InService"))]

    assert steps == ["watch.InService", "watch.Updating", "watch.RollingBack", "watch.InService.2"]
