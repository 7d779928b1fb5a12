"""Serving the chat safely: logins, the origin policy, request and upload limits, and chat history, wired into
Chainlit's server at import (assistant/chat/app.py calls `configure_from_environment()` before Chainlit starts).

A non-loopback address without logins is refused with what to set; header logins need a trusted proxy, OAuth an
allowlist. The guards themselves live in assistant/web/ (accounts, logins, origins, limits, history, uploads).
"""

from __future__ import annotations

import asyncio
import logging
import os

import chainlit as cl

from assistant.web import history
from assistant.web.accounts import auth_secret, authenticate, learner_for
from assistant.web.history_guard import guard_chainlit_routes
from assistant.web.limits import BodyLimit
from assistant.web.logins import Busy, HashingPool, LoginGuard, oauth_identity
from assistant.web.origins import OriginPolicy, is_loopback, protect_chainlit
from assistant.web.upload_route import stream_uploads
from training.base.common import make_private
from training.base.errors import TutorError
from training.base.registry import registry_for
from training.base.settings import Settings, get_settings

log = logging.getLogger(__name__)

UPLOAD_ROUTE = "/project/file"
REQUEST_LIMIT = 2 * 2**20  # the body of any other request


def configure_server(settings: Settings, host: str, port: int) -> None:
    """Wire logins, the origin policy, the upload limit and chat history into Chainlit's server (at import,
    before it starts). Refuses a non-loopback address without logins, saying how to turn them on."""
    if settings.auth == "none" and not is_loopback(host):
        raise SystemExit(f"Refusing to serve on {host}: other machines could use the app without logging in. "
                         "Set TUTOR_AUTH=password and add accounts with `tutor users add NAME` (or TUTOR_AUTH=header "
                         "behind a proxy that logs users in), or serve on 127.0.0.1. See SECURITY.md.")
    if settings.auth == "header" and not is_loopback(host) and not (
            "trusted_proxies" in settings.model_fields_set or settings.proxy_secret):
        raise SystemExit(f"Refusing header logins on {host}: anyone who reaches it could name any user. Set "
                         "TUTOR_TRUSTED_PROXIES to your proxy's address, or TUTOR_PROXY_SECRET to a secret the proxy "
                         "adds (or both). See SECURITY.md.")
    if settings.auth != "none" and os.environ.get("CHAINLIT_ROOT_PATH", "").strip("/"):
        raise SystemExit("Logins are not served under a root path (CHAINLIT_ROOT_PATH / --root-path): give the app "
                         "its own host name at the proxy instead. See SECURITY.md.")
    if settings.auth == "header":  # the proxy's own address is what header mode checks, not X-Forwarded-For
        os.environ["FORWARDED_ALLOW_IPS"] = ""
    if settings.auth == "oauth" and not settings.oauth_allowed:
        raise SystemExit("TUTOR_AUTH=oauth needs TUTOR_OAUTH_ALLOWED: the emails, email domains or GitHub "
                         "organisations (github-org:NAME) whose members may log in. See SECURITY.md.")
    make_private(settings.data_dir)
    registry = registry_for(settings)
    if settings.auth != "none":
        os.environ["CHAINLIT_AUTH_SECRET"] = auth_secret(settings.data_dir)
    if settings.auth == "password":
        hashing = HashingPool()

        @cl.password_auth_callback
        async def password_login(username: str, password: str):
            try:
                return _user(await hashing.run(authenticate, registry, username, password))
            except Busy:
                from fastapi import HTTPException

                raise HTTPException(429, "Too many logins at once: try again in a few seconds.",
                                    headers={"Retry-After": "5"}) from None
    elif settings.auth == "header":
        @cl.header_auth_callback
        async def header_login(headers):  # only from a trusted proxy: assistant.web.logins refuses the rest first
            name = headers.get(settings.auth_header)
            return _user(await _vouched(registry, name)) if name else None
    elif settings.auth == "oauth":
        try:
            @cl.oauth_callback
            async def oauth_login(provider_id, token, raw_user_data, default_user, id_token=None):
                name = await oauth_identity(settings, provider_id, token, raw_user_data, default_user)
                return _user(await _vouched(registry, name)) if name else None
        except ValueError:
            raise SystemExit("TUTOR_AUTH=oauth needs an OAuth provider: set its OAUTH_* variables as Chainlit's "
                             "authentication docs describe.") from None
    protect_chainlit(OriginPolicy(host, port, settings.allowed_origins))
    from chainlit.config import config
    from chainlit.server import app as server

    if config.features.spontaneous_file_upload:
        config.features.spontaneous_file_upload.max_size_mb = settings.max_upload_mb
    # An oversized upload is refused before it is read (and a fitting one streamed to disk: assistant.web.upload_route);
    # every other route takes small JSON (socket.io's polling posts included), logged in or not.
    server.add_middleware(BodyLimit, max_bytes=settings.max_upload_mb * 2**20 + 2**20, paths=(UPLOAD_ROUTE,))
    server.add_middleware(BodyLimit, max_bytes=REQUEST_LIMIT, exclude=(UPLOAD_ROUTE,))
    if settings.auth != "none":
        server.add_middleware(LoginGuard, settings=settings, registry=registry)
    cl.data_layer(lambda: history.data_layer(get_settings()))
    history.serve_files(settings)
    guard_chainlit_routes()
    stream_uploads()


def _user(learner) -> cl.User | None:
    """The session's user: the account's stable id (what owns its work and its history), its name for display."""
    return cl.User(identifier=learner.id, display_name=learner.name,
                   metadata={"role": "admin" if learner.admin else "user"}) if learner else None


async def _vouched(registry, name: str):
    """The account of a user a proxy or an OAuth provider vouches for (made on first sight); None for a name
    that can't be an account name, or whose account an admin removed."""
    try:
        return await asyncio.to_thread(learner_for, registry, name)
    except TutorError as exc:
        log.warning("Refused a login: %s", exc)
        return None


def configure_from_environment() -> None:
    try:
        settings = get_settings()
    except TutorError as exc:  # a bad .env: chats explain it; a non-loopback start is refused with it
        if not is_loopback(os.environ.get("CHAINLIT_HOST", "127.0.0.1")):
            raise SystemExit(str(exc)) from None
        log.error("%s", exc)
        return
    configure_server(settings, os.environ.get("CHAINLIT_HOST", "127.0.0.1"), int(os.environ.get("CHAINLIT_PORT", 8000)))
