"""GGUFs for llama.cpp: the base's layers re-quantized to Q8_0 from their exact values, a fine-tune's layers
base + adapter in llama.cpp's layout, every other tensor the shipped file's, byte for byte; and llama.cpp
then predicts what transformers and peft predict."""

import numpy as np
import pytest

from tests.conftest import bare_llama
from training.base.errors import TutorError
from training.base.models import embedded_gguf_path
from training.models.gguf_export import (
    MERGED_FILE,
    export_fine_tune,
    gguf_name,
    linear_layers,
    to_gguf_layout,
    write_gguf,
)


@pytest.fixture(scope="module")
def written(tmp_path_factory, embedded_model_dir, embedded_adapter_dir) -> dict:
    """The base re-quantized, and the fine-tune as the trainer writes it as a run ends (`export_fine_tune`, into a
    copy of the adapter's folder): each file written once, read by every test below."""
    import shutil

    folder = tmp_path_factory.mktemp("gguf")
    adapter = folder / "adapter"
    shutil.copytree(embedded_adapter_dir, adapter, ignore=shutil.ignore_patterns("*.gguf"))
    return {"base": write_gguf(embedded_gguf_path(), str(embedded_model_dir), None, folder / "base.gguf"),
            "tuned": export_fine_tune(str(embedded_model_dir), adapter), "adapter": adapter}


def test_layers_are_the_exact_weights_in_q8_0_and_the_rest_is_copied(written, embedded_model_dir,
                                                                      embedded_adapter_dir):
    import gguf

    shipped = {t.name: t for t in gguf.GGUFReader(embedded_gguf_path()).tensors}
    for kind, adapter in (("base", None), ("tuned", embedded_adapter_dir)):
        out = {t.name: t for t in gguf.GGUFReader(written[kind]).tensors}
        assert out.keys() == shipped.keys()
        layers = linear_layers(str(embedded_model_dir), adapter)
        assert len(layers) == 30 * 7  # q, k, v, o, gate, up, down in every block
        for name in ("blk.0.attn_q", "blk.7.attn_k", "blk.29.ffn_down"):
            tensor = out[f"{name}.weight"]
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            expected = to_gguf_layout(layers[name], name, 9, 3)
            before = gguf.quants.dequantize(shipped[f"{name}.weight"].data, shipped[f"{name}.weight"].tensor_type)
            rounding, delta = np.linalg.norm(values - expected), np.linalg.norm(expected - before)
            assert rounding <= np.linalg.norm(expected) / 100  # Q8_0's rounding only
            if adapter is None:
                assert delta == 0, "the fp32 conversion and the shipped GGUF disagree (q/k layout?)"
            else:
                assert rounding < delta / 3, "the adapter drowned in the rounding"
        for name in ("token_embd.weight", "blk.3.attn_norm.weight", "output_norm.weight"):
            assert bytes(out[name].data) == bytes(shipped[name].data)


def test_llama_cpp_on_the_files_predicts_what_transformers_and_peft_predict(written, embedded_model_dir,
                                                                            embedded_adapter_dir):
    """Teacher-forced next-token predictions over a real text: the fine-tune's GGUF agrees with the peft model,
    the base's with the fp32 base, and the fine-tune's clearly less with the base."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from training.base.models import load_tokenizer

    ids = load_tokenizer(str(embedded_model_dir))(
        "Fine-tuning adapts a pretrained model to a task with examples of the answers you want. LoRA trains two "
        "small matrices per layer and leaves the base weights frozen, so a run fits on a laptop and the adapter "
        "is a few megabytes. Start with a baseline: a prompt, then retrieval, and fine-tune only when the "
        "numbers say it pays off. A good dataset has a few hundred examples in the chat format, each with a "
        "system message, a user message and the assistant's answer, and a held-out set to measure it on. Watch "
        "the validation loss: when it rises while the training loss falls, the model is memorising.")["input_ids"]

    def torch_predictions(adapter=None):
        model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter))
        with torch.inference_mode():
            return model(torch.tensor([ids])).logits[0].argmax(-1).tolist()

    def agreement(a, b):
        return sum(x == y for x, y in zip(a, b)) / len(ids)

    base_llama, tuned_llama = llama_predictions(written["base"], ids), llama_predictions(written["tuned"], ids)
    base_torch, tuned_torch = torch_predictions(), torch_predictions(embedded_adapter_dir)
    # Q8_0 weights and activations against fp32 flip a few near-ties: 94% agree on this text
    assert agreement(base_llama, base_torch) >= 0.9
    assert agreement(tuned_llama, tuned_torch) >= 0.9
    assert agreement(tuned_llama, base_torch) < agreement(tuned_llama, tuned_torch) - 0.1


def llama_predictions(gguf_path, ids):
    context, sampler, batch = bare_llama(gguf_path, 512)
    for position, token in enumerate(ids):
        batch.add(token, position, [0], True)
    context.decode(batch)
    return [sampler.sample(context, position) for position in range(len(ids))]


def test_an_adapter_on_a_layer_the_gguf_has_no_place_for_is_refused(embedded_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    adapter = tmp_path / "head-adapter"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "lm_head"], task_type="CAUSAL_LM")).save_pretrained(adapter)
    with pytest.raises(TutorError, match="lm_head"):
        write_gguf(embedded_gguf_path(), str(embedded_model_dir), adapter, tmp_path / "out.gguf")
    assert not list(tmp_path.glob("*.gguf*")), "a refused export left a file"
    assert gguf_name("base_model.model.model.layers.4.mlp.up_proj") == "blk.4.ffn_up"


def test_the_trainers_export_is_the_file_the_engine_runs(written, embedded_model_dir, embedded_torch_dir):
    """A run on a GGUF base leaves its merged file beside the adapter, so chat never waits to write it."""
    from assistant.inference.llama_runtime import model_file

    adapter, written = written["adapter"], written["tuned"]  # export_fine_tune's answer for a fresh adapter folder
    assert written == adapter / MERGED_FILE
    stamp = written.stat().st_mtime_ns
    assert model_file(str(embedded_model_dir), str(adapter)) == written
    assert written.stat().st_mtime_ns == stamp, "the engine wrote the file again"
    assert export_fine_tune(str(embedded_torch_dir), adapter) is None  # a base that is not a GGUF: nothing to write


def test_two_processes_asking_for_a_fine_tunes_file_at_once_write_it_once(embedded_model_dir, embedded_adapter_dir,
                                                                          tmp_path, monkeypatch):
    import shutil
    import threading
    import time

    import training.models.gguf_export as gguf_export
    from assistant.inference.llama_runtime import model_file

    adapter = tmp_path / "adapter"
    shutil.copytree(embedded_adapter_dir, adapter, ignore=shutil.ignore_patterns("*.gguf"))
    writes = []

    def slow_write(base_gguf, base_folder, adapter_dir, target):  # stands in for the 6-s export
        writes.append(target)
        time.sleep(0.5)
        target.write_bytes(b"GGUF")
        return target

    monkeypatch.setattr(gguf_export, "write_gguf", slow_write)
    files = []
    askers = [threading.Thread(target=lambda: files.append(model_file(str(embedded_model_dir), str(adapter))))
              for _ in range(2)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert writes == [adapter / MERGED_FILE], "the file was written twice"
    assert files == [adapter / MERGED_FILE] * 2
