"""Test helpers for execute mode: moto's server on 127.0.0.1 for what it implements, botocore's Stubber for
what it lacks (UpdateEndpoint, monitoring schedules) and for status sequences, a call log, a fake clock.

Every client is a real botocore client, so botocore validates every call's parameters (stubbed ones too:
validation runs before the Stubber answers). Retries are off (`max_attempts` 1) so a 500 fails fast.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
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


# --- UpdateEndpoint, emulated in front of moto ------------------------------------------------------------

MUTATING_PREFIXES = ("Create", "Update", "Delete", "Put", "Register", "Deregister", "AddTags", "Start", "Stop", "Set")


def mutating(operations: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in operations.items() if op.startswith(MUTATING_PREFIXES)})


class UpdateEndpointEmulator:
    """SageMaker's UpdateEndpoint, which moto lacks, emulated with botocore's `before-call` event on every client
    of one boto3 session (the executor's and the watcher's): the call is validated by botocore as usual, then
    answered here instead of sent. What it emulates is what the lifecycle depends on:

    - refusals SageMaker makes: an endpoint that is not InService, an unknown config, and -- the one that broke
      rollbacks -- a new instance type for a variant registered as an Application Auto Scaling target;
    - the blue/green rollout as DescribeEndpoint shows it: Updating (still on the old config), then InService on
      the new config (moto's endpoint is switched then), or -- `roll_back_next()` -- RollingBack and InService on
      the old one, as when a rollback alarm fires;
    - `refuse_next(message)`: the next UpdateEndpoint fails outright (a quota, a bad config).

    The emulator reads moto over HTTP like any client; only the switch itself, which moto has no call for, is
    written into moto's in-process backend.
    """

    def __init__(self, url: str, account: str = "123456789012"):
        self.sagemaker = client("sagemaker", url)
        self.autoscaling = client("application-autoscaling", url)
        self.account = account
        self.rollouts: dict[str, list[tuple[str, str | None]]] = {}
        self.updates: list[dict[str, Any]] = []
        self._refusal: str | None = None
        self._roll_back = False

    def attach(self, session: boto3.session.Session) -> boto3.session.Session:
        events = session._session.get_component("event_emitter")
        events.register("before-call.sagemaker.UpdateEndpoint", self._update)
        events.register("before-call.sagemaker.DescribeEndpoint", self._describe)
        return session

    def refuse_next(self, message: str) -> None:
        self._refusal = message

    def roll_back_next(self) -> None:
        self._roll_back = True

    @staticmethod
    def _body(params: dict[str, Any]) -> dict[str, Any]:
        return json.loads(params["body"] or b"{}")

    @staticmethod
    def _error(code: str, message: str) -> tuple[Any, dict[str, Any]]:
        http = SimpleNamespace(status_code=400, headers={}, content=b"")
        return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    def _instance_type(self, config: str) -> str:
        variants = self.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        return variants[0]["InstanceType"]

    def _update(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        body = self._body(params)
        name, target = body["EndpointName"], body["EndpointConfigName"]
        self.updates.append(body)
        if self._refusal is not None:
            message, self._refusal = self._refusal, None
            return self._error("ValidationException", message)
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=name)
        except self.sagemaker.exceptions.ClientError:
            return self._error("ValidationException", f'Could not find endpoint "{name}".')
        if name in self.rollouts or endpoint["EndpointStatus"] != "InService":
            return self._error("ValidationException", f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
        try:
            new_type = self._instance_type(target)
        except self.sagemaker.exceptions.ClientError:
            return self._error("ValidationException", f'Could not find endpoint configuration "{target}".')
        old = endpoint["EndpointConfigName"]
        scaled = self.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        if any(t["ResourceId"].startswith(f"endpoint/{name}/variant/") for t in scaled) and new_type != self._instance_type(old):
            return self._error(
                "ValidationException",
                'The variant(s) "[AllTraffic]" include instance type changes, which cannot be made while the variant(s) '
                "are registered as scalable targets. Deregister the scalable targets and try again.",
            )
        if self._roll_back:
            self._roll_back = False
            self.rollouts[name] = [("Updating", old), ("RollingBack", old), ("InService", old)]
        else:
            self.rollouts[name] = [("Updating", old), ("InService", target)]
        return SimpleNamespace(status_code=200, headers={}, content=b""), {"EndpointArn": endpoint["EndpointArn"]}

    def _describe(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        name = self._body(params)["EndpointName"]
        steps = self.rollouts.get(name)
        if not steps:
            return None  # moto answers
        status, config = steps.pop(0)
        if not steps:
            del self.rollouts[name]
            self._switch(name, config)
            return None
        return SimpleNamespace(status_code=200, headers={}, content=b""), endpoint_response(name, status, config)

    def _switch(self, name: str, config_name: str | None) -> None:
        from moto.sagemaker.models import sagemaker_backends

        backend = sagemaker_backends[self.account][REGION]
        endpoint, config = backend.endpoints[name], backend.endpoint_configs[config_name]
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
