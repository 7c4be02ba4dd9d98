"""`agentops` against NVIDIA endpoints, as a user runs it: the fake NIM as its own process, printing one
log line per request, and each command a separate process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from served import AGENTOPS

from agentops.settings import PROJECT_ROOT

PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"


@pytest.fixture
def fake_nim(tmp_path):
    """`python tests/fake_nim.py --port 0` in its own process; yields (url, path of its request log)."""
    log = tmp_path / "fake-nim.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "tests" / "fake_nim.py"), "--port", "0"], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            url = process.stdout.readline().strip()  # printed once the server listens
            assert url.startswith("http://127.0.0.1:"), url
            yield url, log
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def cli(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTOPS_", "NVIDIA_")) and k != "EXECUTE"}
    base |= {"AGENTOPS_HOME": str(tmp_path / "state"), "COLUMNS": "250", "AGENTOPS_NIM_BACKOFF_SECONDS": "0"}

    def run(*args: str, expect: int = 0, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run([AGENTOPS, *args], env=base | env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert result.returncode == expect, f"exit {result.returncode}\nstdout:{result.stdout}\nstderr:{result.stderr}"
        assert "Traceback" not in result.stderr + result.stdout
        return result

    return run


def nim_env(url: str) -> dict[str, str]:
    return {
        "AGENTOPS_PLANNER": "nim",
        "AGENTOPS_EMBEDDINGS": "nim",
        "AGENTOPS_RERANKER": "nim",
        "AGENTOPS_PLANNER_BASE_URL": url,
        "AGENTOPS_EMBEDDINGS_BASE_URL": url,
        "AGENTOPS_RERANKER_BASE_URL": url,
    }


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_run_in_nim_mode_plans_through_http_calls_seen_in_the_fakes_log(cli, fake_nim):
    url, log = fake_nim
    view = json.loads(cli("run", PROD_INTENT, "--env", "prod", "--user", "alice", "--json", **nim_env(url)).stdout)

    assert view["status"] == "pending_approval"
    assert view["planner"]["name"] == "nim" and view["planner"]["llm_calls"] == 1 and view["planner"]["tokens"] > 0
    requests = log.read_text()
    for line in (
        "POST /v1/embeddings model=nvidia/nv-embedqa-e5-v5",
        "POST /v1/ranking model=nvidia/nv-rerankqa-mistral-4b-v3",
        "POST /v1/chat/completions model=nvidia/llama-3.1-nemotron-nano-8b-v1",
    ):
        assert line in requests
    shown = cli("show", view["plan_id"]).stdout
    assert "planner nim: 1 round(s), 1 LLM call(s)" in shown


def test_doctor_offline_has_nothing_to_check(cli):
    out = cli("doctor").stdout
    assert "rules (offline)" in out and "local hashing (offline)" in out and "problem" not in out


def test_doctor_checks_each_endpoint(cli, fake_nim):
    url, log = fake_nim
    report = json.loads(cli("doctor", "--json", **nim_env(url)).stdout)
    assert report["ok"] is True
    assert [(c["service"], c["ok"]) for c in report["checks"]] == [(s, True) for s in ("planner", "embeddings", "reranker")]
    assert [c["detail"] for c in report["checks"]] == [
        "reachable; serves the model; a real chat completion answered",
        "reachable; serves the model; a real embedding request answered",
        "reachable; serves the model; a real ranking request answered",
    ]
    requests = log.read_text()
    assert requests.count("GET /v1/models") == 3
    assert [requests.count(f"POST /v1/{route}") for route in ("chat/completions", "embeddings", "ranking")] == [1, 1, 1]


def test_doctor_names_each_problem_on_its_own_line(cli, fake_nim):
    url, _ = fake_nim
    result = cli(
        "doctor",
        expect=6,  # ExitCode.ENVIRONMENT
        **nim_env(url)
        | {
            "AGENTOPS_PLANNER_BASE_URL": closed_url(),
            "AGENTOPS_EMBEDDINGS_BASE_URL": "",  # unset: NVIDIA's hosted catalog, and no key
            "AGENTOPS_RERANKER_MODEL": "nvidia/not-served-here",
        },
    )
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 3
    assert problems[0].startswith("problem: planner: NVIDIA planner endpoint") and "could not connect" in problems[0]
    assert problems[1].startswith("problem: embeddings: the embeddings uses NVIDIA's hosted catalog but no API key is set")
    assert problems[2].startswith("problem: reranker: reachable, but it serves") and "not nvidia/not-served-here" in problems[2]


def test_a_failed_plan_and_a_failed_search_are_one_line_each(cli):
    dead = closed_url()
    env = {"AGENTOPS_NIM_ON_FAILURE": "fail", "AGENTOPS_NIM_RETRIES": "0"}
    shown = cli(
        "run", PROD_INTENT, "--env", "prod", "--user", "alice", expect=13, AGENTOPS_PLANNER="nim", AGENTOPS_PLANNER_BASE_URL=dead, **env
    ).stdout  # 13: ExitCode.FAILED
    assert "status failed" in shown and "error: NVIDIA planner endpoint" in shown and "verdict" not in shown

    result = cli("kb", "search", "canary rollout", expect=1, AGENTOPS_EMBEDDINGS="nim", AGENTOPS_EMBEDDINGS_BASE_URL=dead, **env)
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: NVIDIA embeddings endpoint") and "could not connect" in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AGENTOPS_PLANNER": "gpt"}, "error: invalid setting planner: Input should be 'rules' or 'nim'"),
        ({"AGENTOPS_PLANNER": "nim", "AGENTOPS_NIM_TIMEOUT_SECONDS": "soon"}, "error: invalid setting nim_timeout_seconds:"),
        (
            {"AGENTOPS_PLANNER": "nim", "AGENTOPS_PLANNER_BASE_URL": "ftp://gpu-host/v1"},
            "error: AGENTOPS_PLANNER_BASE_URL 'ftp://gpu-host/v1': base_url must be an http(s)",
        ),
        ({"AGENTOPS_PLANNER": "nim"}, "error: the planner uses NVIDIA's hosted catalog but no API key is set"),
    ],
)
def test_a_bad_configuration_is_one_line(cli, env, message):
    result = cli("plan", "deploy churn-predictor to dev", "--env", "dev", expect=1, **env)
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_doctor_makes_a_real_request_per_part_and_reports_one_that_fails(tmp_path):
    """An endpoint that lists its models but fails every real call is a problem, not "ok"."""
    from fake_nim import CHAT, EMBEDDINGS, RANKING, FakeNim, Reply, error

    from agentops.settings import Settings
    from tools.nvidia.doctor import diagnose

    with FakeNim() as fake:
        fake.script(CHAT, error(500, "model crashed"))
        fake.script(EMBEDDINGS, Reply(body=b'{"data": "nope"}'))
        fake.script(RANKING, error(404, "no ranking here"))
        urls = {f"{part}_base_url": fake.url for part in ("planner", "embeddings", "reranker")}
        settings = Settings(_env_file=None, home=tmp_path, planner="nim", embeddings="nim", reranker="nim", nim_backoff_seconds=0, **urls)
        report = diagnose(settings)
    assert report["ok"] is False
    details = {c["service"]: c["detail"] for c in report["checks"]}
    assert details["planner"].startswith("lists its models, but a real chat completion failed") and "500" in details["planner"]
    assert details["embeddings"].startswith("lists its models, but a real embedding request failed")
    assert details["reranker"].startswith("lists its models, but a real ranking request failed") and "404" in details["reranker"]
