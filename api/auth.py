"""Who is calling, and what they may do.

Two ways in, one result (a `Principal`: a person and their roles):

- **API keys**, for scripts and the approvals page. Stored as SHA-256 hashes only (keys file and/or
  AGENTOPS_API_KEYS). A plain hash is enough because keys are 256-bit random strings, not passwords: there
  is nothing to brute-force. Looking the hash up in a dict leaks timing about the *hash* at most, which
  says nothing usable about a key.
- **Bearer JWTs** from the team's OIDC provider (e.g. Cognito), verified against its JWKS; the roles come
  from a claim (Cognito groups named like the roles).

Roles: `viewer` reads; `requester` submits intents; `approver` decides; `admin` may do all of it. Every
role can read. Whoever decides is the authenticated caller, never a name in the request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from agentops.settings import Settings
from api.errors import ApiError

# API keys at rest live in api/keys.py (shared with `agentops keys`); re-exported for the service's callers.
from api.keys import DEV_IDENTITIES, KEY_PREFIX, ROLES, KeyRing, KeysUnavailable, Role, add_key, create_dev_keys, hash_key

__all__ = ["DEV_IDENTITIES", "ROLES", "Authenticator", "Principal", "Role", "add_key", "create_dev_keys", "hash_key", "require"]
logger = logging.getLogger("agentops.api")


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    via: Literal["api_key", "oidc"]

    def can(self, role: Role) -> bool:
        return "admin" in self.roles or role in self.roles or (role == "viewer" and bool(self.roles))


# --- OIDC bearer tokens ------------------------------------------------------------------------------


class OidcVerifier:
    """Checks a JWT's signature against the issuer's JWKS (fetched and cached by PyJWKClient), its issuer,
    audience (when configured) and expiry; names the caller from a claim and reads roles from another."""

    ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384"]

    def __init__(self, settings: Settings):
        assert settings.oidc_issuer
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.roles_claim = settings.oidc_roles_claim
        self.name_claim = settings.oidc_name_claim
        jwks_url = settings.oidc_jwks_url or self.issuer.rstrip("/") + "/.well-known/jwks.json"
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    def identify(self, token: str) -> Principal:
        """Blocking (it may fetch the JWKS): call it from a worker thread."""
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise ApiError(
                503, "identity_provider_unreachable", "the identity provider's signing keys could not be fetched; try again"
            ) from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise _unauthorized(f"bearer token not accepted: {exc}") from None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=self.ALGORITHMS,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss"], "verify_aud": self.audience is not None},
            )
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"bearer token not accepted: {exc}") from None
        name = claims.get(self.name_claim) or claims.get("sub")
        if not isinstance(name, str) or not name.strip():
            raise _unauthorized(f"bearer token names nobody (no '{self.name_claim}' or 'sub' claim)")
        return Principal(name.strip(), frozenset(_roles(claims.get(self.roles_claim))), "oidc")


def _roles(claim: Any) -> list[str]:
    values = claim.split() if isinstance(claim, str) else claim if isinstance(claim, list) else []
    return [v for v in values if v in ROLES]


# --- the FastAPI side -------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="An API key (ak_…) or an OIDC access/ID token (JWT).")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey", description="An API key (ak_…).")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


class Authenticator:
    def __init__(self, settings: Settings, on_invalid_keys: Callable[[str], None] | None = None):
        self.settings = settings
        # A broken keys file stops the server here, before it listens; a later broken edit refuses every key.
        self.keys = KeyRing(settings, on_invalid=on_invalid_keys)
        self.oidc = OidcVerifier(settings) if settings.oidc_issuer else None

    async def identify(self, credential: str | None) -> Principal:
        if not credential:
            raise _unauthorized("no credentials: send 'Authorization: Bearer <API key or token>' or 'X-API-Key: <API key>'")
        if credential.startswith(KEY_PREFIX) or self.oidc is None or credential.count(".") != 2:
            try:
                entry = self.keys.identify(credential)  # one stat per request: a changed file is re-read
            except KeysUnavailable:
                raise ApiError(503, "keys_unavailable", "API keys cannot be checked right now; the server log says why") from None
            if entry is None:
                raise _unauthorized("unknown API key")
            return Principal(entry.name.strip(), frozenset(entry.roles), "api_key")
        return await asyncio.to_thread(self.oidc.identify, credential)


def require(role: Role):
    """A route dependency: the caller, who must hold `role` (401 without valid credentials, 403 without the role)."""

    async def caller(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
        api_key: str | None = Depends(_api_key_header),
    ) -> Principal:
        principal = await request.app.state.auth.identify(bearer.credentials if bearer else api_key)
        if not principal.can(role):
            held = ", ".join(sorted(principal.roles)) or "no AgentOps role"
            raise ApiError(403, "forbidden", f"{principal.name} has {held}; this needs the {role} role")
        return principal

    return caller
