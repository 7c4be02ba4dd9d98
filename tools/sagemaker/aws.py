"""Talking to AWS in execute mode: boto3 clients built from settings, one retry policy, one-line errors.

botocore's own retries (standard mode, `AGENTOPS_AWS_MAX_ATTEMPTS`) absorb network blips and 5xx within a
few seconds. SageMaker's control plane throttles for longer than that budget, so throttling gets a second,
slower layer here (tenacity, `AGENTOPS_AWS_THROTTLE_ATTEMPTS`), with an injectable sleep so tests run it
instantly. Every other AWS error becomes an `AwsError` whose message says what to do, on one line.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from agentops.errors import AgentOpsError, EnvironmentProblem
from agentops.settings import Settings

ClientFactory = Callable[[str], Any]  # service name -> boto3 client

MAX_THROTTLE_WAIT_SECONDS = 30
MAX_MESSAGE_CHARS = 300
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
UNKNOWN_CREDENTIALS_CODES = frozenset(
    {"UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken", "AuthFailure"}
)
ACCESS_DENIED_CODES = ACCESS_DENIED_CODES | EXPIRED_CODES | UNKNOWN_CREDENTIALS_CODES
# SageMaker reports an execution role it cannot use as a ValidationException on CreateModel.
_ROLE_MESSAGE = re.compile(r"assume (the )?role|ExecutionRoleArn|not authorized to perform: iam:PassRole", re.IGNORECASE)
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException", "NotFoundException", "NoSuchEntity"})
# SageMaker and Application Auto Scaling report a missing resource as a ValidationException.
_NOT_FOUND_MESSAGE = re.compile(r"could not find|not found|does not exist|no .{0,40} found", re.IGNORECASE)
_THROTTLED = ThrottledRetryableChecker()


class AwsError(AgentOpsError):
    """An AWS call failed in a way a person has to act on (the message says how)."""


class AwsEnvironmentProblem(AwsError, EnvironmentProblem):
    """The AWS set-up stops this, not the request: credentials, profile, region, permissions, quota, throttling.
    Front ends give EnvironmentProblem its own exit code; the message names the cause and the fix."""


def session_problem(error: BotoCoreError) -> str | None:
    """One line for what is wrong with the machine's AWS configuration, or None when the error is not that."""
    if isinstance(error, ProfileNotFound):
        profile = error.kwargs.get("profile", "?")
        return (
            f"AWS profile '{profile}' is not configured (AWS_PROFILE): set AWS_PROFILE to a profile in ~/.aws/config, "
            f"or create it with `aws configure --profile {profile}`"
        )
    if isinstance(error, PartialCredentialsError):
        return (
            f"incomplete AWS credentials ({error.kwargs.get('provider', 'env')} is missing {error.kwargs.get('cred_var', 'a value')}): "
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or unset them and use AWS_PROFILE"
        )
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role"
    if isinstance(error, (NoRegionError, InvalidRegionError)):
        return "no valid AWS region: set AWS_REGION (or AGENTOPS_AWS_REGION) to a region SageMaker runs in, e.g. us-east-1"
    return None


class AwsClients:
    """boto3 clients for every service, built once each from settings (region, endpoint override, retries)."""

    def __init__(self, settings: Settings, session: boto3.session.Session | None = None):
        try:
            self.session = session or boto3.session.Session(region_name=settings.aws_region)
        except BotoCoreError as error:  # an unknown AWS_PROFILE fails here already
            raise AwsEnvironmentProblem(session_problem(error) or one_line(str(error))) from error
        self.region = settings.aws_region
        self.endpoint_url = settings.aws_endpoint_url
        self.config = Config(retries={"max_attempts": settings.aws_max_attempts, "mode": "standard"}, user_agent_extra="agentops")
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # boto3 clients are thread-safe; creating them from one session is not

    def __call__(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(
                    service, region_name=self.region, endpoint_url=self.endpoint_url, config=self.config
                )
            return self._clients[service]

    def has_credentials(self) -> bool:
        """Whether boto3's credential chain finds credentials; a broken chain (unknown profile, half a key pair)
        is an AwsEnvironmentProblem naming the fix."""
        try:
            return self.session.get_credentials() is not None
        except BotoCoreError as error:
            raise AwsEnvironmentProblem(session_problem(error) or one_line(str(error))) from error


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_throttled(error: BaseException) -> bool:
    """botocore's own list of throttling codes, so both retry layers agree on what throttling is."""
    if not isinstance(error, ClientError):
        return False
    return _THROTTLED.is_retryable(RetryContext(attempt_number=1, parsed_response=error.response))


def is_role_problem(error: ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", ""))
    return error_code(error) in ("ValidationException", "AccessDeniedException") and bool(_ROLE_MESSAGE.search(message))


def is_not_found(error: ClientError) -> bool:
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", ""))
    return code in NOT_FOUND_CODES or (code == "ValidationException" and bool(_NOT_FOUND_MESSAGE.search(message)))


def one_line(text: str) -> str:
    """AWS messages (and a proxy's HTML error pages) folded to one short line."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def describe_failure(error: BaseException, service: str, operation: str, subject: str, attempts: int) -> str:
    what = f"{operation} {subject}".strip()
    if isinstance(error, ClientError):
        code = error_code(error) or "error"
        message = one_line(str(error.response.get("Error", {}).get("Message", ""))) or "no message"
        if is_throttled(error):
            return f"AWS kept throttling {what} after {attempts} attempts ({code}): try again later or raise AGENTOPS_AWS_THROTTLE_ATTEMPTS"
        if code in EXPIRED_CODES:
            return f"the AWS credentials have expired ({code}): refresh them (e.g. `aws sso login`, or new session credentials) and retry"
        if code in UNKNOWN_CREDENTIALS_CODES:
            return (
                f"AWS does not accept these credentials ({code}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
                "and that they belong to the account in use"
            )
        if is_role_problem(error):
            return (
                f"SageMaker cannot use the execution role for {what} ({message}): AGENTOPS_EXECUTION_ROLE_ARN must name an existing "
                "role that trusts sagemaker.amazonaws.com, and the caller needs iam:PassRole on it (terraform/iam.tf)"
            )
        if code in ACCESS_DENIED_CODES:
            hint = " and iam:PassRole on AGENTOPS_EXECUTION_ROLE_ARN" if operation == "CreateModel" else ""
            return f"AWS denied {what} ({code}: {message}): allow {service}:{operation}{hint} for the credentials AgentOps runs with"
        if code == "ResourceLimitExceeded":
            return f"AWS refused {what}: an account quota is reached ({message}); free capacity or ask AWS for a higher limit"
        if code in ("ValidationException", "ValidationError", "InvalidParameterValue", "InvalidParameterCombination"):
            return f"AWS rejected {what} ({code}): {message}"
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        return f"{service} {what} failed ({code}, HTTP {status}): {message}"
    if isinstance(error, BotoCoreError) and (problem := session_problem(error)):
        return problem
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return f"cannot reach AWS for {what} ({one_line(str(error))}): check the network, AWS_REGION and AGENTOPS_AWS_ENDPOINT_URL"
    if isinstance(error, ParamValidationError):
        return f"botocore refused the parameters of {what}: {one_line(str(error))}"
    return f"{service} {what} failed: {one_line(str(error))}"


def is_environment_problem(error: BaseException) -> bool:
    """Errors the AWS set-up causes (and a person fixes there), as opposed to a bad request or an AWS fault."""
    if isinstance(error, ClientError):
        code = error_code(error)
        return is_throttled(error) or code in ACCESS_DENIED_CODES or code == "ResourceLimitExceeded" or is_role_problem(error)
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        return True
    return isinstance(error, BotoCoreError) and session_problem(error) is not None


def aws_failure(error: BaseException, service: str, operation: str, subject: str, attempts: int) -> AwsError:
    kind = AwsEnvironmentProblem if is_environment_problem(error) else AwsError
    return kind(describe_failure(error, service, operation, subject, attempts))


class AwsCaller:
    """Makes one AWS call at a time with the throttling retry, and turns failures into AwsError."""

    def __init__(self, clients: ClientFactory, *, attempts: int, backoff_seconds: float, sleep: Callable[[float], None] = time.sleep):
        self.clients = clients
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(is_throttled),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=MAX_THROTTLE_WAIT_SECONDS),
            sleep=self.sleep,
            reraise=True,
        )

    def _send(self, service: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._retrying()(lambda: getattr(self.clients(service), method)(**params))

    def call(self, service: str, method: str, params: dict[str, Any], *, operation: str = "", subject: str = "") -> dict[str, Any]:
        try:
            return self._send(service, method, params)
        except (ClientError, BotoCoreError) as error:
            raise aws_failure(error, service, operation or method, subject, self.attempts) from error

    def pages(self, service: str, method: str, params: dict[str, Any], key: str, *, operation: str = "", subject: str = "") -> list[Any]:
        """Every item under `key` over all pages (NextToken), each page with the throttling retry: an
        inventory that stopped at the first page would leave older versions behind."""
        items: list[Any] = []
        token: str | None = None
        while True:
            page = self.call(service, method, params | ({"NextToken": token} if token else {}), operation=operation, subject=subject)
            items += page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return items

    def call_unless_missing(
        self, service: str, method: str, params: dict[str, Any], *, operation: str = "", subject: str = ""
    ) -> dict[str, Any] | None:
        """The response, or None when the resource does not exist: a look, or a delete of what is gone already."""
        try:
            return self._send(service, method, params)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise aws_failure(error, service, operation or method, subject, self.attempts) from error
        except BotoCoreError as error:
            raise aws_failure(error, service, operation or method, subject, self.attempts) from error


def caller_from_settings(settings: Settings, clients: ClientFactory, sleep: Callable[[float], None] = time.sleep) -> AwsCaller:
    return AwsCaller(clients, attempts=settings.aws_throttle_attempts, backoff_seconds=settings.aws_throttle_backoff_seconds, sleep=sleep)
