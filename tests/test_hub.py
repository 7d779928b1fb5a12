"""Models and datasets from the Hub (training/models/hub.py): the real huggingface_hub and datasets clients, in the real
child process, against a fake Hub on 127.0.0.1 (tests/fake_hub.py), with the HF cache in a temporary folder."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.fake_hub import FakeHub
from training.base.errors import TutorError
from training.base.settings import PROJECT_ROOT
from training.data.validate import validate_file
from training.models.hub import (
    CURATED,
    PHRASES,
    Done,
    Failed,
    HubRequest,
    Progress,
    cached,
    cached_models,
    child_environment,
    dataset_request,
    download,
    fetch,
    hub_cache,
    valid_repo_id,
    wanted_files,
)

EXTRAS = {"pytorch_model.bin": b"\0" * 4096, "model.gguf": b"GGUF" * 512, "onnx/model.onnx": b"\1" * 2048,
          "onnx/config.json": b"{}", "README.md": b"# tiny\n", ".gitattributes": b"*.safetensors filter=lfs\n"}
MIB = 1024 * 1024


def chat_rows(count: int) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Answer briefly."},
                          {"role": "user", "content": f"What is {n} + {n}?"},
                          {"role": "assistant", "content": str(2 * n)}], "source": "test"} for n in range(count)]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.fixture
def hub(monkeypatch, tmp_path, tiny_model_dir):
    """The fake Hub with a tiny model (plus files a load never needs), a gated copy, a 24 MiB model, and datasets;
    HF_HOME and HF_HUB_CACHE in tmp_path, no token."""
    tiny = {p.name: p.read_bytes() for p in tiny_model_dir.iterdir() if p.is_file()}
    with FakeHub() as server:
        server.add_repo("org/tiny", {**tiny, **EXTRAS})
        server.add_repo("org/gated-tiny", tiny, gated=True)
        server.add_repo("org/big", {"config.json": b'{"model_type": "llama"}',
                                    "model.safetensors": os.urandom(24 * MIB)})
        server.add_repo("org/chat-messages", {"README.md": b"# chat\n", "data/train.jsonl": jsonl(chat_rows(30))},
                        kind="dataset")
        pairs = [{"prompt": f"Capital of country {n}?", "completion": f"City {n}"} for n in range(12)]
        server.add_repo("org/chat-pairs", {"train.jsonl": jsonl(pairs)}, kind="dataset")
        server.add_repo("org/no-chat", {"train.jsonl": jsonl([{"text": "hello", "label": 1}] * 5)}, kind="dataset")
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        yield server


async def events_of(request: HubRequest) -> list:
    return [event async for event in fetch(request)]


def model(repo_id: str) -> HubRequest:
    return HubRequest(kind="model", repo_id=repo_id)


def hub_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "training.models.hub_download" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest.mark.timeout(90)
async def test_a_model_downloads_with_progress_then_loads_offline(hub, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub.chunk_delay = 0.006  # ~1.3 s for the weights: room for a few throttled progress events
    started = time.monotonic()
    events = await events_of(model("org/tiny"))
    elapsed = time.monotonic() - started
    *progress, done = events
    assert isinstance(done, Done), done
    assert progress and all(isinstance(e, Progress) and e.unit == "bytes" for e in progress)
    wanted = sorted(wanted_files(p.name for p in tiny_model_dir.iterdir()))
    total = sum((tiny_model_dir / name).stat().st_size for name in wanted)
    assert {e.total for e in progress} == {total}
    downloaded = [e.downloaded for e in progress]
    assert downloaded == sorted(downloaded) and downloaded[0] == 0 and downloaded[-1] == total
    assert any(0 < d < total for d in downloaded), downloaded  # seen while it ran, not only at both ends
    assert len(progress) <= elapsed / 0.25 + 3  # throttled
    snapshot = Path(done.path)
    assert sorted(p.name for p in snapshot.iterdir()) == wanted  # no .bin, .gguf, onnx/, README
    assert not [r for r in hub.requests if r.path.endswith(tuple(EXTRAS))]
    assert not [r for r in hub.requests if r.server == "cdn" and r.authorized]
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # only the child was online
    assert cached("org/tiny") and cached_models() == ["org/tiny"]

    asked = len(hub.requests)
    loaded = AutoModelForCausalLM.from_pretrained("org/tiny", cache_dir=str(hub_cache()))
    tokenizer = AutoTokenizer.from_pretrained("org/tiny", cache_dir=str(hub_cache()))
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert len(hub.requests) == asked  # loaded from the cache, offline
    for (name, mine), theirs in zip(loaded.state_dict().items(), original.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs), name
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


@pytest.mark.timeout(90)
async def test_a_download_broken_halfway_resumes_with_a_range_request(hub):
    hub.break_once.add("model.safetensors")
    *_, done = await events_of(model("org/big"))
    assert isinstance(done, Done), done
    sent = hub.repos[("model", "org/big")].files["model.safetensors"]
    gets = hub.gets(sent.sha256)
    assert len(gets) == 2 and gets[0].range is None
    assert re.fullmatch(r"bytes=(\d+)-", gets[1].range) and int(gets[1].range[6:-1]) > 0
    assert (Path(done.path) / "model.safetensors").read_bytes() == sent.data
    assert hub.served["model.safetensors"] < 1.5 * len(sent.data)  # went on from where it broke, not from zero


@pytest.mark.timeout(90)
async def test_a_gated_model_needs_the_token(hub, monkeypatch):
    *_, refused = await events_of(model("org/gated-tiny"))
    assert isinstance(refused, Failed) and refused.key == "gated"
    english, ukrainian = refused.message("en"), refused.message("uk")
    assert "HF_TOKEN" in english and "https://huggingface.co/org/gated-tiny" in english and "license" in english
    assert "HF_TOKEN" in ukrainian and "ліцензію" in ukrainian
    assert not cached("org/gated-tiny")

    monkeypatch.setenv("HF_TOKEN", "hf_wrongtoken0123456789")
    *_, wrong = await events_of(model("org/gated-tiny"))
    assert isinstance(wrong, Failed) and wrong.key == "token_refused", wrong

    monkeypatch.setenv("HF_TOKEN", hub.token)
    events = await events_of(model("org/gated-tiny"))
    assert isinstance(events[-1], Done), events[-1]
    assert cached("org/gated-tiny")
    assert [r for r in hub.requests if r.server == "hub" and r.authorized]
    assert not [r for r in hub.requests if r.server == "cdn" and r.authorized]  # the token stays on the Hub
    assert hub.token not in "".join(e.model_dump_json() for e in events)


@pytest.mark.timeout(60)
async def test_an_unknown_repo_is_not_found(hub):
    *_, failed = await events_of(model("org/nothing-here"))
    assert isinstance(failed, Failed) and failed.key == "not_found"
    assert "`org/nothing-here`" in failed.message("en") and "Hugging Face Hub" in failed.message("en")
    assert "немає" in failed.message("uk")
    with pytest.raises(TutorError, match="немає"):  # the CLI's synchronous wrapper
        await asyncio.to_thread(download, model("org/nothing-here"), language="uk")


@pytest.mark.timeout(60)
async def test_a_repo_without_safetensors_is_not_loadable(hub):
    hub.add_repo("org/gguf-only", {"config.json": b"{}", "model.gguf": b"GGUF"})
    *_, failed = await events_of(model("org/gguf-only"))
    assert isinstance(failed, Failed) and failed.key == "not_loadable"
    assert "`org/gguf-only`" in failed.message("en") and "safetensors" in failed.message("en")
    assert not [r for r in hub.requests if r.path.endswith("model.gguf")]  # refused before any weights came


@pytest.mark.timeout(60)
async def test_a_malformed_id_is_refused_before_any_child_starts(hub, monkeypatch):
    def no_child(*args, **kwargs):
        raise AssertionError("a child was started")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", no_child)
    for bad in ("../etc", "a/b/c", "http://x/y", "", "org", "/etc", "a/../b", "org/tiny\n", "örg/tiny", None, 7):
        with pytest.raises(TutorError, match="owner/name"):
            HubRequest(kind="model", repo_id=bad)
        with pytest.raises(TutorError, match="власник/назва"):
            valid_repo_id(bad, "uk")
        if isinstance(bad, str):
            with pytest.raises(TutorError):
                cached(bad)
    monkeypatch.undo()
    # The child checks again whatever reaches its stdin, before it touches the network.
    raw = json.dumps({"kind": "model", "repo_id": "../../etc"})
    child = subprocess.run([sys.executable, "-m", "training.models.hub_download"], input=raw, capture_output=True, text=True,
                           cwd=PROJECT_ROOT, env=child_environment(), timeout=60)
    events = [json.loads(line) for line in child.stdout.splitlines()]
    assert events == [{"type": "error", "key": "bad_id", "fields": {}}]
    assert not hub.requests


@pytest.mark.timeout(90)
async def test_cached_models_lists_only_complete_downloads(hub):
    assert cached_models() == []
    assert isinstance((await events_of(model("org/tiny")))[-1], Done)

    hub.hold_after = 12 * MIB  # the weights stop there: the download is cancelled while held
    seen: list = []

    async def follow():
        async for event in fetch(model("org/big")):
            seen.append(event)

    task = asyncio.create_task(follow())
    while not [e for e in seen if isinstance(e, Progress) and e.downloaded >= 10 * MIB]:  # config.json is done
        assert not task.done(), seen
        await asyncio.sleep(0.02)
    assert hub_children()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not hub_children()  # cancelling killed the child
    assert not cached("org/big") and cached_models() == ["org/tiny"]

    hub.hold_after = None
    hub.release.set()
    configs_before = len(hub.gets("/config.json"))
    assert isinstance((await events_of(model("org/big")))[-1], Done)
    assert cached_models() == ["org/big", "org/tiny"]
    assert len(hub.gets("/config.json")) == configs_before  # files already complete are not fetched again

    snapshot = hub_cache() / "models--org--tiny" / "snapshots"
    weights = next(snapshot.glob("*/model.safetensors"))
    weights.resolve().unlink()  # a blob lost: the model is no longer complete
    assert cached_models() == ["org/big"]


@pytest.mark.timeout(90)
async def test_hub_datasets_become_chat_jsonl(hub, tmp_path):
    messages, pairs, capped, unusable = (dataset_request("org/chat-messages", tmp_path / "data"),
                                         dataset_request("org/chat-pairs", tmp_path / "data"),
                                         dataset_request("org/chat-messages", tmp_path / "data", max_rows=7),
                                         dataset_request("org/no-chat", tmp_path / "data"))
    assert len({r.destination for r in (messages, pairs, capped, unusable)}) == 4
    for request in (messages, pairs, capped, unusable):  # the app's own folder: nothing of the id in it
        folder = Path(request.destination)
        assert folder.parent == (tmp_path / "data" / "hub-datasets").resolve()
        assert re.fullmatch(r"[0-9a-f]{32}", folder.name)
    results = await asyncio.gather(*(events_of(r) for r in (messages, pairs, capped, unusable)))  # side by side
    done = [events[-1] for events in results]

    for request, event, rows in zip((messages, pairs, capped), done, (30, 12, 7), strict=False):
        assert isinstance(event, Done), event
        assert event.path == str(Path(request.destination) / "train.jsonl") and event.rows == rows
        report = validate_file(Path(event.path))
        assert report.ok and report.examples == rows
        assert sorted(os.listdir(request.destination)) == ["train.jsonl"]  # no staging file left
    first = [json.loads(line) for line in Path(done[0].path).read_text().splitlines()][3]
    assert first == {"messages": chat_rows(30)[3]["messages"]}
    first = json.loads(Path(done[1].path).read_text().splitlines()[0])
    assert first == {"messages": [{"role": "user", "content": "Capital of country 0?"},
                                  {"role": "assistant", "content": "City 0"}]}
    assert [e.downloaded for e in results[2] if isinstance(e, Progress)][-1] <= 7

    assert isinstance(done[3], Failed) and done[3].key == "columns"
    assert "`label`, `text`" in done[3].message("en") and "стовпці" in done[3].message("uk")
    assert not os.listdir(unusable.destination)


@pytest.mark.timeout(150)
async def test_a_dead_endpoint_gives_the_network_sentence_quickly(hub, monkeypatch, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for request in (model("org/tiny"), dataset_request("org/chat-pairs", tmp_path / "data")):
        started = time.monotonic()
        *_, failed = await events_of(request)
        assert isinstance(failed, Failed) and failed.key == "network", failed
        assert time.monotonic() - started < 45  # a child's start-up and one refused connection, no retry loop
    assert "HF_ENDPOINT" in failed.message("en") and "мереж" in failed.message("uk")


async def test_the_child_gets_the_hub_variables_and_nothing_else(monkeypatch):
    hub_variables = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": "/tmp/hf", "HF_HUB_CACHE": "/tmp/hf/hub",
                     "HF_TOKEN": "hf_secret"}
    for name, value in {**hub_variables, "OPENAI_API_KEY": "sk-secret", "DATABASE_URL": "postgresql://x"}.items():
        monkeypatch.setenv(name, value)
    env = child_environment()
    assert {name: env[name] for name in hub_variables} == hub_variables
    assert env["HF_HUB_OFFLINE"] == "0" and "OPENAI_API_KEY" not in env and "DATABASE_URL" not in env
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_curated_models_and_every_sentence_in_both_languages():
    assert [m.id for m in CURATED][:5] == ["HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct",
                                           "Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct",
                                           "Qwen/Qwen2.5-1.5B-Instruct"]
    assert [m.id for m in CURATED if m.gated] == ["meta-llama/Llama-3.2-1B-Instruct"]
    assert all(valid_repo_id(m.id) and m.note("en") != m.note("uk") for m in CURATED)
    assert [m.parameters for m in CURATED] == sorted(m.parameters for m in CURATED)

    def fields(template: str) -> list[str]:
        return sorted(name for _, name, _, _ in string.Formatter().parse(template) if name)

    assert set(PHRASES["en"]) == set(PHRASES["uk"])
    for key, template in PHRASES["en"].items():
        assert fields(template) == fields(PHRASES["uk"][key]), key
        assert PHRASES["uk"][key] != template, key
