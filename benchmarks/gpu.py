"""The GPU check: the trainer's model side (training/local/lora_model.py) on a CUDA GPU, in under five minutes, on a Llama
built from a config (no download). Not part of `make bench` (which runs on the CPU); run it where a GPU is:

    python -m benchmarks.gpu                 # on the first CUDA GPU
    python -m benchmarks.gpu --device cpu    # the same checks on the CPU, smaller (QLoRA and MFU skipped)

For LoRA in bf16 without and with gradient checkpointing, and QLoRA (4-bit NF4 + double quantization) where
bitsandbytes imports: the loss falls, every LoRA weight changes and no base weight does; the peak GPU memory the
allocator held against the estimate (training/local/estimate.py, the parts on the GPU: weights, adapter and optimizer,
activations); tokens/s and MFU against the device's dense bf16 peak (estimate.GPU_TABLE, or --peak-tflops).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from training.local.config import TrainConfig
from training.local.estimate import GB, GPU_TABLE, Architecture, Shape, memory
from training.local.lora_model import IGNORE, AnswerLoss, add_lora

SHAPE = dict(h=1024, i=4096, layers=12, heads=16, kv_heads=4, vocab=32000)  # ~190 M parameters


def tiny_llama(device: str, quantize: bool, small: bool):
    from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    s = dict(SHAPE, layers=2, h=256, i=1024) if small else SHAPE
    config = LlamaConfig(vocab_size=s["vocab"], hidden_size=s["h"], intermediate_size=s["i"], num_hidden_layers=s["layers"],
                         num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"], tie_word_embeddings=True,
                         max_position_embeddings=4096, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    if quantize:  # through a save and a load, as a Hub model is quantized
        import tempfile

        from transformers import AutoModelForCausalLM

        folder = tempfile.mkdtemp()
        model.save_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, device_map={"": 0}, dtype=torch.bfloat16,
                                                     quantization_config=BitsAndBytesConfig(
                                                         load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                         bnb_4bit_use_double_quant=True,
                                                         bnb_4bit_compute_dtype=torch.bfloat16))
    else:
        model = model.to(device)
    return model, Architecture.shaped(s["h"], s["i"], s["layers"], s["heads"], s["kv_heads"], s["vocab"])


def run(device: str, method: str, checkpointing: bool, steps: int, batch: int, width: int, peak_tflops: float | None,
        small: bool) -> dict:
    quantize = method == "qlora"
    model, arch = tiny_llama(device, quantize, small)
    before = {n: p.detach().float().clone() for n, p in model.named_parameters() if not quantize}
    config = TrainConfig(train_file="x", method="lora", gradient_checkpointing=checkpointing, lora_dropout=0.0)
    config = config.model_copy(update={"method": method})  # built as lora: the check for CUDA ran on this machine
    model = add_lora(model, config)
    objective = AnswerLoss(model).to(device)
    objective.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    lora_start = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    ids = torch.randint(100, arch.vocabulary, (batch, width), device=device)
    ids[:, width // 2:] = ids[:, :width - width // 2]  # a second half that repeats the first: learnable
    labels = ids.clone()
    labels[:, : width // 2] = IGNORE
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, started = [], None
    for step in range(steps):
        if step == 1:  # the first step pays one-time warm-up
            torch.cuda.synchronize() if device == "cuda" else None
            started = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = objective(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    torch.cuda.synchronize() if device == "cuda" else None
    seconds = time.perf_counter() - started
    tokens_per_second = batch * width * (steps - 1) / seconds
    changed = all(not torch.equal(p, lora_start[n]) for n, p in model.named_parameters() if "lora_" in n)
    base_kept = all(torch.equal(p.detach().float(), before[n.replace("base_model.model.", "").replace(
        "base_layer.", "")]) for n, p in model.named_parameters() if "lora_" not in n and not quantize)
    shaped = Shape(batch=batch, width=width, answer_tokens=batch * (width // 2), epoch_tokens=0, longest=width,
                   lengths=[])
    expected = memory(config, arch, shaped, device, "bf16", None)
    on_gpu = expected.weights + expected.adapter + expected.activations
    flops = (6 if checkpointing else 4) * arch.parameters * tokens_per_second
    peak = peak_tflops or next((tflops for name, (_, tflops) in GPU_TABLE.items()
                                if device == "cuda" and name.replace("-", " ").split()[0] in torch.cuda.get_device_name()),
                               None)
    return {"method": method, "gradient_checkpointing": checkpointing, "loss_first": round(losses[0], 3),
            "loss_last": round(losses[-1], 3), "loss_fell": losses[-1] < losses[0],
            "every_lora_weight_changed": changed, "base_unchanged": base_kept if not quantize else "n/a (4-bit)",
            "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / GB, 3) if device == "cuda" else None,
            "estimated_gb": round(on_gpu / GB, 3), "tokens_per_second": round(tokens_per_second),
            "mfu": round(flops / (peak * 1e12), 3) if peak else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, if not in GPU_TABLE")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    print(json.dumps({"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__}))
    cases = [("lora", False), ("lora", True)]
    if cuda:
        try:
            import bitsandbytes  # noqa: F401

            cases.append(("qlora", True))
        except ImportError:
            print(json.dumps({"qlora": "skipped: bitsandbytes does not import here"}))
    for method, checkpointing in cases:
        result = run(args.device, method, checkpointing, args.steps if cuda else 8, 16 if cuda else 2,
                     1024 if cuda else 64, args.peak_tflops, small=not cuda)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
