"""One validation: the guardrail (and so `agentops validate`) checks SageMaker's own limits on a plan's values,
generated from the same botocore service models the deployer validates every call against -- so a config the
guardrail allows is one the deployer's calls carry without AWS refusing their shape, and the other way round."""

from __future__ import annotations

import json

from fakes import runtime_for, staging_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentops.errors import AgentOpsError
from agentops.guardrails import check_config
from agentops.schemas import DeploymentConfig
from agentops.shapes import SHAPES_FILE, default_shape_rules
from nodes.guardrail import guardrail
from tools.sagemaker.calls import build_deployment_calls
from tools.sagemaker.validation import shape_rules, validate_calls

PLAN_ID = "3f2a9c1b-0d4e-4f5a-9b6c-7d8e9f0a1b2c"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:7"


def test_the_committed_rules_are_what_the_installed_botocore_says():
    assert json.loads(SHAPES_FILE.read_text()) == shape_rules().model_dump(mode="json", exclude_none=True), (
        "regenerate with: python -m tools.sagemaker.validation"
    )


def shape_rules_fired(config: dict, env: str, policy) -> list[str]:
    report = check_config(config, env, policy)
    return [v.rule for v in report.verdict.violations if v.rule.startswith("shape.")]


def test_an_image_uri_with_a_space_is_blocked_by_the_guardrail_node(make_deps):
    state = {"plan_id": PLAN_ID, "env": "staging", "config": staging_config(image_uri=f"{IMAGE} latest")}

    update = guardrail(state, runtime_for(make_deps()))

    assert update["status"] == "blocked"
    [violation] = [v for v in update["report"]["verdict"]["violations"] if v["rule"] == "shape.image_uri"]
    assert "does not match SageMaker's pattern [\\S]+ (sagemaker CreateModel PrimaryContainer.Image)" in violation["message"]


def test_an_image_uri_over_sagemakers_length_limit_is_blocked(policy):
    report = check_config(staging_config(image_uri=IMAGE + "x" * 250), "staging", policy)

    assert not report.verdict.allowed
    assert any(v.rule == "shape.image_uri" and "at most 255" in v.message for v in report.verdict.violations)


def test_an_artifact_url_over_sagemakers_length_limit_is_blocked(policy):
    url = "s3://models/" + "k/" * 520 + "model.tar.gz"

    report = check_config(staging_config(model_data_url=url), "staging", policy)

    assert not report.verdict.allowed
    assert any(v.rule == "shape.model_data_url" and "at most 1024" in v.message for v in report.verdict.violations)


def test_an_instance_type_sagemaker_does_not_offer_is_blocked(policy):
    assert "shape.instance_type" in shape_rules_fired(staging_config(instance_type="ml.m5.huge"), "staging", policy)


def test_a_rollback_to_a_config_name_over_sagemakers_limit_is_blocked(policy):
    config = {"action": "rollback", "endpoint_name": "churn-staging", "target_endpoint_config": "v1-" + "c" * 70}

    report = check_config(config, "staging", policy)

    assert not report.verdict.allowed and [v.rule for v in report.verdict.violations] == ["naming.target_endpoint_config"]


def test_a_name_the_naming_policy_already_faults_is_reported_once(policy):
    report = check_config({"action": "rollback", "endpoint_name": "churn_staging"}, "staging", policy)

    assert [v.rule for v in report.verdict.violations] == ["naming.endpoint_name"]


def deployer_accepts(config: dict) -> bool:
    calls = build_deployment_calls(
        DeploymentConfig.model_validate(config),
        PLAN_ID,
        role_arn="arn:aws:iam::123456789012:role/r",
        default_image_uri=IMAGE,
        data_capture_bucket="capture",
        region="us-east-1",
    )
    try:
        validate_calls(calls)
    except AgentOpsError:
        return False
    return True


texts = st.text(alphabet=st.sampled_from("ab/:.-_ \t@Z9"), min_size=1, max_size=40).map(lambda s: s * 30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=st.one_of(texts, st.just(IMAGE)), tail=st.one_of(texts, st.just("model.tar.gz")))
def test_the_guardrail_and_the_deployer_agree_on_every_image_and_artifact(policy, image, tail):
    config = staging_config(image_uri=image, model_data_url=f"s3://models/{tail}")
    fired = [rule for rule in shape_rules_fired(config, "staging", policy) if rule in ("shape.image_uri", "shape.model_data_url")]

    assert (not fired) == deployer_accepts(config)


def test_the_rules_are_loaded_once_and_name_their_botocore():
    assert default_shape_rules() is default_shape_rules()
    assert default_shape_rules().botocore
