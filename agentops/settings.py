"""The one configuration schema: environment variables (prefix AGENTOPS_) and an optional `.env` file,
read from AGENTOPS_ENV_FILE or else AGENTOPS_HOME/.env -- never from whatever directory a command runs in.

Every default is an embedded, offline one: SQLite under `AGENTOPS_HOME`, the local embedding function,
the deterministic planner and dry-run deployment.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

# The checkout this module was loaded from: for tests and tools that run from the repository. The product
# itself never reads it, so an installed wheel works from any directory.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The policies ship inside the distribution (package data of `knowledge_base`), wherever it is installed.
BUNDLED_KNOWLEDGE_BASE = Path(str(files("knowledge_base")))
DEFAULT_HOME = Path(".agentops")


def env_file() -> Path:
    """Where optional settings are kept: AGENTOPS_ENV_FILE, else `.env` in the state directory."""
    explicit = os.environ.get("AGENTOPS_ENV_FILE")
    return Path(explicit) if explicit else Path(os.environ.get("AGENTOPS_HOME") or DEFAULT_HOME).expanduser() / ".env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTOPS_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The .env file is found when settings are read (not at import), so AGENTOPS_HOME set later counts.
        return init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=env_file()), file_secret_settings

    home: Path = Field(default=DEFAULT_HOME, description="State directory: checkpoints, plan index, audit log, Chroma.")
    database_url: str | None = Field(
        default=None,
        description="postgresql://...: checkpoints, plan index and audit log in Postgres, shared by every replica; unset: SQLite under home.",
    )
    knowledge_base_dir: Path = Field(default=BUNDLED_KNOWLEDGE_BASE, description="Policy documents (markdown + front matter).")
    collection_name: str = "policies"

    # Deployment. `EXECUTE=true` (no prefix) is accepted because that is what operators type.
    execute: bool = Field(default=False, validation_alias=AliasChoices("AGENTOPS_EXECUTE", "EXECUTE"))
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices("AGENTOPS_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"))
    execution_role_arn: str = "arn:aws:iam::000000000000:role/agentops-sagemaker-execution"
    default_image_uri: str | None = Field(
        default=None,
        description="Inference container for every plan that names none (e.g. your ECR image); unset: chosen by instance family "
        "(GPU/CPU) and inference_framework from tools/sagemaker/images.py (docs/execute.md).",
    )
    inference_framework: Literal["pytorch", "tensorflow"] = Field(
        default="pytorch", description="Framework of the AWS Deep Learning Container chosen when default_image_uri is unset."
    )
    artifact_bucket: str = Field(default="agentops-model-artifacts", description="Bucket assumed when an intent names no s3:// artifact.")
    data_capture_bucket: str = "agentops-data-capture"

    # --- execute mode (EXECUTE=true; docs/runbook.md) --------------------------------------------------
    # Dry-run reads none of these. Execute mode calls AWS with boto3's usual credential chain (AWS_PROFILE,
    # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance or task role) and refuses to start without
    # credentials or with the placeholder execution role above.
    aws_endpoint_url: str | None = Field(default=None, description="Send every AWS call here (e.g. a local moto server); unset: AWS.")
    aws_max_attempts: int = Field(default=3, ge=1, le=10, description="botocore attempts per call (standard mode: network errors, 5xx).")
    aws_throttle_attempts: int = Field(default=6, ge=1, le=20, description="Attempts per call while AWS throttles it.")
    aws_throttle_backoff_seconds: float = Field(default=1.0, ge=0, description="First wait after a throttled call; doubles, at most 30 s.")
    vpc_subnet_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated subnets for models where policy requires a VPC."
    )
    vpc_security_group_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated security groups, likewise."
    )
    watch_timeout_seconds: float = Field(
        default=3600, gt=0, description="Stop following an endpoint after this long (longer rollouts get their own budget)."
    )
    watch_poll_seconds: float = Field(
        default=15, gt=0, description="First wait between DescribeEndpoint calls; grows to watch_max_poll_seconds."
    )
    watch_max_poll_seconds: float = Field(default=60, gt=0)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("AGENTOPS_DATABASE_URL must be a postgresql:// URL (unset: the embedded SQLite)")
        return value or None

    @field_validator("vpc_subnet_ids", "vpc_security_group_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """Operators write `subnet-a,subnet-b`; JSON lists still work."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    # --- NVIDIA endpoints (docs/nvidia.md) -------------------------------------------------------------
    # Each model-backed part is opt-in; left alone, everything above stays offline. A base URL names a
    # self-hosted NIM (http://host:8000/v1); without one the part uses NVIDIA's hosted catalog and needs
    # the API key.
    planner: Literal["rules", "nim"] = Field(default="rules", description="rules: deterministic parser; nim: ChatNVIDIA.")
    embeddings: Literal["local", "nim"] = Field(default="local", description="local: hashing embeddings; nim: NVIDIAEmbeddings.")
    reranker: Literal["local", "nim"] = Field(default="local", description="local: BM25 + vector blend; nim: NVIDIARerank.")
    nvidia_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("AGENTOPS_NVIDIA_API_KEY", "NVIDIA_API_KEY"))
    planner_base_url: str | None = None
    embeddings_base_url: str | None = None
    reranker_base_url: str | None = None
    planner_model: str = "nvidia/llama-3.1-nemotron-nano-8b-v1"
    embeddings_model: str = "nvidia/nv-embedqa-e5-v5"
    reranker_model: str = "nvidia/nv-rerankqa-mistral-4b-v3"
    # Off: the plan must be one JSON object, and Nemotron's reasoning trace would only cost tokens and time.
    planner_thinking: bool = False
    planner_max_tokens: int = Field(default=1024, ge=64)
    planner_max_revisions: int = Field(default=2, ge=0, le=2, description="Re-plans after a guardrail block the model caused.")
    nim_timeout_seconds: float = Field(default=30.0, gt=0, description="Per HTTP attempt.")
    nim_retries: int = Field(default=2, ge=0, le=5, description="Extra attempts after a transient failure.")
    nim_backoff_seconds: float = Field(default=0.5, ge=0, description="First wait between attempts; doubles each time.")
    nim_on_failure: Literal["fallback", "fail"] = Field(
        default="fallback", description="fallback: offline default stands in; fail: the plan fails."
    )
    nvidia_telemetry: bool = Field(default=False, description="The client library's usage telemetry to NVIDIA (hosted only).")

    # --- audit (docs/audit.md) -------------------------------------------------------------------------
    # The embedded SQLite log is always written first and stays the source of truth; each AWS copy is
    # opt-in by naming its resource (values: `terraform output agentops_environment`). A remote copy that
    # fails is caught up by the next append or `agentops audit sync`.
    audit_dynamodb_table: str | None = Field(default=None, description="Mirror every audit event to this DynamoDB table.")
    audit_s3_bucket: str | None = Field(default=None, description="Publish digests to this S3 bucket (Object Lock, COMPLIANCE mode).")
    audit_s3_events: bool = Field(default=False, description="Also write each event to the S3 bucket as a locked object.")
    audit_retention_days: int = Field(default=365, ge=1, description="COMPLIANCE retention of each object written to S3.")
    audit_digest_every: int = Field(
        default=10, ge=0, description="Make a digest after this many new events (0: only on `agentops audit digest`)."
    )

    # --- HTTP service (`agentops serve`; docs/http-api.md) ---------------------------------------------
    # Every route but /healthz and /readyz needs an API key or an OIDC bearer token. API keys are stored
    # as SHA-256 hashes only, in the keys file and/or AGENTOPS_API_KEYS (the same JSON); `agentops keys add`
    # prints a new key once and stores its hash.
    host: str = Field(default="127.0.0.1", description="Address the HTTP service listens on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP service (0: any free port).")
    api_keys_file: Path | None = Field(default=None, description="Hashed API keys; default AGENTOPS_HOME/api-keys.json.")
    api_keys: str | None = Field(default=None, description='Hashed API keys as JSON: {"keys": [{"name", "roles", "sha256"}]}.')
    oidc_issuer: str | None = Field(default=None, description="Accept bearer JWTs from this OIDC issuer (e.g. a Cognito user pool URL).")
    oidc_audience: str | None = Field(default=None, description="Required `aud` of those tokens (the app client id); unchecked when unset.")
    oidc_jwks_url: str | None = Field(
        default=None, description="Where the issuer's signing keys are; default ISSUER/.well-known/jwks.json."
    )
    oidc_roles_claim: str = Field(default="cognito:groups", description="Claim listing the caller's roles (groups named like the roles).")
    oidc_name_claim: str = Field(default="email", description="Claim naming the caller (falls back to `sub`).")
    webhook_url: str | None = Field(default=None, description="Slack-compatible incoming webhook for approvals and deployments.")
    webhook_attempts: int = Field(default=4, ge=1, le=10, description="Tries per notification before it is dropped (logged).")
    webhook_backoff_seconds: float = Field(default=1.0, ge=0, description="First wait between tries; doubles each time.")
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, description="Per try.")
    expiry_check_seconds: float = Field(default=60.0, gt=0, description="How often the service expires overdue approval requests.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Larger request bodies are refused with 413.")

    @property
    def api_keys_path(self) -> Path:
        return self.api_keys_file or self.state_dir / "api-keys.json"

    @cached_property
    def state_dir(self) -> Path:
        path = self.home.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def checkpoint_db(self) -> Path:
        return self.state_dir / "checkpoints.sqlite"

    @property
    def database(self) -> Path | str:
        """Where the plan index and audit log live: the Postgres URL when one is set, else the SQLite file."""
        return self.database_url or self.app_db

    @property
    def app_db(self) -> Path:
        """Plan index and audit log."""
        return self.state_dir / "agentops.sqlite"

    @property
    def chroma_dir(self) -> Path:
        return self.state_dir / "chroma"
