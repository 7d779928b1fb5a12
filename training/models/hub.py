"""Models and datasets from the Hugging Face Hub, only when a learner asks: the app itself stays offline.

A download runs in its own process, `python -m training.models.hub_download`, which reads ONE JSON request from stdin (never argv),
is the only process online (HF_HUB_OFFLINE=0 in its environment alone) and writes typed events, a JSON object a
line, to stdout. The app follows it with asyncio, no thread waiting, so other learners never notice:

    async for event in fetch(HubRequest(kind="model", repo_id="HuggingFaceTB/SmolLM2-360M-Instruct")):
        ...   # Progress(downloaded, total), then Done(path) or Failed(key, fields): .message("uk")
    cached_models()   # the models complete in the local HF cache (HF_HOME / HF_HUB_CACHE), found without network
    echo '{"kind": "model", "repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}' | python -m training.models.hub_download

Models come through snapshot_download with only what a transformers load needs (config, tokenizer and generation
files, top-level *.safetensors; no .bin/.pth/.gguf/.onnx copies), its `tqdm_class` hook giving the bytes across
files. huggingface_hub resumes a dropped transfer itself with a Range request (from its last 10 MiB step) within the
call; a later call skips the files already complete (huggingface_hub 2.x deletes a failed call's partial file).
Datasets are streamed (datasets.load_dataset(streaming=True)): at most `max_rows` rows are read whatever the size,
written atomically as chat JSONL into a folder the app chose. HF_TOKEN reaches the child and no event. A failure is
a Phrases key and fields, shown in the learner's language; the traceback goes to the child's stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from training.base.errors import TutorError
from training.base.phrases import Phrases
from training.base.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

MAX_ROWS = 5_000  # rows read from a Hub dataset unless the request says otherwise
MAX_LINE = 64 * 1024  # the longest line read from the child (and its request)
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.jinja", "merges.txt", "vocab.txt"]
SKIPPED_FILES = ["*/*", "consolidated*"]  # subfolders (onnx/, original/, gguf/) and Mistral's duplicate weights
PASSED_ENV = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT",
              "XDG_CACHE_HOME", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}  # and every HF_* / HUGGING_FACE_* variable
PHRASES = Phrases("hub")


class HubModel(BaseModel):
    """A model the app suggests: the Hub's parameter count (tied embeddings once), license, gate, the size of its
    weights, and the shape an estimate needs before any download (from its config.json)."""

    model_config = ConfigDict(frozen=True)
    id: str
    parameters: int
    license: str
    gated: bool = False
    key: str  # its one-line note is PHRASES["note.KEY"]
    download_bytes: int  # its *.safetensors
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocabulary: int
    context: int

    def note(self, language: str = "en") -> str:
        return PHRASES(f"note.{self.key}", language)


# From each model's config.json and the Hub's safetensors metadata (pinned revisions, 2026-09): all tie their
# embeddings, all ship one bf16 model.safetensors.
CURATED = (
    HubModel(id="HuggingFaceTB/SmolLM2-135M-Instruct", parameters=134_515_008, license="apache-2.0",
             key="smollm2-135m", download_bytes=269_060_552, hidden=576, intermediate=1536, layers=30, heads=9,
             kv_heads=3, vocabulary=49152, context=8192),
    HubModel(id="HuggingFaceTB/SmolLM2-360M-Instruct", parameters=361_821_120, license="apache-2.0",
             key="smollm2-360m", download_bytes=723_674_912, hidden=960, intermediate=2560, layers=32, heads=15,
             kv_heads=5, vocabulary=49152, context=8192),
    HubModel(id="Qwen/Qwen2.5-0.5B-Instruct", parameters=494_032_768, license="apache-2.0", key="qwen2.5-0.5b",
             download_bytes=988_097_824, hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2,
             vocabulary=151936, context=32768),
    HubModel(id="meta-llama/Llama-3.2-1B-Instruct", parameters=1_235_814_400, license="llama3.2", gated=True,
             key="llama-3.2-1b", download_bytes=2_471_645_608, hidden=2048, intermediate=8192, layers=16, heads=32,
             kv_heads=8, vocabulary=128256, context=131072),
    HubModel(id="Qwen/Qwen2.5-1.5B-Instruct", parameters=1_543_714_304, license="apache-2.0", key="qwen2.5-1.5b",
             download_bytes=3_087_467_144, hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2,
             vocabulary=151936, context=32768),
    HubModel(id="HuggingFaceTB/SmolLM2-1.7B-Instruct", parameters=1_711_376_384, license="apache-2.0",
             key="smollm2-1.7b", download_bytes=3_422_777_952, hidden=2048, intermediate=8192, layers=24, heads=32,
             kv_heads=32, vocabulary=49152, context=8192),
)


def valid_repo_id(text: object, language: str = "en") -> str:
    """`text` when it is an `owner/name` id by huggingface_hub's rules (ASCII, one slash), else a TutorError. An id
    only ever reaches huggingface_hub: never a path of ours, never a command line."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(text, str) or not text.isascii() or text.count("/") != 1:
        raise TutorError(PHRASES("bad_id", language))
    try:
        validate_repo_id(text)
    except HFValidationError:
        raise TutorError(PHRASES("bad_id", language)) from None
    return text


class HubRequest(BaseModel):
    """A model into the HF cache, or a dataset's split into `destination/SPLIT.jsonl` (a folder the app chose under
    its own data dir, never made from the id: see dataset_request)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["model", "dataset"]
    repo_id: str
    split: str = Field("train", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    destination: str | None = None
    max_rows: int = Field(MAX_ROWS, ge=1, le=1_000_000)

    @field_validator("repo_id", mode="before")
    @classmethod
    def _repo_id(cls, value: object) -> str:
        return valid_repo_id(value)

    @model_validator(mode="after")
    def _destination(self) -> HubRequest:
        if self.kind == "dataset" and not (self.destination and Path(self.destination).is_absolute()):
            raise ValueError("a dataset needs an absolute destination folder")
        return self


def dataset_request(repo_id: str, data_dir: Path, split: str = "train", max_rows: int = MAX_ROWS,
                    language: str = "en") -> HubRequest:
    folder = (Path(data_dir) / "hub-datasets" / uuid.uuid4().hex).resolve()
    try:
        return HubRequest(kind="dataset", repo_id=repo_id, split=split, destination=str(folder), max_rows=max_rows)
    except ValidationError:  # the id raised its own sentence above; what is left is the split's name
        raise TutorError(PHRASES("bad_split", language)) from None


def discard_dataset(folder: str | Path, data_dir: Path) -> None:
    """Remove a dataset download's folder once it is prepared or has failed (a folder of data_dir/hub-datasets only)."""
    folder = Path(folder).resolve()
    if folder.parent == (Path(data_dir) / "hub-datasets").resolve():
        shutil.rmtree(folder, ignore_errors=True)


class Progress(BaseModel):
    type: Literal["progress"] = "progress"
    downloaded: int  # bytes of a model's files (those this call downloads), rows of a dataset
    total: int | None = None
    unit: Literal["bytes", "rows"] = "bytes"


class Done(BaseModel):
    type: Literal["done"] = "done"
    path: str  # the model's snapshot folder in the HF cache, or the dataset's JSONL file
    rows: int | None = None
    skipped: int | None = None  # dataset rows that made no valid chat example


class Failed(BaseModel):
    type: Literal["error"] = "error"
    key: str
    fields: dict[str, str | int] = {}

    def message(self, language: str = "en") -> str:
        try:
            return PHRASES(self.key, language, **self.fields)
        except (KeyError, IndexError, ValueError):  # an unknown key or missing fields: never a crash in the app
            return PHRASES("broken", language)


HubEvent = Annotated[Progress | Done | Failed, Field(discriminator="type")]
_EVENT = TypeAdapter(HubEvent)


def hub_cache() -> Path:
    """The HF hub cache as huggingface_hub finds it, read now (HF_HOME / HF_HUB_CACHE may be set after its import)."""
    if found := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.path.expandvars(found)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def wanted_files(names: Iterable[str]) -> list[str]:
    """The files of a model repo that a transformers load needs."""
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(list(names), allow_patterns=MODEL_FILES, ignore_patterns=SKIPPED_FILES))


def loadable(names: Iterable[str]) -> bool:
    names = set(names)
    return "config.json" in names and any(name.endswith(".safetensors") for name in names)


def cached(repo_id: str, language: str = "en") -> bool:
    """Whether a model is complete in the local cache, without network: config and weights (every shard of an
    index) there, and every wanted file of the tree huggingface_hub recorded when it downloaded."""
    from huggingface_hub import get_cached_repo_tree, try_to_load_from_cache
    from huggingface_hub.errors import CachedRepoTreeNotFoundError

    repo_id, cache = valid_repo_id(repo_id, language), hub_cache()
    if not isinstance(config := try_to_load_from_cache(repo_id, "config.json", cache_dir=cache), str):
        return False
    folder = Path(config).parent
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}  # not a dangling link
    try:
        expected = set(wanted_files(f.path for f in get_cached_repo_tree(repo_id, cache_dir=cache)))
    except (CachedRepoTreeNotFoundError, OSError, ValueError):  # downloaded by an older tool: no tree recorded
        expected = set()
    try:
        expected |= set(json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"].values())
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return loadable(present) and expected <= present


def cached_models() -> list[str]:
    """The models complete in the local cache: offline, the only ones the app offers."""
    found = []
    for folder in sorted(hub_cache().glob("models--*--*")):
        parts = folder.name.split("--")
        try:
            if len(parts) == 3 and cached(repo_id := f"{parts[1]}/{parts[2]}"):
                found.append(repo_id)
        except TutorError:
            continue
    return found


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the system's basics and every HF_* variable (HF_ENDPOINT, HF_HOME, HF_HUB_CACHE,
    HF_TOKEN...), online; nothing else of the app's (no API keys, no database URL)."""
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items() if k.upper() in PASSED_ENV or k.startswith(("HF_", "HUGGING_FACE_"))}
    return {**env, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "PYTHONIOENCODING": "utf-8"}


async def fetch(request: HubRequest, *, env: Mapping[str, str] | None = None,
                log_file: Path | None = None) -> AsyncIterator[HubEvent]:
    """The child's events as they come, ending with Done or Failed. Closing the iterator (`aclosing`) or cancelling
    the task reading it kills the child. Its stderr goes to `log_file`, else to the app's."""
    stderr = open(log_file, "ab") if log_file else None  # noqa: SIM115 - closed once the child has ended
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "training.models.hub_download", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=stderr, cwd=PROJECT_ROOT, env=child_environment(env), limit=MAX_LINE, start_new_session=True)
    final = False
    try:
        try:
            process.stdin.write(request.model_dump_json().encode())
            await process.stdin.drain()
            process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):  # it died at start: its stderr says why
            pass
        while not final:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line over MAX_LINE: not one of ours
                break
            if not line:
                break
            try:
                event = _EVENT.validate_json(line)
            except ValidationError:
                log.warning("The Hub download wrote a line that is no event; skipped.")
                continue
            final = event.type in ("done", "error")
            yield event
        if not final:
            yield Failed(key="broken")
    finally:
        if process.returncode is None and not final:
            process.kill()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
        finally:
            if stderr:
                stderr.close()


def download(request: HubRequest, *, on_event: Callable[[HubEvent], None] | None = None, language: str = "en",
             **options) -> Done:
    """`fetch` for synchronous callers (the CLI): each event to `on_event`, Done back, or a TutorError in `language`."""
    async def run() -> Done:
        async with aclosing(fetch(request, **options)) as events:
            async for event in events:
                if on_event:
                    on_event(event)
                if isinstance(event, Failed):
                    raise TutorError(event.message(language))
                if isinstance(event, Done):
                    return event
        raise TutorError(PHRASES("broken", language))

    return asyncio.run(run())
