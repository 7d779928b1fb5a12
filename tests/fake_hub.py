"""A real HTTP server on 127.0.0.1 speaking the part of the Hugging Face Hub that huggingface_hub's
snapshot_download / hf_hub_download / model_info and datasets' load_dataset call, for tests.

The Hub is outside this machine, so tests run the real clients against this server with
`HF_ENDPOINT=hub.endpoint`. Like the Hub, a large ("LFS") file's /resolve/ answers 302 to a CDN on another
origin (here a second port), carrying the file's metadata (X-Repo-Commit, X-Linked-Etag, X-Linked-Size) on the
redirect itself; the client then downloads from the CDN without its Authorization header. No Xet headers are
ever sent, so hf_xet stays out of it.

    with FakeHub() as hub:
        hub.add_repo("org/tiny", folder)                 # a model repo from a folder (or {path: bytes})
        hub.add_repo("org/chat", files, kind="dataset")
        hub.add_repo("org/gated", folder, gated=True)    # files need `Bearer hub.token`: else 401 GatedRepo
        hub.break_once.add("model.safetensors")          # the next GET of it sends half, then closes
        hub.chunk_delay = 0.01                           # seconds per 64 KiB sent: a slow network
        hub.hold_after = 10 * 2**20                      # a file's GET stops there until hub.release.set()
        hub.requests                                     # every request: server, method, path, Range, auth or not
        hub.served["model.safetensors"]                  # bytes of that file sent, all requests together
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".onnx", ".pth", ".parquet", ".h5", ".msgpack")
CHUNK = 64 * 1024
DATE = "2025-01-01T00:00:00.000Z"


@dataclass
class Seen:
    """One request as the server saw it. The token itself is never kept: only whether one was sent."""

    server: str  # "hub" or "cdn"
    method: str
    path: str  # without the query
    range: str | None
    authorized: bool


@dataclass
class Blob:
    data: bytes
    sha256: str
    git_oid: str  # of the content, or of the LFS pointer for an LFS file
    lfs: bool


@dataclass
class Repo:
    repo_id: str
    kind: str  # "model" or "dataset"
    files: dict[str, Blob]
    gated: bool = False
    sha: str = field(default="")


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _blob(path: str, data: bytes) -> Blob:
    sha256 = hashlib.sha256(data).hexdigest()
    lfs = path.endswith(LFS_SUFFIXES)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
    return Blob(data, sha256, _git_oid(pointer if lfs else data), lfs)


class FakeHub:
    def __init__(self, token: str = "hf_fakehubtoken0123456789abcdef"):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[Seen] = []
        self.break_once: set[str] = set()  # paths in a repo whose next GET sends half the bytes, then closes
        self.chunk_delay = 0.0
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.served: dict[str, int] = {}  # bytes of each file (path in its repo) sent so far
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), self._handler("hub"))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler("cdn"))
        for server in (self._hub, self._cdn):
            server.daemon_threads, server.block_on_close = True, False
        self.endpoint = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.cdn = f"http://127.0.0.1:{self._cdn.server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
                         for s in (self._hub, self._cdn)]

    def __enter__(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def add_repo(self, repo_id: str, files: Path | dict[str, bytes], kind: str = "model", gated: bool = False) -> Repo:
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p.read_bytes() for p in sorted(files.rglob("*")) if p.is_file()}
        blobs = {path: _blob(path, data) for path, data in files.items()}
        sha = hashlib.sha1(json.dumps([repo_id, sorted((p, b.sha256) for p, b in blobs.items())]).encode()).hexdigest()
        repo = self.repos[(kind, repo_id)] = Repo(repo_id, kind, blobs, gated, sha)
        return repo

    def gets(self, path_end: str) -> list[Seen]:
        """The GET requests whose path ends with `path_end` (a file name, or a blob's sha256 on the CDN)."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_end)]

    def _find_blob(self, sha256: str) -> tuple[str, Blob] | None:
        for repo in self.repos.values():
            for path, blob in repo.files.items():
                if blob.sha256 == sha256:
                    return path, blob
        return None

    def _handler(self, server_name: str):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._dispatch()

            def do_HEAD(self):
                self._dispatch()

            def do_POST(self):
                self._dispatch()

            # -- plumbing -------------------------------------------------------------------------------------
            def _dispatch(self):
                url = urlsplit(self.path)
                auth = self.headers.get("Authorization")
                with hub._lock:
                    hub.requests.append(Seen(server_name, self.command, unquote(url.path), self.headers.get("Range"),
                                             auth is not None))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else b""
                try:
                    if server_name == "cdn":
                        self._cdn(url.path)
                    else:
                        self._hub(url.path, parse_qs(url.query), parse_qs(body.decode()), auth)
                except (BrokenPipeError, ConnectionResetError):  # the client went away (a cancelled download)
                    self.close_connection = True

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, value, status: int = 200, headers: dict | None = None):
                self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})

            def _error(self, status: int, code: str | None, message: str, headers: dict | None = None):
                self._json({"error": message}, status,
                           {**({"X-Error-Code": code} if code else {}), "X-Error-Message": message, **(headers or {})})

            # -- the Hub --------------------------------------------------------------------------------------
            def _hub(self, path: str, query: dict, form: dict, auth: str | None):
                if auth is not None and auth != f"Bearer {hub.token}":
                    return self._error(401, None, "Invalid credentials in Authorization header")
                authorized = auth is not None
                parts = [unquote(p) for p in path.split("/")[1:]]
                if parts[:1] == ["api"] and len(parts) >= 4 and parts[1] in ("models", "datasets"):
                    kind, repo_id, rest = parts[1][:-1], "/".join(parts[2:4]), parts[4:]
                    if len(rest) == 1:
                        return self._error(404, None, "Not found")
                    op, rev, sub = (rest[0], rest[1], "/".join(rest[2:])) if len(rest) >= 2 else ("info", "main", "")
                else:
                    kind = "dataset" if parts[:1] == ["datasets"] else "model"
                    parts = parts[1:] if kind == "dataset" else parts
                    if len(parts) < 5 or parts[2] != "resolve":
                        return self._error(404, None, "Not found")
                    repo_id, op, rev, sub = "/".join(parts[:2]), "resolve", parts[3], "/".join(parts[4:])
                repo = hub.repos.get((kind, repo_id))
                if repo is None:
                    return self._error(404 if authorized else 401, "RepoNotFound", "Repository not found")
                if rev not in ("main", repo.sha):
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                if op in ("info", "revision"):
                    return self._json(self._info(repo, bool(query.get("blobs"))))
                if op == "tree":
                    return self._json(self._tree(repo, sub, query.get("recursive", ["false"])[0].lower() == "true"))
                if op == "paths-info":
                    return self._json([e for e in self._entries(repo) if e["path"] in form.get("paths", [])])
                if op != "resolve":
                    return self._error(404, None, "Not found")
                if repo.gated and not authorized:
                    return self._error(401, "GatedRepo", f"Access to {kind} {repo.repo_id} is restricted. You must "
                                       "have access to it and be authenticated to access it. Please log in.")
                blob = repo.files.get(sub)
                if blob is None:
                    return self._error(404, "EntryNotFound", f"{sub} does not exist on \"main\"",
                                       {"X-Repo-Commit": repo.sha})
                headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{blob.git_oid}"', "Accept-Ranges": "bytes"}
                if blob.lfs:  # like the Hub: the metadata rides on the redirect to a CDN on another origin
                    return self._send(302, b"", {**headers, "X-Linked-Etag": f'"{blob.sha256}"',
                                                 "X-Linked-Size": len(blob.data),
                                                 "Location": f"{hub.cdn}/cdn/{blob.sha256}?expires=1"})
                self._bytes(sub, blob, headers)

            def _cdn(self, path: str):
                found = hub._find_blob(path.removeprefix("/cdn/"))
                if found is None:
                    return self._send(404, b"NoSuchKey")
                name, blob = found
                self._bytes(name, blob, {"ETag": f'"{blob.sha256}"', "Accept-Ranges": "bytes"})

            def _bytes(self, name: str, blob: Blob, headers: dict):
                """The file, or the Range asked for (206); a file in break_once sends half and hangs up."""
                data, status = blob.data, 200
                if (asked := re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")) is not None:
                    first, last = asked.groups()
                    if first == "":
                        start, end = max(0, len(data) - int(last)), len(data) - 1
                    else:
                        start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
                    if start >= len(data):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
                    data, status = data[start:end + 1], 206
                self.send_response(status)
                for key, value in {**headers, "Content-Type": "application/octet-stream",
                                   "Content-Length": len(data)}.items():
                    self.send_header(key, str(value))
                self.end_headers()
                if self.command == "HEAD":
                    return
                with hub._lock:
                    broken = name in hub.break_once
                    hub.break_once.discard(name)
                sent = data[:len(data) // 2] if broken else data
                for offset in range(0, len(sent), CHUNK):
                    if hub.hold_after is not None and offset >= hub.hold_after:
                        hub.release.wait(120)
                    self.wfile.write(sent[offset:offset + CHUNK])
                    if hub.chunk_delay:
                        time.sleep(hub.chunk_delay)
                self.wfile.flush()
                with hub._lock:
                    hub.served[name] = hub.served.get(name, 0) + len(sent)
                if broken:
                    self.close_connection = True  # the connection drops mid-body

            # -- JSON shapes ----------------------------------------------------------------------------------
            @staticmethod
            def _info(repo: Repo, blobs: bool) -> dict:
                siblings = []
                for path, blob in repo.files.items():
                    sibling = {"rfilename": path}
                    if blobs:
                        sibling |= {"size": len(blob.data), "blobId": blob.git_oid}
                        if blob.lfs:
                            sibling["lfs"] = {"size": len(blob.data), "sha256": blob.sha256, "pointerSize": 134}
                    siblings.append(sibling)
                owner = repo.repo_id.split("/")[0]
                return {"_id": repo.sha[:24], "id": repo.repo_id, "author": owner, "sha": repo.sha,
                        "lastModified": DATE, "createdAt": DATE, "private": False,
                        "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
                        "tags": [], "siblings": siblings,
                        **({"modelId": repo.repo_id, "library_name": "transformers"} if repo.kind == "model" else {})}

            @staticmethod
            def _entries(repo: Repo) -> list[dict]:
                folders = sorted({"/".join(p.split("/")[:i]) for p in repo.files for i in range(1, p.count("/") + 1)})
                entries = [{"type": "directory", "oid": _git_oid(f.encode()), "size": 0, "path": f} for f in folders]
                for path, blob in repo.files.items():
                    entry = {"type": "file", "oid": blob.git_oid, "size": len(blob.data), "path": path}
                    if blob.lfs:
                        entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": 134}
                    entries.append(entry)
                return entries

            def _tree(self, repo: Repo, folder: str, recursive: bool) -> list[dict]:
                prefix = f"{folder}/" if folder else ""
                return [e for e in self._entries(repo) if e["path"].startswith(prefix)
                        and (recursive or "/" not in e["path"][len(prefix):])]

        return Handler
