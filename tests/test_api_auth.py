"""Identity: API keys at rest and in use, and OIDC bearer tokens verified against a JWKS served over real
HTTP on 127.0.0.1 (a key pair generated here, in the manner of Cognito)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from served import AGENTOPS

from agentops.errors import AgentOpsError
from agentops.settings import Settings
from api import create_app
from api.auth import DEV_IDENTITIES, create_dev_keys, hash_key

PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"


# --- API keys -------------------------------------------------------------------------------------------


def test_keys_are_stored_hashed_and_shown_once(settings):
    keys = create_dev_keys(settings.api_keys_path)
    assert set(keys) == set(DEV_IDENTITIES)
    stored = settings.api_keys_path.read_text()
    assert all(key not in stored for key in keys.values()), "no key in plain text at rest"
    assert all(hash_key(key) in stored for key in keys.values())
    assert settings.api_keys_path.stat().st_mode & 0o077 == 0, "readable by its owner only"
    assert create_dev_keys(settings.api_keys_path) is None, "a second start creates (and prints) nothing"


def test_keys_from_the_environment_work_like_the_file(settings, live_server):
    key = "ak_from-the-environment-0123456789abcdef"
    configured = Settings(
        home=settings.home,
        _env_file=None,
        api_keys=json.dumps({"keys": [{"name": "ci-bot", "roles": ["viewer"], "sha256": hash_key(key)}]}),
    )
    url = live_server(create_app(configured))
    assert httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {key}"}).json() == {
        "name": "ci-bot",
        "display": "ci-bot",
        "roles": ["viewer"],
        "via": "api_key",
    }


@pytest.mark.parametrize("text", ["{not json", '{"keys": [{"name": "x", "roles": ["superuser"], "sha256": "00"}]}'])
def test_a_broken_keys_file_stops_the_service_before_it_listens(settings, text):
    settings.api_keys_path.write_text(text)
    with pytest.raises(AgentOpsError, match="API keys in .* are not valid"):
        create_app(settings)


def test_agentops_keys_add_prints_a_key_the_running_service_accepts(settings, start_service):
    url, _ = start_service()
    env = {**os.environ, "AGENTOPS_HOME": str(settings.home)}
    added = subprocess.run(
        [AGENTOPS, "keys", "add", "erin@example.com", "--role", "approver", "--role", "viewer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("ak_") and key not in settings.api_keys_path.read_text()
    me = httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {key}"}).json()
    assert me == {"name": "erin@example.com", "display": "erin@example.com", "roles": ["approver", "viewer"], "via": "api_key"}

    bad = subprocess.run([AGENTOPS, "keys", "add", "x", "--role", "root"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "roles" in bad.stderr and "Traceback" not in bad.stderr


def test_agentops_serve_refuses_to_start_when_nobody_could_sign_in(tmp_path):
    env = {**os.environ, "AGENTOPS_HOME": str(tmp_path / "state")}
    env.pop("AGENTOPS_API_KEYS", None)
    result = subprocess.run([AGENTOPS, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no API keys" in result.stderr and "--dev-keys" in result.stderr


# --- OIDC bearer tokens ----------------------------------------------------------------------------------

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TEST"
AUDIENCE = "agentops-client-id"


class Jwks:
    """The identity provider's signing keys, served as a JWKS document on 127.0.0.1."""

    def __init__(self):
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        body = json.dumps({"keys": [public | {"kid": "test-key", "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def token(self, key=None, **claims) -> str:
        now = int(time.time())
        base = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "u-123",
            "email": "olivia@example.com",
            "email_verified": True,
            "cognito:groups": ["approver"],
            "iat": now,
            "exp": now + 600,
        }
        merged = {k: v for k, v in (base | claims).items() if v is not None}  # None: leave the claim out
        return jwt.encode(merged, key or self.private, algorithm="RS256", headers={"kid": "test-key"})


@pytest.fixture
def idp():
    jwks = Jwks()
    yield jwks
    jwks.server.shutdown()


@pytest.fixture
def sso(settings, live_server, idp):
    keys = create_dev_keys(settings.api_keys_path)
    configured = Settings(home=settings.home, _env_file=None, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=idp.url)
    url = live_server(create_app(configured))

    def call(method: str, path: str, token: str, **kwargs) -> httpx.Response:
        return httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs)

    call.keys = keys
    return call


OLIVIA = f"{ISSUER.rstrip('/')}#u-123"  # an OIDC person is issuer + subject; the email is only shown


def test_a_token_from_the_identity_provider_signs_in_with_its_roles(sso, idp):
    me = sso("GET", "/me", idp.token()).json()
    assert me == {"name": OLIVIA, "display": "olivia@example.com", "roles": ["approver"], "via": "oidc"}


def test_an_sso_approver_decides_a_plan_a_key_holder_requested(sso, idp):
    created = sso("POST", "/plans", sso.keys["alice@example.com"], json={"intent": PROD_INTENT, "env": "prod"})
    plan_id = created.json()["plan_id"]
    decided = sso("POST", f"/plans/{plan_id}/decisions", idp.token(), json={"approved": True, "reason": "ok via SSO"})
    assert decided.status_code == 202 and decided.json()["decision"]["approver"] == OLIVIA
    own = sso("POST", "/plans", idp.token(**{"cognito:groups": ["requester", "approver"]}), json={"intent": PROD_INTENT, "env": "prod"})
    refused = sso("POST", f"/plans/{own.json()['plan_id']}/decisions", idp.token(), json={"approved": True})
    assert refused.status_code == 403 and f"{OLIVIA} requested" in refused.json()["message"]


def test_an_access_token_and_an_id_token_of_one_person_are_one_person(sso, idp):
    # The access token names no email; the ID token does. Both are the same subject of the same issuer.
    access = idp.token(token_use="access", email=None, email_verified=None, **{"cognito:groups": ["requester"]})
    id_token = idp.token(token_use="id", **{"cognito:groups": ["approver"]})
    plan_id = sso("POST", "/plans", access, json={"intent": PROD_INTENT, "env": "prod"}).json()["plan_id"]
    refused = sso("POST", f"/plans/{plan_id}/decisions", id_token, json={"approved": True, "reason": "me again"})
    assert refused.status_code == 403, refused.text
    assert sso("GET", f"/plans/{plan_id}", id_token).json()["status"] == "pending_approval"


@pytest.mark.parametrize("verified", [False, None, "true"])
def test_an_unverified_email_is_refused(sso, idp, verified):
    response = sso("GET", "/me", idp.token(email_verified=verified))
    assert response.status_code == 401 and "not verified" in response.json()["message"]


def test_a_token_without_an_audience_is_401(sso, idp):
    response = sso("GET", "/me", idp.token(aud=None))
    assert response.status_code == 401 and "aud" in response.json()["message"].lower()


def test_oidc_without_an_audience_does_not_start(settings):
    with pytest.raises(AgentOpsError, match="AGENTOPS_OIDC_AUDIENCE is required"):
        create_app(Settings(home=settings.home, _env_file=None, oidc_issuer=ISSUER, oidc_jwks_url="http://127.0.0.1:9/jwks.json"))


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"aud": "some-other-app"}, "audience"),
        ({"iss": "https://evil.example.com"}, "issuer"),
    ],
)
def test_a_token_that_does_not_verify_is_401(sso, idp, claims, words):
    response = sso("GET", "/me", idp.token(**claims))
    assert response.status_code == 401 and words in response.json()["message"].lower(), response.text


def test_a_token_signed_by_another_key_is_401(sso, idp):
    forged = idp.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    response = sso("GET", "/me", forged)
    assert response.status_code == 401 and "signature" in response.json()["message"].lower()


def test_a_token_without_an_agentops_role_is_403(sso, idp):
    response = sso("GET", "/plans", idp.token(**{"cognito:groups": ["billing"]}))
    assert response.status_code == 403 and "no AgentOps role" in response.json()["message"]
