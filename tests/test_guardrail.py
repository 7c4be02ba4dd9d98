"""The guardrail: deterministic policy checks, and the node that routes on them."""

from __future__ import annotations

import json

import pytest
from fakes import FIXED_NOW, eval_cases, prod_config, runtime_for, staging_config

from agentops.guardrails import check_config
from agentops.schemas import Constraints
from nodes.guardrail import guardrail


def rules(report) -> list[str]:
    return [v.rule for v in report.verdict.violations]


def test_allowed_staging_config_has_costs_and_no_approval(policy):
    report = check_config(staging_config(), "staging", policy)
    assert report.verdict.allowed, report.verdict.violations
    assert report.hourly_cost_usd == pytest.approx(0.23)
    assert report.peak_cost_usd == pytest.approx(0.23)
    assert not report.requires_approval


def test_prod_always_needs_approval_and_says_why(policy):
    report = check_config(prod_config(), "prod", policy)
    assert report.verdict.allowed, report.verdict.violations
    assert report.requires_approval
    assert any("prod" in reason for reason in report.approval_reasons)


def test_every_violation_is_reported_with_its_policy_document(policy):
    bad = prod_config(
        endpoint_name="bad_name!",
        model_data_url="https://example.com/model.tar.gz",
        instance_count=1,
        rollback_alarms=[],
        deployment_strategy="all_at_once",
        canary_percent=None,
        data_capture_percent=0,
        enable_model_monitor=False,
    )
    report = check_config(bad, "prod", policy)
    assert not report.verdict.allowed
    assert set(rules(report)) >= {
        "naming.endpoint_name",
        "artifact.s3_uri",
        "instance_count.range",
        "rollback.alarms_missing",
        "rollout.progressive_required",
        "monitoring.data_capture",
        "monitoring.model_monitor",
    }
    cited = {v.rule: (v.policy, v.section) for v in report.verdict.violations}
    assert cited["instance_count.range"] == ("deployment-policy", "Instance counts per environment")
    assert cited["artifact.s3_uri"] == ("security-policy", "Model artifacts")
    assert cited["rollback.alarms_missing"] == ("operational-runbooks", "Automatic rollback")
    assert not report.requires_approval, "a blocked plan is never put to a human"


def test_unknown_instance_type_is_blocked_not_priced(policy):
    report = check_config(prod_config(instance_type="ml.q9.huge"), "prod", policy)
    assert "instance_type.unknown_price" in rules(report)
    assert report.peak_cost_usd is None


def test_cost_uses_the_autoscaling_peak(policy):
    # 2 x 16.896 = 33.79 is within prod's $50; scaling to 4 makes the peak 67.58, above it.
    fixed = check_config(prod_config(instance_type="ml.g5.12xlarge"), "prod", policy)
    scaling = check_config(prod_config(instance_type="ml.g5.12xlarge", autoscaling_max=4), "prod", policy)
    assert fixed.verdict.allowed and fixed.peak_cost_usd == pytest.approx(33.792)
    assert "cost.env_limit" in rules(scaling)
    assert scaling.hourly_cost_usd == pytest.approx(33.792) and scaling.peak_cost_usd == pytest.approx(67.584)


def test_autoscaling_must_stay_inside_the_environment_range(policy):
    report = check_config(prod_config(autoscaling_min=1, autoscaling_max=4), "prod", policy)
    assert "autoscaling.env_range" in rules(report)
    over = check_config(staging_config(autoscaling_max=9), "staging", policy)
    assert {"autoscaling.max_limit", "autoscaling.env_range"} <= set(rules(over))


def test_user_constraints_only_tighten(policy):
    tight = Constraints(budget_usd_per_hour=0.1, max_instance_count=1, instance_type="ml.m5.xlarge")
    report = check_config(staging_config(), "staging", policy, tight)
    assert {"constraint.budget", "constraint.max_instance_count", "constraint.instance_type"} <= set(rules(report))
    loose = Constraints(budget_usd_per_hour=1000, max_instance_count=100)
    assert check_config(staging_config(instance_count=5), "staging", policy, loose).verdict.allowed is False


def test_staging_approval_counts_the_autoscaling_peak(policy):
    report = check_config(staging_config(instance_count=2, autoscaling_max=3), "staging", policy)
    assert report.verdict.allowed and report.requires_approval


def test_schema_errors_name_the_field(policy):
    report = check_config({"model_name": "x", "instance_count": "many", "surprise": 1}, "dev", policy)
    assert not report.verdict.allowed
    messages = " ".join(v.message for v in report.verdict.violations)
    assert "instance_count" in messages and "surprise" in messages and "endpoint_name" in messages


def test_unknown_environment_is_a_violation(policy):
    report = check_config(staging_config(), "qa", policy)
    assert rules(report) == ["environment.unknown"]


@pytest.mark.parametrize("line", eval_cases("configs.jsonl"))
def test_shared_eval_configs(policy, line):
    sample = json.loads(line)
    report = check_config(sample["config"], sample["env"], policy)
    assert report.verdict.allowed is sample["allowed"], report.verdict.violations
    if sample["rule_hint"]:
        hint = sample["rule_hint"].lower()
        assert any(hint in v.rule.lower() or hint in v.message.lower() for v in report.verdict.violations)


# --- the node ----------------------------------------------------------------------------------


def node_state(config, env="staging", **extra):
    return {
        "plan_id": "p1",
        "intent": "x",
        "env": env,
        "requester": "alice",
        "config": config,
        "planner": {"rounds": 1, "warnings": ["planner says hi"]},
        **extra,
    }


def test_node_blocks_and_records_the_verdict(make_deps):
    update = guardrail(node_state(staging_config(instance_type="ml.g5.2xlarge")), runtime_for(make_deps()))
    assert update["status"] == "blocked"
    assert update["report"]["verdict"]["violations"][0]["rule"] == "instance_type.not_allowed"
    assert [e["step"] for e in update["events"]] == ["guardrail.1"]


def test_node_auto_approves_when_no_rule_asks_for_a_human(make_deps):
    update = guardrail(node_state(staging_config()), runtime_for(make_deps()))
    assert update["status"] == "approved"
    assert "planner says hi" in update["report"]["verdict"]["warnings"]


def test_node_puts_prod_on_hold_with_an_expiry_on_the_record(make_deps):
    update = guardrail(node_state(prod_config(), env="prod"), runtime_for(make_deps()))
    assert update["status"] == "pending_approval"
    assert update["expires_at"] == "2026-11-25T12:00:00+00:00"  # FIXED_NOW + the policy's 24 h
    assert FIXED_NOW.isoformat() < update["expires_at"]
    assert [e["step"] for e in update["events"]] == ["guardrail.1", "approval.requested"]


def test_node_blocks_when_the_planner_produced_nothing(make_deps):
    state = node_state(None, planner={"rounds": 1, "error": "could not tell which model to deploy"})
    update = guardrail(state, runtime_for(make_deps()))
    assert update["status"] == "blocked"
    assert update["report"]["verdict"]["violations"][0]["message"] == "could not tell which model to deploy"


def test_model_monitor_without_data_capture_is_blocked_before_anyone_approves_it(policy):
    report = check_config(staging_config(enable_model_monitor=True), "staging", policy)
    assert rules(report) == ["monitoring.needs_capture"]
