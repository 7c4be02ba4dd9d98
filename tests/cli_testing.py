"""Run `agentops` commands in-process (typer's CliRunner on app.cli.app): the same parsing, error handling
and exit codes as the console script (app.cli._Commands does both), without a new Python per call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from app.cli import app

# Settings the developer's shell might carry that would change what a test sees.
_CLEARED = ("EXECUTE", "AGENTOPS_EXECUTE", "AGENTOPS_DATABASE_URL", "AGENTOPS_AUDIT_DYNAMODB_TABLE", "AGENTOPS_AUDIT_S3_BUCKET")


class Cli:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None):
        self.tmp, self.home = tmp, tmp / "state"
        for name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp)  # no .env of the repository
        self.env = {"AGENTOPS_HOME": str(self.home), "COLUMNS": "200", **(env or {})}
        self.runner = CliRunner()

    def __call__(self, *args: str, expect: int = 0, **env: str) -> Result:
        result = self.runner.invoke(app, list(args), env=self.env | env, catch_exceptions=False)
        assert result.exit_code == expect, f"exit {result.exit_code}\nstdout:{result.stdout}\nstderr:{result.stderr}"
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str, expect: int = 0, **env: str) -> Any:
        return json.loads(self(*args, "--json", expect=expect, **env).stdout)
