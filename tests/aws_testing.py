"""Test helpers for execute mode: moto's server on 127.0.0.1 for what it implements, botocore's Stubber for
what it lacks (UpdateEndpoint, monitoring schedules) and for status sequences, a call log, a fake clock.

Every client is a real botocore client, so botocore validates every call's parameters (stubbed ones too:
validation runs before the Stubber answers). Retries are off (`max_attempts` 1) so a 500 fails fast.
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from agentops.settings import Settings
from tools.sagemaker.aws import AwsClients

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/agentops-sagemaker"
NO_RETRIES = Config(retries={"max_attempts": 1})
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials for moto, and nothing from this machine's AWS config (no profile, no IMDS)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def moto(moto_server, aws_env):
    """A clean moto account for each test."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(request, timeout=10).read()
    return moto_server


def execute_settings(home, url: str, **changes: Any) -> Settings:
    values = {
        "home": home,
        "execute": True,
        "aws_endpoint_url": url,
        "aws_region": REGION,
        "aws_max_attempts": 1,
        "execution_role_arn": ROLE_ARN,
        "aws_throttle_backoff_seconds": 1.0,
    }
    return Settings(_env_file=None, **(values | changes))


def client(service: str, url: str) -> Any:
    """A client of its own (for the test's look at moto, or to put a Stubber on)."""
    return boto3.client(service, region_name=REGION, endpoint_url=url, config=NO_RETRIES)


class CallLog:
    """Counts the operations clients actually attempt (botocore's before-call event, after validation)."""

    def __init__(self):
        self.operations: Counter[str] = Counter()

    def watch(self, *clients: Any) -> None:
        for c in clients:
            c.meta.events.register("before-call.*.*", self._record)

    def _record(self, model, **kwargs: Any) -> None:
        self.operations[model.name] += 1


class Routed:
    """A client whose listed operations go to a stubbed client and the rest to the real one (moto)."""

    def __init__(self, real: Any, stubbed: Any, operations: set[str]):
        self._real, self._stubbed, self._operations = real, stubbed, operations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stubbed if name in self._operations else self._real, name)


def clients_with(real: AwsClients, **overrides: Any) -> Callable[[str], Any]:
    """A client factory: moto for every service, except the overridden ones (sagemaker=Routed(...), …)."""
    return lambda service: overrides.get(service.replace("-", "_")) or real(service)


def stubbed(service: str, url: str) -> tuple[Any, Stubber]:
    c = client(service, url)
    stub = Stubber(c)
    stub.activate()
    return c, stub


def endpoint_response(
    name: str, status: str, config: str | None, *, reason: str | None = None, pending: str | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
        "EndpointStatus": status,
        "CreationTime": T0,
        "LastModifiedTime": T0,
    }
    if config:
        response["EndpointConfigName"] = config
    if reason:
        response["FailureReason"] = reason
    if pending:
        response["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    return response


def queue_statuses(stub: Stubber, name: str, sequence: list[tuple[str, str | None]]) -> None:
    """describe_endpoint answers, in order: (status, endpoint config) pairs; ("Deleted", None) is not-found."""
    for status, config in sequence:
        if status == "Deleted":
            stub.add_client_error(
                "describe_endpoint", "ValidationException", f"Could not find endpoint '{name}'.", expected_params={"EndpointName": name}
            )
        else:
            stub.add_response("describe_endpoint", endpoint_response(name, status, config), expected_params={"EndpointName": name})


class FakeClock:
    """monotonic() and sleep() for the watcher: sleeping advances time, nothing waits."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
