"""The README's commands, run as written, so the docs cannot drift from the code.

The commands are read out of README.md's fenced `bash` blocks (and docs/http-api.md's curl block) every
time — never copied here. Each line is either run (`agentops …` in-process through the real typer app;
`curl …` by bash against a real service on 127.0.0.1), checked (`make X`: the target exists), or skipped
for a reason named in SKIPPED. A line that fits none of these fails the test: a new README command must
be run here, or its skip explained.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from cli_testing import Cli

from agentops.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# Lines not run, each with the reason; matched by prefix.
SKIPPED = {
    "source .venv/bin/activate": "the tests already run in the project's virtualenv",
    "agentops serve": "blocks; the curl story below runs against the same service, started in-process",
    ".venv/bin/langgraph dev": "a server of its own: tests/test_studio.py starts it and drives a run through the SDK",
    ".venv/bin/python bench/": "benchmarks: minutes of load, numbers not assertions",
    "python3 -m pip download": "needs the package index (network)",
    "PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/wheels make test": "installs from a wheelhouse and runs the suite (recursive)",
}


def fenced_blocks(path: Path, language: str = "bash") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def command_lines(block: str) -> list[str]:
    """One entry per command: backslash continuations joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    lines = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(line.strip())
    return lines


def skip_reason(line: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if line.startswith(prefix)), None)


def readme_commands() -> list[str]:
    return [line for block in fenced_blocks(README) for line in command_lines(block)]


def documented_exit(line: str) -> int:
    """The exit code the README states for a command, in the comment line under it ("(exit 11)"); 0 if none."""
    text = README.read_text().splitlines()
    for at, readme_line in enumerate(text[:-1]):
        if readme_line.strip() == line.strip():
            stated = re.search(r"^\s*#.*\(exit (\d+)\)", text[at + 1])
            return int(stated.group(1)) if stated else 0
    return 0


def test_every_readme_command_is_run_checked_or_skipped_for_a_reason():
    for line in readme_commands():
        kind = line.split()[0]
        assert kind in ("agentops", "make", "curl") or re.match(r"^[A-Z_]+=ak_\.\.\.", line) or skip_reason(line), (
            f"README command not covered by tests/test_docs.py: {line}"
        )


def test_the_make_targets_the_readme_names_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = {re.match(r"^make (\w+)", line).group(1) for line in readme_commands() if line.startswith("make ")}
    assert targets >= {"run", "test"}
    for target in targets | {"demo", "bench"}:
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} is documented but the Makefile has no such target"


def _agentops_words(line: str) -> tuple[list[str], str | None]:
    """The arguments after `agentops`, and the file a `> file` redirection names."""
    words = shlex.split(line, comments=True)[1:]
    target = None
    if ">" in words:
        at = words.index(">")
        words, target = words[:at], words[at + 1]
    return words, target


def test_the_readme_command_line_block_runs_as_written(tmp_path, monkeypatch):
    cli = Cli(tmp_path, monkeypatch)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the README runs from a checkout
    lines = [line for line in readme_commands() if line.startswith("agentops ") and not skip_reason(line)]
    assert len(lines) >= 20, "the README's command block was found"
    ran = []
    for line in lines:
        words, target = _agentops_words(line)
        if "PLAN_ID" in words:
            words = [_plan_for(cli, words) if w == "PLAN_ID" else w for w in words]
        if "KEY_ID" in words:
            newest = cli.json("keys", "list")[-1]["id"]
            words = [newest if w == "KEY_ID" else w for w in words]
        result = cli(*words, expect=documented_exit(line))  # no traceback: every documented command works as shown
        if target:
            (tmp_path / target).write_text(result.stdout)
        ran.append(words[0])
    assert {"plan", "run", "approvals", "show", "approve", "reject", "resume", "validate", "audit", "keys", "plans"} <= set(ran)
    assert json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])["seq"] == 1


def _plan_for(cli: Cli, words: list[str]) -> str:
    """PLAN_ID: for approve and reject, a plan still waiting (a different one each); otherwise the first plan run."""
    if words[0] in ("approve", "reject"):
        return cli.json("approvals")[0]["plan_id"]
    return cli.json("plans", "--sort", "created")[-1]["plan_id"]


def _curl_story(block: str, url: str, keys: dict[str, str]) -> list[dict]:
    """Run a doc's curl block line by line with bash: its `X_KEY=ak_...` lines get real keys, its address the
    test service's, and PLAN_ID the plan the first request made. Every answer is parsed as JSON."""
    variables: dict[str, str] = {}
    answers: list[dict] = []
    for line in command_lines(block):
        assignment = re.match(r"^([A-Z_]+)=ak_\.\.\.", line)
        if assignment:
            person = {"ALICE_KEY": "alice@example.com", "BOB_KEY": "bob@example.com"}[assignment.group(1)]
            variables[assignment.group(1)] = keys[person]
            continue
        assert line.startswith("curl "), line
        if "PLAN_ID" in line:
            line = line.replace("PLAN_ID", answers[0]["plan_id"])
        command = line.replace("http://127.0.0.1:8080", url)
        done = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"],
            env={"PATH": "/usr/bin:/bin", **variables},
            capture_output=True,
            text=True,
            timeout=120,
        )
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0 and status.startswith("2"), f"{line}\n-> {status} {body}{done.stderr}"
        answers.append(_parse(body))
    return answers


def _parse(body: str):
    if body.lstrip().startswith("event:"):  # a server-sent event stream: its last event's data
        data = [line[len("data:") :] for line in body.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return json.loads(body)


@pytest.fixture
def service(tmp_path, live_server):
    from api import create_app
    from api.auth import create_dev_keys

    settings = Settings(home=tmp_path / "service", _env_file=None)
    keys = create_dev_keys(settings.api_keys_path)  # what `make run` (agentops serve --dev-keys) prints
    return live_server(create_app(settings)), keys


def test_the_readme_curl_story_runs_against_a_real_service(service):
    url, keys = service
    [block] = [b for b in fenced_blocks(README) if "curl " in b]
    submitted, waiting = _curl_story(block, url, keys)
    assert submitted["status"] == "pending_approval"
    assert [p["plan_id"] for p in waiting] == [submitted["plan_id"]], "bob sees alice's plan waiting"


def test_the_http_api_curl_examples_run_against_a_real_service(service):
    url, keys = service
    [block] = [b for b in fenced_blocks(ROOT / "docs" / "http-api.md") if "curl " in b and "ALICE_KEY" in b]
    submitted, decided, streamed = _curl_story(block, url, keys)
    assert submitted["status"] == "pending_approval"
    assert decided["plan_id"] == submitted["plan_id"]
    assert streamed["status"] == "deployed"
