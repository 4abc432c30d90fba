"""Who may use the planner console and what they may do.

The users file (`$INVENTORY_PIPELINE_CONSOLE_DIR/users.json`) maps a name to a role. With the
embedded default login it also holds an Argon2id hash of the password (argon2-cffi: a salted,
memory-hard hash; the password itself is never stored). Behind the company's identity provider
(OIDC, or an authenticating proxy; docs/console.md) the provider proves who the user is and the
file only says what they may do: such "external" users have a role and no password, so they can
never log in with one.

Roles: `viewer` (dashboards and the queue, read only), `planner` (answers decisions), `admin`
(answers, and manages users). A session ends after `console_session_minutes` without activity.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("viewer", "planner", "admin")
ANSWERING_ROLES = ("planner", "admin")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{1,127}$")  # what the decision log records as the planner
MIN_PASSWORD_LENGTH = 10
_HASHER = PasswordHasher()  # Argon2id with argon2-cffi's current recommended parameters


class UserError(ValueError):
    """A user that cannot be added or changed (bad name, role or password)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def may_answer(self) -> bool:
        return self.role in ANSWERING_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def users_path(console_dir: Path) -> Path:
    return Path(console_dir) / "users.json"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())["users"] if path.is_file() else {}


def _save(path: Path, users: dict) -> None:
    """Written whole to a temporary file and renamed: a reader never sees half a users file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".users-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"users": users}, f, indent=2, sort_keys=True)
    os.chmod(tmp, 0o600)  # hashes are secrets too
    os.replace(tmp, path)


def set_user(path: Path, name: str, password: str | None, role: str, external: bool = False) -> User:
    """Add a user or replace their password and role. An external user (signed in by the identity
    provider, `name` = the identity's claim, e.g. an e-mail address) has a role and no password."""
    if not NAME_PATTERN.match(name or ""):
        raise UserError(
            f"user name {name!r}: 2-128 letters, digits, '.', '_', '@', '+' or '-', starting with a letter or digit"
        )
    if role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
    if not external and len(password or "") < MIN_PASSWORD_LENGTH:
        raise UserError(f"password of {name}: at least {MIN_PASSWORD_LENGTH} characters")
    users = _load(path)
    users[name] = {"role": role, "external": True} if external else {"role": role, "hash": _HASHER.hash(password)}
    _save(path, users)
    return User(name, role)


def remove_user(path: Path, name: str) -> bool:
    users = _load(path)
    if name not in users:
        return False
    del users[name]
    _save(path, users)
    return True


def list_users(path: Path) -> list[User]:
    return [User(n, u["role"]) for n, u in sorted(_load(path).items())]


def lookup(path: Path, name: str | None) -> User | None:
    """The user's current role (re-read on every page: a demoted or removed user loses their
    rights at once, not at their next login); None for a name the file does not hold."""
    u = _load(path).get(name or "") if name else None
    return User(name, u["role"]) if u else None


def authenticate(path: Path, name: str, password: str) -> User | None:
    """The user when the password matches their hash, else None (an unknown name costs the same
    hash check, so response times do not tell which names exist)."""
    u = _load(path).get(name or "")
    try:
        if u is None or "hash" not in u:  # unknown, or external (signs in through the identity provider)
            _HASHER.verify(_DUMMY_HASH, password or "")
            return None
        _HASHER.verify(u["hash"], password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return User(name, u["role"])


_DUMMY_HASH = _HASHER.hash("not a password of anyone")


@dataclass
class Session:
    """A logged-in user; `active` refreshes it, `expired` says when it lapsed (idle timeout)."""

    user: User
    last_seen: float
    idle_minutes: float

    @classmethod
    def start(cls, user: User, idle_minutes: float, now: float | None = None) -> Session:
        return cls(user, time.time() if now is None else now, idle_minutes)

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) - self.last_seen > self.idle_minutes * 60

    def touch(self, now: float | None = None) -> None:
        self.last_seen = time.time() if now is None else now
