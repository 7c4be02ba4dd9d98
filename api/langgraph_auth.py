"""Authentication for LangGraph Server (`langgraph dev`, LangGraph Studio, the LangGraph SDK): the same API
keys and OIDC tokens as the HTTP service (api/auth.py), wired in through `auth` in langgraph.json.

LangGraph Server puts the user this returns into every run's `configurable["langgraph_auth_user"]` and
refuses that key from clients, so the graph's nodes read the caller from there (graph/context.py
`caller_of`): the intake node takes the requester from it, the approval node the approver. The rules
themselves (roles, separation of duties) are the approval node's, the same for every entry point.

Studio's own sign-in (LangSmith) is switched off in langgraph.json (`disable_studio_auth`): it would
let any run in as a "studio user" with no AgentOps identity. Studio then sends an API key like any client.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from langgraph_sdk import Auth

from agentops.approval import APPROVER_ROLES, REQUESTER_ROLES
from agentops.settings import Settings
from api.auth import Authenticator, Principal
from api.errors import ApiError

auth = Auth()


@lru_cache(maxsize=1)
def _authenticator() -> Authenticator:
    return Authenticator(Settings())


def _identify(credential: str | None) -> Principal:
    return _authenticator().identify_blocking(credential)


@auth.authenticate
async def authenticate(headers: dict[bytes, bytes]) -> Auth.types.MinimalUserDict:
    header = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, token = header.partition(" ")
    credential = token.strip() if scheme.lower() == "bearer" else None
    credential = credential or headers.get(b"x-api-key", b"").decode("latin-1").strip() or None
    try:
        # Off the event loop: reading the keys file and fetching the JWKS block (LangGraph Server checks).
        principal = await asyncio.to_thread(_identify, credential)
    except ApiError as exc:
        raise Auth.exceptions.HTTPException(status_code=exc.status, detail=exc.message) from None
    if not principal.roles:
        raise Auth.exceptions.HTTPException(status_code=403, detail=f"{principal.name} has no AgentOps role")
    return {"identity": principal.name, "display_name": principal.display, "permissions": sorted(principal.roles)}


@auth.on
async def deny_the_rest(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Everything not allowed below is refused: above all `threads.update`, which would write a plan's state
    (its status, its decisions) directly, past every node; and deleting threads, editing assistants, crons
    and the store."""
    return False


@auth.on.threads.read
@auth.on.threads.search
@auth.on.assistants.read
@auth.on.assistants.search
async def allow_reading(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Every role reads every plan (as on the HTTP service): approvers must see what they decide."""
    return None


@auth.on.threads.create
async def on_thread(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    """A thread (one plan) belongs to the person who opened it."""
    metadata = value.setdefault("metadata", {})  # changed in place: the server stores this dict
    metadata["owner"] = ctx.user.identity


@auth.on.threads.create_run
async def on_run(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, str] | None:
    """Runs (a new plan, or a decision resuming one) need a role that runs plans: viewers only read. A new
    plan starts only on a thread of one's own (LangGraph would otherwise let input on someone else's thread
    overwrite what their plan says); a decision may resume anyone's, and who may decide on which plan is the
    approval node's to say."""
    if not set(ctx.permissions) & (REQUESTER_ROLES | APPROVER_ROLES):
        raise Auth.exceptions.HTTPException(status_code=403, detail=f"{ctx.user.identity} may read plans, not run them")
    if (value.get("kwargs") or {}).get("input") is not None:
        return {"owner": ctx.user.identity}
    return None
