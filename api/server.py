"""`agentops serve`: run the HTTP service with uvicorn, saying where it listens and how to sign in."""

from __future__ import annotations

import ctypes
import os

import uvicorn
from rich.console import Console

from agentops.errors import AgentOpsError
from agentops.settings import Settings
from api.app import create_app
from api.auth import DEV_IDENTITIES, create_dev_keys
from api.keys import KeyRing
from tools.sagemaker.execute import check_execute_ready
from tools.storage.database import require_postgres

console = Console()


_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives threads that allocate at once arenas of their own, up to 8 per core, and keeps what they
    grew: with a drive thread per running plan (app/service.py) the service's memory crept up ~6 % in 90 s
    under 16 connections (317 -> 337 MB) and stayed flat with two (274 MB; bench/bench_http.py's load). Before the threads start; an
    operator's MALLOC_ARENA_MAX wins; nothing to do off glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_ARENA_MAX, arenas)


def serve(settings: Settings, dev_keys: bool = False) -> None:
    limit_malloc_arenas()
    created = create_dev_keys(settings.api_keys_path) if dev_keys else None
    if not len(KeyRing(settings)) and not settings.oidc_issuer:
        raise AgentOpsError(
            f"no API keys in {settings.api_keys_path} or AGENTOPS_API_KEYS, and no OIDC issuer: nobody could sign in. "
            "Create a key with `agentops keys add NAME --role approver`, or start with --dev-keys for demo keys"
        )
    if settings.database_url:
        require_postgres(settings.database_url)  # here, not in the lifespan: uvicorn would print a traceback
    if settings.execute:
        check_execute_ready(settings)  # likewise: no role or no credentials is one line, not a lifespan traceback
    app = create_app(settings)
    url = f"http://{settings.host}:{settings.port}/"
    console.rule("AgentOps")
    console.print(f"approvals page  [bold]{url}[/]     API docs  {url}docs     metrics  {url}metrics")
    if created:
        console.print("\n[bold]Demo API keys[/] — shown this once; only their hashes are kept, in " + str(settings.api_keys_path))
        for name, key in created.items():
            console.print(f"  {', '.join(DEV_IDENTITIES[name]):<10} {name:<20} {key}")
        console.print(
            '\nTry:  curl -s -H "Authorization: Bearer ALICE_KEY" -H "Content-Type: application/json" '
            f'-d \'{{"intent": "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%", "env": "prod"}}\' {url}plans'
        )
        console.print("then sign in on the page with BOB_KEY and approve (ALICE_KEY's own approval is refused).")
    else:
        console.print(
            f"Sign in with an API key from {settings.api_keys_path}. Lost the demo keys? Delete that file and start "
            "again with --dev-keys, or make one: agentops keys add NAME --role approver"
        )
    console.rule()
    console.file.flush()  # before uvicorn takes over: a pipe (CI, a supervisor) would otherwise hold this back
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False, server_header=False)
