"""Accounts: who may log in, with which role, and who the learner of a chat is.

A single-user install has no login: everyone on 127.0.0.1 is the local learner (LOCAL_USER), an admin.
A shared instance turns on authentication (TUTOR_AUTH=password, header or oauth). Passwords are stored only as
Argon2id hashes (argon2-cffi) in the registry. Each account has a stable id that owns its work: a learner sees
only their own datasets, runs, models, comparisons and evaluations; an admin sees everyone's. A removed account
is retired at once (its sessions stop on their next request); the same name added again is a new person, and
the old work is handed over only on an admin's word (`tutor users transfer`). The owners `local` and `api` are
the app's own: no login of any kind becomes them.

    tutor users add alice [--admin]       # the password comes from a prompt, or stdin with --password-stdin
    tutor users list [--removed] | remove alice | transfer OLD_ID alice
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from training.base.errors import TutorError
from training.base.registry import LOCAL_USER, RESERVED, Registry

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# A name an OAuth provider vouches for is namespaced by the provider ("github:alice"): a GitHub login is chosen by
# its owner and must never meet an instructor's password account of the same name.
VOUCHED = re.compile(r"^(?:[a-z][a-z0-9-]{0,31}:)?[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying an unknown name against a real hash costs the same time as a known one: names don't leak."""
    return _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Learner:
    """The person behind a chat (or a CLI call): their account id owns what they make; an admin sees all."""

    id: str
    name: str
    admin: bool = False

    @property
    def scope(self) -> str | None:
        """The owner to filter the registry by: their own rows, or None (every owner) for an admin."""
        return None if self.admin else self.id


LOCAL_LEARNER = Learner(LOCAL_USER, LOCAL_USER, admin=True)


def _learner(account: dict | None) -> Learner | None:
    return None if account is None else Learner(account.id, account.name, admin=account.role == "admin")


def check_name(name: str, vouched: bool = False) -> str:
    """A name an account may have: letters, digits and a few signs, never a reserved owner's (any case)."""
    if not (VOUCHED if vouched else NAME).match(name or "") or name.split(":")[-1].lower() in RESERVED:
        raise TutorError("A user name is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or "
                         f"digit, and not one of {', '.join(RESERVED)} (the app's own).")
    return name


def add_user(registry: Registry, name: str, password: str | None, admin: bool = False) -> dict:
    """Create an account; `password=None` makes one that logs in only through a proxy header or OAuth (whose names
    may be namespaced by their provider, `github:ada`)."""
    check_name(name, vouched=password is None)
    if password is not None and len(password) < MIN_PASSWORD:
        raise TutorError(f"The password must have at least {MIN_PASSWORD} characters.")
    try:
        return registry.add_user(name, _hasher.hash(password) if password is not None else None,
                                 "admin" if admin else "user")
    except ValueError as exc:
        raise TutorError(str(exc)) from None


def authenticate(registry: Registry, name: str, password: str) -> Learner | None:
    """The learner when the name and password match an account, else None (in constant time either way).
    Blocking (Argon2 takes a fraction of a second and 64 MiB): assistant/web/logins.py runs it in a bounded pool."""
    account = registry.user(name) if NAME.match(name or "") else None
    stored = (account and account.password_hash) or _dummy_hash()
    try:
        _hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if account is None or not account.password_hash:
        return None
    return _learner(account)


def learner_for(registry: Registry, name: str) -> Learner:
    """A learner vouched for by a trusted proxy or an OAuth provider: their account, made on first sight. A name
    whose account an admin removed stays out until an admin adds it again (`tutor users add NAME --no-password`)."""
    check_name(name, vouched=True)
    account = registry.user(name)
    if account is None and any(u.name == name for u in registry.users(removed=True)):
        raise TutorError(f"The account {name} was removed; an admin can add it again.")
    if account is None:
        try:
            account = registry.add_user(name, None, "user")
        except ValueError:  # made by a concurrent first login
            account = registry.user(name)
    return _learner(account)


def learner_of(registry: Registry, user_id: str) -> Learner | None:
    """The learner of a session's account id, None once the account is removed."""
    return _learner(registry.account(user_id))


def owner_named(registry: Registry, name: str) -> str:
    """The owner id the CLI's `--owner NAME` means: the reserved owners as they are, else the account's id."""
    if name in RESERVED:
        return name
    if (account := registry.user(name)) is None:
        raise TutorError(f"No account named {name}.")
    return account.id


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
