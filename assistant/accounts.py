"""Accounts: who may log in, with which role, and who the learner of a chat is.

A single-user install has no login: everyone on 127.0.0.1 is the local learner (LOCAL_USER), an admin.
A shared instance turns on authentication (TUTOR_AUTH=password) and adds accounts; passwords are stored
only as Argon2id hashes (argon2-cffi) in the registry. Each learner then sees only their own datasets,
runs, models, comparisons and evaluations; an admin sees everyone's.

    tutor users add alice [--admin]       # the password comes from a prompt, or stdin with --password-stdin
    tutor users list | remove alice
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from training.errors import TutorError
from training.registry import LOCAL_USER, Registry

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()
# Verifying an unknown name against a real hash costs the same time as a known one: names don't leak.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Learner:
    """The person behind a chat (or a CLI call): their name owns what they make; an admin sees all."""

    name: str
    admin: bool = False

    @property
    def scope(self) -> str | None:
        """The owner to filter the registry by: their own rows, or None (every owner) for an admin."""
        return None if self.admin else self.name


LOCAL_LEARNER = Learner(LOCAL_USER, admin=True)


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise TutorError("A user name is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.")
    return name


def add_user(registry: Registry, name: str, password: str | None, admin: bool = False) -> dict:
    """Create an account; `password=None` makes one that logs in only through a proxy header or OAuth."""
    check_name(name)
    if password is not None and len(password) < MIN_PASSWORD:
        raise TutorError(f"The password must have at least {MIN_PASSWORD} characters.")
    try:
        return registry.add_user(name, _hasher.hash(password) if password is not None else None,
                                 "admin" if admin else "user")
    except ValueError as exc:
        raise TutorError(str(exc)) from None


def authenticate(registry: Registry, name: str, password: str) -> Learner | None:
    """The learner when the name and password match an account, else None (in constant time either way)."""
    account = registry.user(name) if NAME.match(name or "") else None
    stored = (account or {}).get("password_hash") or _DUMMY_HASH
    try:
        _hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if account is None or not account["password_hash"]:
        return None
    return Learner(account["name"], admin=account["role"] == "admin")


def learner_for(registry: Registry, name: str) -> Learner:
    """A learner vouched for by a proxy or an OAuth provider: their account, made on first sight."""
    check_name(name)
    account = registry.user(name)
    if account is None:
        try:
            account = registry.add_user(name, None, "user")
        except ValueError:  # made by a concurrent first login
            account = registry.user(name)
    return Learner(account["name"], admin=account["role"] == "admin")


def auth_secret(data_dir: Path) -> str:
    """CHAINLIT_AUTH_SECRET (signs login tokens): the environment's, else one generated once into the data dir
    (readable by its owner only), so logins survive restarts without anyone handling a secret."""
    if secret := os.environ.get("CHAINLIT_AUTH_SECRET"):
        return secret
    path = Path(data_dir) / "auth-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".auth-secret.{os.getpid()}.tmp")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(staging, path)  # atomic, and never replaces a secret another process made first
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return path.read_text().strip()

