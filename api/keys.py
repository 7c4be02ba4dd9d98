"""API keys at rest, shared by `agentops keys …` (which changes them) and the service (which reads them).

The keys file (`AGENTOPS_HOME/api-keys.json`, mode 0600) holds `{"keys": [{"id", "name", "roles",
"sha256", "created_at"}]}`. Only the SHA-256 of a key is stored: keys are 256-bit random strings, not
passwords, so a plain hash leaves nothing to brute-force. A key is named by its `id` (shown when it is
made and by `agentops keys list`), never by its owner's name: one person may hold several keys.

- **Changes are whole-file and atomic**: written to a private temporary file in the same directory, then
  `os.replace`d over the old one, under an exclusive lock so two `agentops keys` commands never lose each
  other's change. A reader sees the old file or the new one, never half of either.
- **The service sees a change on its next request** (`KeyRing`): one `stat` per request; the file is
  re-read when its inode, size or mtime changes.
- **A file that does not parse fails closed**: no key from it is valid until it is fixed. Keeping the
  previous keys instead would keep a key someone just revoked by editing the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from agentops.errors import AgentOpsError, NotFound
from agentops.settings import Settings

Role = Literal["viewer", "requester", "approver", "admin"]
ROLES: tuple[str, ...] = ("viewer", "requester", "approver", "admin")
KEY_PREFIX = "ak_"  # tells an API key from a JWT at a glance, and makes leaked keys easy to grep for
MIN_ID_PREFIX = 6  # the shortest part of a key id a command accepts
logger = logging.getLogger("agentops.api")

# The demo identities `agentops serve --dev-keys` creates on first start.
DEV_IDENTITIES: dict[str, list[str]] = {
    "alice@example.com": ["requester"],
    "bob@example.com": ["approver"],
    "carol@example.com": ["approver"],
    "victor@example.com": ["viewer"],
    "admin@example.com": ["admin"],
}


class KeyEntry(BaseModel):
    id: str = Field(pattern=r"^[0-9a-f]{12}$", description="Names the key in `agentops keys revoke/rotate`; not secret.")
    name: str = Field(min_length=1, max_length=200, description="The person (or service) the key belongs to.")
    roles: list[Role] = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex; the key itself is never stored.")
    created_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _id_of_older_entries(cls, data: Any) -> Any:
        # Files written before keys had ids: the hash's first 12 hex digits name the key, stably.
        if isinstance(data, dict) and "id" not in data and isinstance(data.get("sha256"), str):
            return {**data, "id": data["sha256"][:12]}
        return data


class KeyFile(BaseModel):
    keys: list[KeyEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> KeyFile:
        for field in ("id", "sha256"):
            values = [getattr(k, field) for k in self.keys]
            if len(values) != len(set(values)):
                raise ValueError(f"two keys have the same {field}")
        return self


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _first_error(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(map(str, problem["loc"]))
    return f"{where}: {problem['msg']}" if where else problem["msg"]


def parse_keys(text: str, where: str) -> KeyFile:
    try:
        return KeyFile.model_validate_json(text)
    except ValidationError as exc:
        raise AgentOpsError(f"API keys in {where} are not valid: {_first_error(exc)}") from None


def read_key_file(path: Path) -> KeyFile:
    """The keys file as it is now; an empty set when there is none. Raises AgentOpsError when it does not parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return KeyFile()
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentOpsError(f"API keys in {path} cannot be read: {exc}") from None
    return parse_keys(text, str(path))


def _entry(name: str, roles: list[str], key: str) -> KeyEntry:
    try:
        return KeyEntry.model_validate(
            {"id": secrets.token_hex(6), "name": name.strip(), "roles": roles, "sha256": hash_key(key), "created_at": datetime.now(UTC)}
        )
    except ValidationError as exc:
        raise AgentOpsError(f"{_first_error(exc)} (roles: {', '.join(ROLES)})") from None


class KeyStore:
    """The keys file, as `agentops keys` changes it."""

    def __init__(self, path: Path):
        self.path = path

    def list(self) -> list[KeyEntry]:
        return read_key_file(self.path).keys

    def add(self, name: str, roles: list[str]) -> tuple[KeyEntry, str]:
        """A new key for `name`: its entry and the key itself (to show once)."""
        key = new_key()
        entry = _entry(name, roles, key)
        with self._changing() as keys:
            keys.append(entry)
        return entry, key

    def revoke(self, key_id: str) -> KeyEntry:
        with self._changing() as keys:
            entry = self._find(keys, key_id)
            keys.remove(entry)
        return entry

    def rotate(self, key_id: str) -> tuple[KeyEntry, KeyEntry, str]:
        """Replace a key by a new one for the same person and roles, in one write: (old, new, new key)."""
        key = new_key()
        with self._changing() as keys:
            old = self._find(keys, key_id)
            new = _entry(old.name, list(old.roles), key)
            keys[keys.index(old)] = new
        return old, new, key

    def _find(self, keys: list[KeyEntry], key_id: str) -> KeyEntry:
        wanted = key_id.strip().lower()
        exact = [k for k in keys if k.id == wanted]
        if exact:
            return exact[0]
        if len(wanted) < MIN_ID_PREFIX:
            raise AgentOpsError(f"give at least {MIN_ID_PREFIX} characters of the key id (agentops keys list shows them)")
        matches = [k for k in keys if k.id.startswith(wanted)]
        if not matches:
            raise NotFound(
                f"no API key with id '{key_id}' in {self.path} (agentops keys list shows them; keys given in AGENTOPS_API_KEYS are changed there)"
            )
        if len(matches) > 1:
            raise AgentOpsError(f"'{key_id}' matches {len(matches)} keys: " + ", ".join(f"{k.id} ({k.name})" for k in matches))
        return matches[0]

    @contextlib.contextmanager
    def _changing(self) -> Iterator[list[KeyEntry]]:
        """Read, let the caller change the list, write it back whole — under a lock, so racing commands queue."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            keys = list(read_key_file(self.path).keys)  # a broken file is refused, never overwritten
            yield keys
            write_key_file(self.path, KeyFile(keys=keys))
        finally:
            os.close(lock_fd)  # releases the lock


def add_key(path: Path, name: str, roles: list[str]) -> str:
    """Create a key for `name`, store its hash in the keys file, and return the key (shown once)."""
    return KeyStore(path).add(name, roles)[1]


def create_dev_keys(path: Path) -> dict[str, str] | None:
    """On first start only: demo keys for DEV_IDENTITIES (name → key, to print once). None if the file exists."""
    if path.exists():
        return None
    keys = {name: new_key() for name in DEV_IDENTITIES}
    write_key_file(path, KeyFile(keys=[_entry(n, DEV_IDENTITIES[n], k) for n, k in keys.items()]))
    return keys


def write_key_file(path: Path, keys: KeyFile) -> None:
    """Written whole to a private temporary file next to it, then renamed over it: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(keys.model_dump_json(indent=2, exclude_none=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --- the service's side -----------------------------------------------------------------------------


class KeysUnavailable(AgentOpsError):
    """The keys file is broken: no API key is accepted until it is fixed."""


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


class KeyRing:
    """The API keys in force: the file's (re-read when it changes) and AGENTOPS_API_KEYS (read once).

    `on_invalid(message)` is called once per broken version of the file (the service counts it in a metric).
    """

    def __init__(self, settings: Settings, on_invalid: Callable[[str], None] | None = None):
        self.path = settings.api_keys_path
        self.on_invalid = on_invalid
        self._env = parse_keys(settings.api_keys, "AGENTOPS_API_KEYS").keys if settings.api_keys else []
        self._lock = threading.Lock()
        self._stamp = _stamp(self.path)
        self._problem: str | None = None
        self._by_hash = self._index(read_key_file(self.path).keys)  # broken at start: the service does not start

    def _index(self, file_keys: list[KeyEntry]) -> dict[str, KeyEntry]:
        return {e.sha256: e for e in [*self._env, *file_keys]}

    def __len__(self) -> int:
        return len(self._current())

    def identify(self, key: str) -> KeyEntry | None:
        """The entry of a valid key, or None. Raises KeysUnavailable while the keys file is broken."""
        return self._current().get(hash_key(key))

    def _current(self) -> dict[str, KeyEntry]:
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._reload(stamp)
        if self._problem is not None:
            raise KeysUnavailable(self._problem)
        return self._by_hash

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        try:
            file_keys = read_key_file(self.path).keys
        except AgentOpsError as exc:
            # Fail closed: neither the broken file's keys nor the previous ones (a revoked key among them).
            self._by_hash, self._problem = {}, f"no API key is accepted until the keys file is fixed: {exc}"
            logger.error("refusing every API key until it is fixed: %s", exc)
            if self.on_invalid is not None:
                self.on_invalid(str(exc))
        else:
            self._by_hash, self._problem = self._index(file_keys), None
            logger.info("API keys re-read from %s: %d key(s)", self.path, len(file_keys))
        self._stamp = stamp
