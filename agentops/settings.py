"""The one configuration schema: environment variables (prefix AGENTOPS_) and an optional `.env`.

Every default is an embedded, offline one: SQLite under `AGENTOPS_HOME`, the local embedding function,
the deterministic planner and dry-run deployment.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTOPS_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".agentops"), description="State directory: checkpoints, plan index, audit log, Chroma.")
    knowledge_base_dir: Path = Field(default=PROJECT_ROOT / "knowledge_base", description="Policy documents (markdown + front matter).")
    collection_name: str = "policies"

    # Deployment. `EXECUTE=true` (no prefix) is accepted because that is what operators type.
    execute: bool = Field(default=False, validation_alias=AliasChoices("AGENTOPS_EXECUTE", "EXECUTE"))
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices("AGENTOPS_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"))
    execution_role_arn: str = "arn:aws:iam::000000000000:role/agentops-sagemaker-execution"
    default_image_uri: str = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311-ubuntu20.04-sagemaker"
    artifact_bucket: str = Field(default="agentops-model-artifacts", description="Bucket assumed when an intent names no s3:// artifact.")
    data_capture_bucket: str = "agentops-data-capture"

    @cached_property
    def state_dir(self) -> Path:
        path = self.home.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def checkpoint_db(self) -> Path:
        return self.state_dir / "checkpoints.sqlite"

    @property
    def app_db(self) -> Path:
        """Plan index and audit log."""
        return self.state_dir / "agentops.sqlite"

    @property
    def chroma_dir(self) -> Path:
        return self.state_dir / "chroma"
