"""Which web pages may drive the app: its own address and TUTOR_ALLOWED_ORIGINS, nothing else.

A page from another origin (another site, or just 127.0.0.2) runs in the learner's own browser, so it can
reach a tutor on 127.0.0.1 that has no login, and Chainlit's socket.io server accepts any Origin. Browsers
always send a page's Origin with a websocket handshake and with a state-changing request, so:

- the websocket and every POST/PUT/PATCH/DELETE with an Origin outside the list get a 403;
- socket.io itself checks the Origin too (engineio's own check, given the same list);
- CORS answers only listed origins (Chainlit shipped allow_origins = ["*"]);
- on a loopback address, a request whose Host is not one of the app's names is refused: a page at
  evil.example that resolves to 127.0.0.1 (DNS rebinding) would otherwise count as the app's own origin.

Behind a reverse proxy, add the public address: TUTOR_ALLOWED_ORIGINS=https://tutor.example.edu.

    python -m assistant.web.origins 127.0.0.1 8000      # the origins and hosts the app would accept
"""

from __future__ import annotations

import ipaddress
import json
import logging

log = logging.getLogger(__name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
WILDCARDS = {"0.0.0.0", "::", ""}


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class OriginPolicy:
    """The origins and Host names the app answers, from its bind address and the configured extras.

    Bound to a wildcard address without configured origins, it falls back to "same origin as the Host",
    which suits a login-protected instance reached by any of the machine's names."""

    def __init__(self, host: str, port: int, extra_origins: list[str]):
        self.extra = [o.lower() for o in extra_origins]
        names = ["127.0.0.1", "localhost"] if is_loopback(host) else ([host] if host not in WILDCARDS else [])
        own = [f"{scheme}://{_netloc(name, port)}" for name in names for scheme in ("http", "https")]
        self.origins: list[str] | None = own + self.extra if (own or self.extra) else None
        # Host names: checked on loopback, where no login stands between a rebinding page and the app.
        self.hosts: set[str] | None = None
        if is_loopback(host):
            self.hosts = {_netloc(name, port) for name in names}
            self.hosts |= {origin.split("://", 1)[1] for origin in self.extra}
            self.hosts |= {origin.split("://", 1)[1].rsplit(":", 1)[0] for origin in self.extra}  # default ports

    def allows_origin(self, origin: str | None, host: str) -> bool:
        if not origin:  # engineio also asks without one, to build CORS headers: none are due then
            return False
        origin = origin.lower()
        if self.origins is None:
            return origin in (f"http://{host}", f"https://{host}")
        return origin in self.origins

    def allows_host(self, host: str) -> bool:
        return self.hosts is None or host.lower() in self.hosts


class OriginGuard:
    """ASGI middleware: refuses foreign Hosts and foreign-Origin websockets and state-changing requests."""

    def __init__(self, app, policy: OriginPolicy):
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = {k.lower(): v for k, v in scope["headers"]}
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin", b"").decode("latin-1")
            problem = None
            if not self.policy.allows_host(host):
                problem = "Unknown Host: add this address to TUTOR_ALLOWED_ORIGINS to use it."
            elif origin and (scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS) \
                    and not self.policy.allows_origin(origin, host):
                problem = "This page's origin may not use the app (see TUTOR_ALLOWED_ORIGINS)."
            if problem:
                log.warning("Refused a %s request (Host %r, Origin %r)", scope["type"], host, origin)
                await _refuse(scope, send, problem)
                return
        await self.app(scope, receive, send)


async def _refuse(scope, send, message: str) -> None:
    if scope["type"] == "websocket":  # closing before accepting answers the handshake with a 403
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def protect_chainlit(policy: OriginPolicy) -> None:
    """Apply the policy to Chainlit's server: the guard in front, socket.io's own check, and CORS."""
    from chainlit.config import config
    from chainlit.server import app, sio

    app.add_middleware(OriginGuard, policy=policy)
    sio.eio.cors_allowed_origins = lambda origin, environ: policy.allows_origin(origin, environ.get("HTTP_HOST", ""))
    # Chainlit's CORS middleware holds this very list and reads it when the server starts.
    config.project.allow_origins[:] = policy.origins or []


if __name__ == "__main__":
    import sys

    shown = OriginPolicy(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
    print(json.dumps({"origins": shown.origins, "hosts": sorted(shown.hosts) if shown.hosts else None}, indent=2))
