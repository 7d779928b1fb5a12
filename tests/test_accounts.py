"""Accounts: `tutor users add|list|remove|transfer`, Argon2id hashes only, constant-work checks, a login secret made
once; stable ids (a name added again is a new person), reserved owners, the login throttle, and who OAuth admits."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Response

from assistant.web.accounts import add_user, auth_secret, authenticate, learner_for, learner_of
from assistant.web.logins import Throttle, oauth_identity
from tests.http_server import ServerThread
from training.base.errors import TutorError
from training.base.registry import Registry
from training.base.settings import Settings


def tutor(tmp_path, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    env["TUTOR_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run([sys.executable, "-m", "assistant.cli.main", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def test_users_add_list_remove_and_transfer_from_the_cli(tmp_path):
    added = tutor(tmp_path, "users", "add", "alice", "--admin", "--password-stdin", stdin="correct horse battery\n")
    assert added.returncode == 0 and "Added admin alice" in added.stdout
    assert tutor(tmp_path, "users", "add", "bob", "--password-stdin", stdin="correct horse\n").returncode == 0
    listed = json.loads(tutor(tmp_path, "users", "list", "--json").stdout)
    assert [{k: v for k, v in u.items() if k != "id"} for u in listed] == [
        {"name": "alice", "role": "admin", "password": True}, {"name": "bob", "role": "user", "password": True}]
    assert all(u["id"].startswith("u-") for u in listed)
    stored = (tmp_path / "data" / "registry.sqlite").read_bytes()
    assert b"correct horse" not in stored and b"$argon2id$" in stored, "only Argon2id hashes are stored"
    again = tutor(tmp_path, "users", "add", "bob", "--password-stdin", stdin="another one\n")
    assert again.returncode == 1 and "exists already" in again.stderr
    short = tutor(tmp_path, "users", "add", "carol", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    for reserved in ("local", "api", "API"):
        refused = tutor(tmp_path, "users", "add", reserved, "--password-stdin", stdin="correct horse\n")
        assert refused.returncode == 1 and "the app's own" in refused.stderr, reserved

    old_bob = next(u["id"] for u in listed if u["name"] == "bob")
    Registry(tmp_path / "data" / "registry.sqlite").add_dataset("bob's", {}, {}, owner=old_bob)
    assert tutor(tmp_path, "users", "remove", "bob").returncode == 0
    assert [u["name"] for u in json.loads(tutor(tmp_path, "users", "list", "--json").stdout)] == ["alice"]
    assert json.loads(tutor(tmp_path, "users", "list", "--removed", "--json").stdout)[0]["id"] == old_bob
    gone = tutor(tmp_path, "users", "remove", "bob")
    assert gone.returncode == 1 and "No account named bob" in gone.stderr

    # The name added again is a new person: none of the old work, until an admin hands it over.
    assert tutor(tmp_path, "users", "add", "bob", "--password-stdin", stdin="new person!\n").returncode == 0
    registry = Registry(tmp_path / "data" / "registry.sqlite")
    new_bob = registry.user("bob").id
    assert new_bob != old_bob and registry.datasets(new_bob) == []
    moved = tutor(tmp_path, "users", "transfer", old_bob, "bob")
    assert moved.returncode == 0 and "1 datasets" in moved.stdout, moved.stderr
    assert [d.name for d in registry.datasets(new_bob)] == ["bob's"]
    (tmp_path / "upload.jsonl").write_bytes(b"x" * 3 * 2**20)
    registry.add_file(new_bob, "upload.jsonl", tmp_path / "upload.jsonl", purpose="dataset")
    registry.create_run("local", {}, tmp_path / "run-b", run_id="run-b", owner=new_bob)
    usage = {u["name"]: u for u in json.loads(tutor(tmp_path, "users", "list", "--usage", "--json").stdout)}
    assert usage["bob"]["disk_gb"] == round(3 * 2**20 / 2**30, 3) and usage["bob"]["jobs"] == 1
    assert usage["alice"]["disk_gb"] == 0 and usage["alice"]["jobs"] == 0
    unknown = tutor(tmp_path, "users", "transfer", "u-nobody", "bob")
    assert unknown.returncode == 1 and "No account has the id u-nobody" in unknown.stderr


def test_passwords_are_checked_names_validated_and_sessions_end_with_the_account(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite")
    alice = add_user(registry, "alice", "correct horse")
    assert authenticate(registry, "alice", "correct horse").id == alice.id
    assert authenticate(registry, "alice", "Correct horse") is None
    assert authenticate(registry, "nobody", "correct horse") is None
    assert authenticate(registry, "'; DROP TABLE users; --", "x") is None
    add_user(registry, "proxy-only", None)  # logs in through a proxy header or OAuth, never with a password
    assert authenticate(registry, "proxy-only", "") is None
    with pytest.raises(TutorError, match="A user name is"):
        add_user(registry, "../admin", "correct horse")
    dora = learner_for(registry, "dora@example.edu")
    assert dora.name == "dora@example.edu" and not dora.admin, "made on first sight"
    assert learner_for(registry, "github:dora").id != dora.id, "an OAuth identity is namespaced by its provider"
    for reserved in ("local", "api", "Local", "github:api"):  # no mode's login may become the app's own owners
        with pytest.raises(TutorError, match="the app's own"):
            learner_for(registry, reserved)
    assert learner_of(registry, alice.id).name == "alice"
    registry.remove_user("alice")
    assert learner_of(registry, alice.id) is None and authenticate(registry, "alice", "correct horse") is None
    registry.remove_user("dora@example.edu")  # vouched for by a proxy: not re-made at the next login
    with pytest.raises(TutorError, match="was removed; an admin can add it again"):
        learner_for(registry, "dora@example.edu")
    add_user(registry, "dora@example.edu", None)
    assert learner_for(registry, "dora@example.edu").id != dora.id, "re-added by an admin: a new person"
    add_user(registry, "github:ada", None, admin=True)  # an instructor made admin before their first OAuth login
    assert learner_for(registry, "github:ada").admin
    with pytest.raises(TutorError, match="A user name is"):
        add_user(registry, "github:ada2", "a password")  # a password account never takes a provider's name


def test_the_login_secret_is_made_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET", raising=False)
    first = auth_secret(tmp_path)
    assert len(first) >= 48 and auth_secret(tmp_path) == first
    assert oct((tmp_path / "auth-secret").stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "from-the-environment")
    assert auth_secret(tmp_path) == "from-the-environment"


def test_the_throttle_waits_longer_with_each_failure_and_stays_bounded():
    throttle = Throttle(limit=3, first_wait=30, max_keys=100)
    for _ in range(3):
        assert throttle.retry_after("alice") == 0
        throttle.failed("alice")
    assert throttle.retry_after("alice") == 30 and throttle.retry_after("bob") == 0
    throttle.failed("alice")
    assert throttle.retry_after("alice") == 60, "doubles with each further failure"
    throttle.succeeded("alice")
    assert throttle.retry_after("alice") == 0
    for n in range(1000):  # a flood of names: the oldest are forgotten, memory stays put
        throttle.failed(f"name-{n}")
    assert len(throttle._failures) == 100


async def test_oauth_admits_only_listed_emails_domains_and_organisations(tmp_path):
    github = FastAPI()

    @github.get("/orgs/{org}/members/{login}")
    async def member(org: str, login: str):
        return Response(status_code=204 if (org, login) == ("uni-ml", "ada") else 404)

    with ServerThread(github) as server:
        settings = Settings(data_dir=tmp_path, oauth_allowed=["grace@navy.mil", "uni.edu", "github-org:uni-ml"],
                            github_api=f"http://127.0.0.1:{server.port}")
        user = SimpleNamespace

        async def who(provider, raw, login):
            return await oauth_identity(settings, provider, "gho_token", raw, user(identifier=login))

        assert await who("google", {"email": "Grace@navy.mil", "email_verified": True}, "grace@navy.mil") == \
            "google:grace@navy.mil"
        assert await who("google", {"email": "bob@uni.edu", "verified_email": True}, "bob@uni.edu") == \
            "google:bob@uni.edu"
        for unverified in ({"email": "bob@uni.edu"}, {"email": "bob@uni.edu", "verified_email": False}):
            assert await who("google", unverified, "bob@uni.edu") is None, "only an email the provider verified"
        assert await who("azure-ad", {"mail": "eve@uni.edu", "userPrincipalName": "eve@evil.example"}, "eve") is None, \
            "Entra ID's `mail` is any tenant admin's to set"
        assert await who("azure-ad", {"userPrincipalName": "ada@uni.edu"}, "ada@uni.edu") == "azure-ad:ada@uni.edu"
        assert await who("google", {"email": "eve@evil.example"}, "eve@evil.example") is None
        assert await who("github", {"emails": [{"email": "x@uni.edu", "verified": False}]}, "eve") is None
        assert await who("github", {"emails": []}, "ada") == "github:ada", "a member of the listed organisation"
        assert await who("github", {"emails": []}, "mallory") is None
        assert "GET /orgs/uni-ml/members/ada" in server.paths
