"""Every AWS error a user can cause is one line naming the cause and the fix, raised as EnvironmentProblem (which
the front ends map to their own exit code): credentials missing, incomplete, expired or not accepted, an
unknown profile, a region SageMaker does not run in, the execution role, permissions, quota, throttling.
Real botocore raises each of them here: its credential chain reads the environment, Stubber answers as AWS."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from aws_testing import REGION, ROLE_ARN, aws_env  # noqa: F401  (pytest fixture)
from botocore.stub import Stubber

from agentops.errors import EnvironmentProblem
from agentops.settings import PROJECT_ROOT, Settings
from app.exit_codes import ExitCode
from tools.sagemaker.aws import AwsCaller, AwsError
from tools.sagemaker.execute import executor_from_settings


def start(tmp_path, **changes) -> None:
    values = {"home": tmp_path, "execute": True, "execution_role_arn": ROLE_ARN, "aws_region": REGION}
    executor_from_settings(Settings(_env_file=None, **(values | changes)))


def refusal(tmp_path, **changes) -> str:
    with pytest.raises(EnvironmentProblem) as caught:
        start(tmp_path, **changes)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- set-up: found before anything is planned ----------------------------------------------------------------


def test_incomplete_credentials_name_the_missing_half(tmp_path, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    assert refusal(tmp_path) == (
        "incomplete AWS credentials (env is missing AWS_SECRET_ACCESS_KEY): set both AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or unset them and use AWS_PROFILE"
    )


def test_an_unknown_profile_names_the_profile_and_how_to_create_it(tmp_path, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_PROFILE", "prod-deployer")

    assert refusal(tmp_path) == (
        "AWS profile 'prod-deployer' is not configured (AWS_PROFILE): set AWS_PROFILE to a profile in ~/.aws/config, "
        "or create it with `aws configure --profile prod-deployer`"
    )


def test_no_credentials_at_all_lists_the_ways_to_give_them(tmp_path, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    assert refusal(tmp_path).startswith("EXECUTE=true needs AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID")


def test_a_region_sagemaker_does_not_run_in_is_refused(tmp_path, aws_env):
    assert refusal(tmp_path, aws_region="us-east-9") == (
        "AWS region 'us-east-9' is not one SageMaker runs in: set AWS_REGION (or AGENTOPS_AWS_REGION), e.g. us-east-1"
    )


@pytest.mark.parametrize(
    ("role", "problem"),
    [
        (Settings.model_fields["execution_role_arn"].default, "it is unset (the default is a placeholder)"),
        ("agentops-sagemaker", "'agentops-sagemaker' is not an IAM role ARN"),
    ],
)
def test_the_execution_role_must_be_a_role_arn(tmp_path, aws_env, role, problem):
    assert refusal(tmp_path, execution_role_arn=role) == (
        "EXECUTE=true needs AGENTOPS_EXECUTION_ROLE_ARN, the IAM role SageMaker runs models with "
        f"(arn:aws:iam::ACCOUNT:role/NAME): {problem}"
    )


def test_serve_with_execute_on_and_no_role_says_so_in_one_line(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "AGENTOPS_HOME": str(tmp_path),
        "EXECUTE": "true",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0", "--dev-keys"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == ExitCode.ENVIRONMENT
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "AGENTOPS_EXECUTION_ROLE_ARN" in lines[0], result.stderr


# --- while calling AWS ----------------------------------------------------------------------------------------

ACCESS_DENIED = (
    "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sagemaker:CreateModel on resource: "
    "arn:aws:sagemaker:us-east-1:123456789012:model/churn-v1-3f2a9c1b"
)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "AccessDeniedException",
            ACCESS_DENIED,
            f"AWS denied CreateModel churn-v1-3f2a9c1b (AccessDeniedException: {ACCESS_DENIED}): allow sagemaker:CreateModel "
            "and iam:PassRole on AGENTOPS_EXECUTION_ROLE_ARN for the credentials AgentOps runs with",
        ),
        (
            "ResourceLimitExceeded",
            "The account-level service limit 'ml.g5.xlarge for endpoint usage' is 0 Instances.",
            "AWS refused CreateModel churn-v1-3f2a9c1b: an account quota is reached (The account-level service limit "
            "'ml.g5.xlarge for endpoint usage' is 0 Instances.); free capacity or ask AWS for a higher limit",
        ),
        (
            "ThrottlingException",
            "Rate exceeded",
            "AWS kept throttling CreateModel churn-v1-3f2a9c1b after 2 attempts (ThrottlingException): try again later or "
            "raise AGENTOPS_AWS_THROTTLE_ATTEMPTS",
        ),
        (
            "ExpiredTokenException",
            "The security token included in the request is expired",
            "the AWS credentials have expired (ExpiredTokenException): refresh them (e.g. `aws sso login`, or new session "
            "credentials) and retry",
        ),
        (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            "AWS does not accept these credentials (UnrecognizedClientException): check AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and that they belong to the account in use",
        ),
        (
            "ValidationException",
            "Could not assume role arn:aws:iam::123456789012:role/agentops-sagemaker. Please ensure that the role exists "
            "and allows principal 'sagemaker.amazonaws.com' to assume the role.",
            "SageMaker cannot use the execution role for CreateModel churn-v1-3f2a9c1b (Could not assume role "
            "arn:aws:iam::123456789012:role/agentops-sagemaker. Please ensure that the role exists and allows principal "
            "'sagemaker.amazonaws.com' to assume the role.): AGENTOPS_EXECUTION_ROLE_ARN must name an existing role that "
            "trusts sagemaker.amazonaws.com, and the caller needs iam:PassRole on it (terraform/iam.tf)",
        ),
    ],
)
def test_aws_refusals_the_set_up_causes_are_one_line_environment_problems(aws_env, code, message, expected):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(sagemaker)
    for _ in range(2):
        stub.add_client_error("create_model", code, message)
    stub.activate()
    caller = AwsCaller(lambda service: sagemaker, attempts=2, backoff_seconds=0, sleep=lambda seconds: None)
    params = {"ModelName": "churn-v1-3f2a9c1b", "ExecutionRoleArn": ROLE_ARN, "PrimaryContainer": {"Image": "i"}}

    with pytest.raises(EnvironmentProblem) as caught:
        caller.call("sagemaker", "create_model", params, operation="CreateModel", subject="churn-v1-3f2a9c1b")

    assert str(caught.value) == expected


def test_a_request_aws_rejects_is_not_blamed_on_the_set_up(aws_env):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(sagemaker)
    stub.add_client_error("create_model", "ValidationException", "Image URI is not valid")
    stub.activate()
    caller = AwsCaller(lambda service: sagemaker, attempts=1, backoff_seconds=0)

    with pytest.raises(AwsError) as caught:
        caller.call(
            "sagemaker", "create_model", {"ModelName": "m", "PrimaryContainer": {"Image": "i"}}, operation="CreateModel", subject="m"
        )

    assert not isinstance(caught.value, EnvironmentProblem)
    assert str(caught.value) == "AWS rejected CreateModel m (ValidationException): Image URI is not valid"


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}, "incomplete AWS credentials (env is missing AWS_SECRET_ACCESS_KEY)"),
        ({"AWS_PROFILE": "prod-deployer"}, "AWS profile 'prod-deployer' is not configured (AWS_PROFILE)"),
    ],
)
def test_the_cli_reports_a_broken_credential_chain_in_one_line_with_the_environment_exit_code(tmp_path, env, line):
    base = {
        "PATH": os.environ["PATH"],
        "AGENTOPS_HOME": str(tmp_path),
        "EXECUTE": "true",
        "AGENTOPS_EXECUTION_ROLE_ARN": ROLE_ARN,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "plans", "--json"], env=base | env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == ExitCode.ENVIRONMENT
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert len(lines) == 1 and line in lines[0] and "Traceback" not in result.stderr, result.stderr
