"""Logins that hold up under abuse, in front of Chainlit's own routes (an ASGI middleware and two small pools).

- **Throttled passwords.** Failed logins are counted per account name (5) and per client address (30: a class
  behind one proxy shares one) in a sliding window; past a limit a login is answered 429 with `Retry-After`
  (doubling with each further failure) before any password is checked. Failures are logged for the instructor,
  never with the password.
- **A bounded Argon2 pool.** Each check costs 64 MiB and a core for a fraction of a second: at most one check per
  core runs, a few more wait, and a flood beyond that is refused (429) instead of multiplying memory.
- **Trusted proxies only.** TUTOR_AUTH=header believes the user header only from TUTOR_TRUSTED_PROXIES
  (loopback by default) and, when TUTOR_PROXY_SECRET is set, only with that secret in TUTOR_PROXY_SECRET_HEADER.
- **Sessions that end with their account.** Every request and websocket that carries a login token is checked
  against the registry: a removed account's token gets 401 (the websocket is refused) at once.

    app.add_middleware(LoginGuard, settings=settings, registry=registry)
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import re
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from training.base.registry import Registry
from training.base.settings import Settings

log = logging.getLogger(__name__)

LOGIN_BODY = 4096  # a login form is a name and a password


class Throttle:
    """Failures per key in a sliding window; past `limit`, the wait before the next try doubles per failure.
    At most `max_keys` keys are remembered (the oldest forgotten first), so a flood of names can't grow it."""

    def __init__(self, limit: int = 5, window: float = 900.0, first_wait: float = 30.0, max_wait: float = 900.0,
                 max_keys: int = 10_000):
        self.limit, self.window, self.first_wait, self.max_wait, self.max_keys = limit, window, first_wait, max_wait, max_keys
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retry_after(self, key: str) -> int:
        """Seconds to wait before another try with this key; 0 when one may try now."""
        now = time.monotonic()
        times = self._recent(key, now)
        if len(times) < self.limit:
            return 0
        wait = times[-1] + min(self.max_wait, self.first_wait * 2 ** (len(times) - self.limit)) - now
        return int(wait + 0.999) if wait > 0 else 0

    def failed(self, key: str) -> None:
        self._failures.setdefault(key, []).append(time.monotonic())
        self._failures.move_to_end(key)
        del self._failures[key][:-4 * self.limit]
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class HashingPool:
    """Password checks on at most one thread per core (four at most); `waiting` more may queue, the rest are
    refused (Busy)."""

    def __init__(self, workers: int | None = None, waiting: int = 8):
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(self.workers + waiting)
        self._waiting = waiting

    async def run(self, function, *args):
        if self._slots.locked():
            raise Busy
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)


class Busy(Exception):
    """The hashing pool is full: the login is refused with 429 for now."""


def _client(scope) -> str:
    return (scope.get("client") or ("?", 0))[0]


def _network(address: str) -> str:
    """The throttle's key for an address: IPv6 by its /64 (a client may rotate within one), IPv4 as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else address


def trusted_proxy(settings: Settings, address: str, headers: dict[str, str]) -> bool:
    """Whether a request may name its user in the header: from a trusted proxy, with the secret where one is set."""
    explicit = "trusted_proxies" in settings.model_fields_set
    if settings.trusted_proxies and (explicit or settings.proxy_secret is None):  # a secret alone is enough
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if not any(ip in ipaddress.ip_network(net, strict=False) for net in settings.trusted_proxies):
            return False
    if settings.proxy_secret is not None:
        sent = headers.get(settings.proxy_secret_header.lower(), "")
        return hmac.compare_digest(sent.encode(), settings.proxy_secret.get_secret_value().encode())
    return bool(settings.trusted_proxies)


class LoginGuard:
    """ASGI middleware: throttles POST /login, refuses /auth/header from untrusted clients, and ends the sessions of
    removed accounts on every HTTP request and websocket."""

    def __init__(self, app, settings: Settings, registry: Registry):
        self.app, self.settings, self.registry = app, settings, registry
        self.names, self.addresses = Throttle(limit=5), Throttle(limit=30)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/login":
            return await self._login(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == "/auth/header" and self.settings.auth == "header" \
                and not trusted_proxy(self.settings, _client(scope), headers):
            log.warning("Refused a header login from %s: not a trusted proxy", _client(scope))
            return await _answer(scope, send, 403, "Logins through a header come only from the trusted proxy.")
        if self.settings.auth != "none" and not await self._active(_tokens(scope["headers"])):
            if scope["type"] == "websocket":
                return await _answer(scope, send, 401, "This account was removed: log in again.")
            # Over HTTP the request goes on without its login: pages load (and offer the login again), API calls
            # get Chainlit's own 401.
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k.lower() not in (b"cookie", b"authorization")]}
        await self.app(scope, receive, send)

    async def _active(self, tokens: list[str]) -> bool:
        """False when any validly signed token names an account that is gone (a bad signature is Chainlit's to
        refuse): every token a client sent is checked, whichever Chainlit would read."""
        from chainlit.auth import decode_jwt

        for token in tokens[:8]:
            try:
                identifier = decode_jwt(token).identifier
            except Exception:  # noqa: BLE001 - pyjwt's many errors: not ours to judge
                continue
            if await asyncio.to_thread(self.registry.account, identifier) is None:
                return False
        return True

    async def _login(self, scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > LOGIN_BODY:
                return await _answer(scope, send, 413, "A login form is a name and a password.")
        names = await _usernames(scope, body)
        if len(names) != 1:  # exactly the one name FastAPI will log in: no second one to steer the throttle
            return await _answer(scope, send, 400, "A login is one name and one password.")
        name, address = names[0][:64].lower(), _network(_client(scope))
        if wait := max(self.names.retry_after(name), self.addresses.retry_after(address)):
            log.warning("Throttled a login for %r from %s (%d s)", name, address, wait)
            return await _answer(scope, send, 429, "Too many failed logins: wait, then try again.",
                                 [(b"retry-after", str(wait).encode())])
        status = 0

        async def replay():
            nonlocal body
            sent, body = body, b""
            return {"type": "http.request", "body": sent, "more_body": False}

        async def watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, replay, watch)
        if status == 401:
            self.names.failed(name)
            self.addresses.failed(address)
            log.warning("Failed login for %r from %s", name, address)
        elif status == 200:
            self.names.succeeded(name)


GITHUB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def verified_emails(raw: dict) -> set[str]:
    """The emails a provider says it verified: Google's (`verified_email` in userinfo v2, `email_verified` in
    OpenID Connect, explicitly true), GitHub's verified list, and Entra ID's user principal name (a tenant may only
    use domains it proved it owns; its `mail` is set by any tenant's admin, so it never counts)."""
    found = set()
    if isinstance(raw.get("email"), str) and (raw.get("verified_email") is True or raw.get("email_verified") is True):
        found.add(raw["email"])
    for entry in raw.get("emails") or []:
        if isinstance(entry, dict) and entry.get("verified") is True and isinstance(entry.get("email"), str):
            found.add(entry["email"])
    if isinstance(raw.get("userPrincipalName"), str):
        found.add(raw["userPrincipalName"])
    return {email.lower() for email in found if "@" in email}


async def oauth_identity(settings: Settings, provider: str, token: str, raw: dict, default_user) -> str | None:
    """The account name ("provider:login") of an OAuth login that TUTOR_OAUTH_ALLOWED admits, else None: a verified
    email listed, or of a listed domain, or (GitHub) a member of a listed organisation."""
    emails = verified_emails(raw or {})
    allowed = [entry.lower() for entry in settings.oauth_allowed]
    admitted = any(email in allowed or email.rsplit("@", 1)[1] in allowed for email in emails)
    login = str(getattr(default_user, "identifier", "") or "")
    orgs = [entry.split(":", 1)[1] for entry in allowed if entry.startswith("github-org:")]
    if not admitted and provider == "github" and orgs and GITHUB_NAME.match(login):
        admitted = await _github_member(settings, login, [org for org in orgs if GITHUB_NAME.match(org)], token)
    if not admitted:
        log.warning("Refused an OAuth login through %s: not in TUTOR_OAUTH_ALLOWED", provider)
        return None
    return f"{provider}:{login}"


async def _github_member(settings: Settings, login: str, orgs: list[str], token: str) -> bool:
    """Whether the user belongs to one of the organisations (GitHub answers 204), asked with their own token."""
    import httpx

    api = settings.github_api.rstrip("/")
    async with httpx.AsyncClient(timeout=10) as client:
        for org in orgs:
            try:
                answer = await client.get(f"{api}/orgs/{org}/members/{login}",
                                          headers={"Authorization": f"Bearer {token}",
                                                   "Accept": "application/vnd.github+json"})
            except httpx.HTTPError as exc:
                log.warning("GitHub could not be asked about organisation %s: %s", org, type(exc).__name__)
                continue
            if answer.status_code == 204:
                return True
    return False


async def _usernames(scope, body: bytes) -> list[str]:
    """The `username` fields of a login form, parsed as FastAPI parses it (Chainlit's page posts multipart
    FormData; url-encoded works too); none for anything else."""
    from starlette.requests import Request

    async def buffered():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, buffered).form()
    except Exception:  # noqa: BLE001 - a malformed form: no name
        return []
    return [value for value in form.getlist("username") if isinstance(value, str)]


def _tokens(raw_headers) -> list[str]:
    """Every login token a request carries, read as Chainlit and socket.io read them: the cookie (each Cookie header,
    Starlette's parser, chunked cookies joined) and a bearer token."""
    from chainlit.auth import get_token_from_cookies
    from starlette.requests import cookie_parser

    cookies, found = {}, []
    for key, value in raw_headers:
        name = key.decode("latin-1").lower()
        if name == "cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
        elif name == "authorization" and value[:7].lower() == b"bearer ":
            found.append(value[7:].decode("latin-1").strip())
    if cookies and (token := get_token_from_cookies(cookies)):
        found.append(token)
    return [token for token in found if token]


async def _answer(scope, send, status: int, detail: str, extra: list | None = None) -> None:
    if scope["type"] == "websocket":  # closing before accepting answers the handshake with a 403
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
