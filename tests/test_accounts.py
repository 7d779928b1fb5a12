"""Accounts: `tutor users add|list|remove`, Argon2id hashes only, constant-work checks, a login secret made once."""

import json
import os
import subprocess
import sys

import pytest

from assistant.accounts import add_user, auth_secret, authenticate, learner_for
from training.errors import TutorError
from training.registry import Registry


def tutor(tmp_path, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    env["TUTOR_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def test_users_add_list_and_remove_from_the_cli(tmp_path):
    added = tutor(tmp_path, "users", "add", "alice", "--admin", "--password-stdin", stdin="correct horse battery\n")
    assert added.returncode == 0 and "Added admin alice" in added.stdout
    assert tutor(tmp_path, "users", "add", "bob", "--password-stdin", stdin="correct horse\n").returncode == 0
    listed = json.loads(tutor(tmp_path, "users", "list", "--json").stdout)
    assert listed == [{"name": "alice", "role": "admin", "password": True}, {"name": "bob", "role": "user",
                                                                               "password": True}]
    stored = (tmp_path / "data" / "registry.sqlite").read_bytes()
    assert b"correct horse" not in stored and b"$argon2id$" in stored, "only Argon2id hashes are stored"
    again = tutor(tmp_path, "users", "add", "bob", "--password-stdin", stdin="another one\n")
    assert again.returncode == 1 and "exists already" in again.stderr
    short = tutor(tmp_path, "users", "add", "carol", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    assert tutor(tmp_path, "users", "remove", "bob").returncode == 0
    assert [u["name"] for u in json.loads(tutor(tmp_path, "users", "list", "--json").stdout)] == ["alice"]
    gone = tutor(tmp_path, "users", "remove", "bob")
    assert gone.returncode == 1 and "No account named bob" in gone.stderr


def test_passwords_are_checked_and_names_validated(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite")
    add_user(registry, "alice", "correct horse")
    assert authenticate(registry, "alice", "correct horse").name == "alice"
    assert authenticate(registry, "alice", "Correct horse") is None
    assert authenticate(registry, "nobody", "correct horse") is None
    assert authenticate(registry, "'; DROP TABLE users; --", "x") is None
    add_user(registry, "proxy-only", None)  # logs in through a proxy header or OAuth, never with a password
    assert authenticate(registry, "proxy-only", "") is None
    with pytest.raises(TutorError, match="A user name is"):
        add_user(registry, "../admin", "correct horse")
    assert learner_for(registry, "dora@example.edu").name == "dora@example.edu", "made on first sight"
    assert registry.user("dora@example.edu")["role"] == "user"


def test_the_login_secret_is_made_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET", raising=False)
    first = auth_secret(tmp_path)
    assert len(first) >= 48 and auth_secret(tmp_path) == first
    assert oct((tmp_path / "auth-secret").stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "from-the-environment")
    assert auth_secret(tmp_path) == "from-the-environment"
