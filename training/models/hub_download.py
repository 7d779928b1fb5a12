"""The child process of a Hub download (training/models/hub.py starts it): one request from stdin, typed events to stdout.

It is the only process that goes online (HF_HUB_OFFLINE=0 in its environment alone). Models come through
snapshot_download with only the files a transformers load needs, its `tqdm_class` hook giving the bytes across
files; datasets are streamed with `datasets.load_dataset` and written atomically as chat JSONL, at most
`max_rows` rows. A failure is a Phrases key and fields (training/models/hub.py's PHRASES), the traceback on stderr.

    echo '{"kind": "model", "repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}' | python -m training.models.hub_download
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel

from training.base.errors import TutorError, install_secret_redaction
from training.models.hub import (
    MAX_LINE,
    MODEL_FILES,
    SKIPPED_FILES,
    Done,
    Failed,
    HubRequest,
    Progress,
    hub_cache,
    loadable,
    wanted_files,
)

log = logging.getLogger(__name__)

MAX_EXAMPLE_CHARS = 200_000  # a longer row is skipped: one row may not fill the memory either
PROGRESS_EVERY = 0.25  # seconds between progress events
PAIRS = (("prompt", "completion"), ("instruction", "output"), ("instruction", "response"), ("question", "answer"))
ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}


class _Emitter:
    """Events to the real stdout, a line each, from any thread; progress at most every PROGRESS_EVERY seconds."""

    def __init__(self, stream, total: int | None = None, unit: str = "bytes"):
        self.stream, self.lock, self.total, self.unit = stream, threading.Lock(), total, unit
        self.last, self.counted = 0.0, 0

    def __call__(self, event: BaseModel) -> None:
        with self.lock:
            self.stream.write(event.model_dump_json() + "\n")
            self.stream.flush()

    def progress(self, add: int = 0, force: bool = False) -> None:
        with self.lock:
            self.counted, now = self.counted + add, time.monotonic()
            if not force and now - self.last < PROGRESS_EVERY:
                return
            self.last = now
        done = max(0, min(self.counted, self.total) if self.total is not None else self.counted)
        self(Progress(downloaded=done, total=self.total, unit=self.unit))


def _bar_class(emit: _Emitter):
    """A silent tqdm class for snapshot_download: its bar of the bytes written, across files, feeds `emit`."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Bar(hf_tqdm):
        def __init__(self, *args, **kwargs):
            self.counts = kwargs.get("name") == "huggingface_hub.snapshot_download"
            super().__init__(*args, **{**kwargs, "disable": True})

        def update(self, n=1):
            if self.counts and n:
                emit.progress(int(n))
            return super().update(n)

    return Bar


def _download_model(request: HubRequest, emit: _Emitter) -> BaseModel:
    from huggingface_hub import HfApi, snapshot_download, try_to_load_from_cache

    info = HfApi().model_info(request.repo_id, files_metadata=True)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    if not loadable(wanted := wanted_files(sizes)):
        return Failed(key="not_loadable", fields={"repo": request.repo_id})
    cache = hub_cache()
    emit.total = sum(sizes[f] for f in wanted if not isinstance(
        try_to_load_from_cache(request.repo_id, f, cache_dir=cache, revision=info.sha), str))
    emit.progress(force=True)
    path = snapshot_download(request.repo_id, cache_dir=cache, allow_patterns=MODEL_FILES,
                             ignore_patterns=SKIPPED_FILES, tqdm_class=_bar_class(emit))
    emit.progress(emit.total - emit.counted, force=True)
    return Done(path=path)


def _turns(value, role: str) -> list[dict] | None:
    """A string as one turn of `role`; a list of {role, content} (or ShareGPT's {from, value}) as its turns."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    turns = [{"role": ROLES.get(t.get("role") or t.get("from")), "content": t.get("content", t.get("value"))}
             for t in value if isinstance(t, dict)] if isinstance(value, list) else []
    ok = turns and len(turns) == len(value) and all(t["role"] and isinstance(t["content"], str) for t in turns)
    return turns if ok else None


def _converter(columns: Iterable[str]) -> Callable[[dict], dict | None] | None:
    """How a row with these columns becomes a chat example; None when no known layout fits."""
    columns = set(columns)

    def example(row: dict, asked: str, answered: str | None) -> dict | None:
        system = [{"role": "system", "content": row["system"]}] if isinstance(row.get("system"), str) else []
        user, reply = _turns(row[asked], "user"), _turns(row[answered], "assistant") if answered else []
        if user and answered and isinstance(row.get("input"), str) and row["input"].strip() and len(user) == 1:
            user[0]["content"] += "\n\n" + row["input"]  # Alpaca's optional input
        return {"messages": system + user + reply} if user and reply is not None else None

    for name in ("messages", "conversations"):
        if name in columns:
            return lambda row: example(row, name, None)
    for asked, answered in PAIRS:
        if {asked, answered} <= columns:
            return lambda row: example(row, asked, answered)
    return None


def _download_dataset(request: HubRequest, emit: _Emitter) -> BaseModel:
    import datasets
    from huggingface_hub import HfApi

    from training.data.prepare import write_jsonl_atomic
    from training.data.validate import example_errors

    HfApi().dataset_info(request.repo_id)  # fails fast: datasets retries an unreachable Hub for ~20 s
    datasets.disable_progress_bars()
    rows = datasets.load_dataset(request.repo_id, split=request.split, streaming=True)
    emit.total, emit.unit, read = request.max_rows, "rows", 0

    def examples():
        nonlocal read
        to_chat = None
        for row in rows:
            if to_chat is None and (to_chat := _converter(row)) is None:
                raise _Unusable(", ".join(f"`{name.replace('`', '')}`" for name in sorted(row))[:300])
            read += 1
            emit.progress(1)
            if (chat := to_chat(row)) and len(json.dumps(chat, ensure_ascii=False)) <= MAX_EXAMPLE_CHARS \
                    and not example_errors(chat):
                yield chat
            if read >= request.max_rows:
                break

    target = Path(request.destination) / f"{request.split}.jsonl"
    try:
        written = write_jsonl_atomic(target, examples())
    except _Unusable as columns:
        return Failed(key="columns", fields={"repo": request.repo_id, "columns": str(columns)})
    if not written:
        target.unlink()
        return Failed(key="no_examples", fields={"repo": request.repo_id, "rows": read})
    return Done(path=str(target), rows=written, skipped=read - written)


class _Unusable(Exception):
    """A dataset's first row has no column the app can read as chat; the message lists its columns."""


def _failure(exc: BaseException, request: HubRequest) -> Failed:
    """The sentence for what went wrong, found anywhere in the exception's chain."""
    from httpx2 import NetworkError, TimeoutException
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    chain, error = [], exc
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    repo, has_token = request.repo_id, bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    page = f"https://huggingface.co/{'datasets/' if request.kind == 'dataset' else ''}{repo}"
    for error in chain:
        response = getattr(error, "response", None)
        if isinstance(error, GatedRepoError):
            return Failed(key="gated_denied" if has_token else "gated", fields={"repo": repo, "page": page})
        if isinstance(error, HfHubHTTPError) and response is not None and response.status_code == 401 and (
                "Invalid credentials" in (response.headers.get("X-Error-Message") or "")):
            return Failed(key="token_refused")
        if isinstance(error, RepositoryNotFoundError) or type(error).__name__ == "DatasetNotFoundError":
            return Failed(key="not_found", fields={"repo": repo})
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return Failed(key="disk_full")
        if isinstance(error, (NetworkError, TimeoutException, ConnectionError, TimeoutError)):
            return Failed(key="network")
    return Failed(key="failed", fields={"repo": repo})


def main() -> int:
    """The child: one request from stdin, events to stdout (what a library prints goes to stderr instead)."""
    emit = _Emitter(os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8"))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    install_secret_redaction(os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    try:
        request = HubRequest.model_validate_json(sys.stdin.read(MAX_LINE))
    except (TutorError, ValueError) as exc:
        emit(Failed(key="bad_id" if isinstance(exc, TutorError) else "bad_request"))
        return 2
    try:
        event = (_download_model if request.kind == "model" else _download_dataset)(request, emit)
    except Exception as exc:  # the learner gets a sentence; the traceback goes to stderr (the app's log)
        log.exception("Downloading %s %s failed", request.kind, request.repo_id)
        event = _failure(exc, request)
    emit(event)
    return 0 if isinstance(event, Done) else 1


if __name__ == "__main__":
    sys.exit(main())
