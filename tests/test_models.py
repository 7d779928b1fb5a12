"""The real embedded GGUF: converted once to safetensors, reloaded fast, and it generates."""

import time

import pytest

from assistant.inference.engine import load_model, warm_up
from tests.conftest import make_settings
from training.base.errors import TutorError
from training.base.models import EMBEDDED_GGUF, embedded_gguf_path, resolve_base_model
from training.base.settings import load_settings


def test_the_gguf_ships_in_the_installed_package():
    path = embedded_gguf_path()
    assert path.name == EMBEDDED_GGUF and path.stat().st_size > 50_000_000


def test_real_embedded_model_converts_once_reloads_fast_and_generates(embedded_model_dir, tmp_path):
    assert (embedded_model_dir / "model.safetensors").is_file()
    assert not list(embedded_model_dir.parent.glob(".convert-*")), "a staging folder was left behind"
    settings = make_settings(tmp_path)
    started = time.perf_counter()
    model, tokenizer = load_model(resolve_base_model(settings))
    assert time.perf_counter() - started < 10  # from the safetensors cache, not the GGUF (~20 s)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_a_missing_base_model_says_how_to_fix_it(tmp_path):
    settings = make_settings(tmp_path, base_model=str(tmp_path / "no-such-model"))
    with pytest.raises(TutorError, match="never downloads"):
        warm_up(settings)


def test_two_processes_starting_at_once_convert_the_model_once(tmp_path, monkeypatch):
    """The app and `tutor` (or two test suites) start together: the second waits for the first's conversion."""
    import threading

    import training.base.models as models

    calls = []

    def slow_convert(target):  # stands in for the 20-s conversion, writing what a finished one leaves
        calls.append(target)
        time.sleep(0.5)
        target.mkdir()
        for name in ("config.json", "model.safetensors"):
            (target / name).write_text("{}")

    monkeypatch.setattr(models, "_convert", slow_convert)
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    folders = []
    starters = [threading.Thread(target=lambda: folders.append(models.convert_embedded(settings))) for _ in range(2)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    assert len(calls) == 1, "the second start converted the model again"
    assert folders == [models.embedded_cache_path(settings)] * 2
    assert models.gguf_file(str(folders[0])) == embedded_gguf_path()
