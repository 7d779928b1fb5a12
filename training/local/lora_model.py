"""The model side of LoRA training: a base loaded in the precision the machine suits (or in 4 bits for QLoRA), the
adapters attached, and the objective. The trainer (training/local/lora.py) drives it; evaluation and export reload it.

    model, tokenizer = load_base("embedded", dtype="bf16")        # the frozen base, SDPA attention
    model = add_lora(model, config)                               # LoRA (or QLoRA's 4-bit base, config.method)
    loss = AnswerLoss(model)(**batch)                             # cross-entropy on the answer tokens only
    model, tokenizer = load_adapter_model("RUN_DIR/adapter")       # base + a trained adapter, wherever it was made

QLoRA (Dettmers et al., 2023; the recipe of the seed's TRL tutorial): the frozen base in 4-bit NF4 with double
quantization through bitsandbytes, computed in bf16 (fp16 on GPUs without it), LoRA on every linear layer, and
usually gradient checkpointing. It needs a CUDA GPU (TrainConfig refuses it elsewhere). Its adapter is an ordinary
LoRA adapter: it loads on the full-precision base for chat, evaluation and the llama.cpp export.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from training.base.models import adapter_base, contiguous_head, load_tokenizer, resolve_base_model
from training.base.settings import get_settings
from training.local.batches import IGNORE
from training.local.config import TrainConfig

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def load_base(base_model: str, dtype: str = "fp32", quantize: bool = False):
    """(model, tokenizer) for "embedded", an HF id or a folder, fresh (not the chat app's shared copy), in `dtype`
    ("bf16" or "fp32": loaded so, never as an fp32 copy first), with PyTorch's SDPA attention; `quantize`: 4-bit
    NF4 weights on the first CUDA GPU (QLoRA)."""
    from transformers import AutoModelForCausalLM

    source = resolve_base_model(get_settings(), base_model)
    tokenizer = load_tokenizer(source)
    options = {"dtype": DTYPES[dtype], "attn_implementation": "sdpa"}
    if quantize:
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        options.update(dtype=compute, device_map={"": torch.cuda.current_device()}, quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute))
    model = contiguous_head(AutoModelForCausalLM.from_pretrained(source, **options))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def add_lora(model, config: TrainConfig):
    """The model with fresh LoRA adapters (fp32, whatever the base's precision), ready to train: for QLoRA the
    4-bit base is prepared first (norms in fp32, inputs that carry gradients), and gradient checkpointing is set
    as the config asks."""
    from peft import LoraConfig, get_peft_model

    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.target_modules, task_type="CAUSAL_LM")
    return with_fast_dropout(get_peft_model(model, lora))


class LoraDropout(torch.nn.Module):
    """peft's LoRA dropout (keep each input with probability 1 - p, scale by 1 / (1 - p)), twice as fast on a
    CPU: 16 random bits per element from one int64 draw per four elements, where torch's dropout draws a
    float per element. A LoRA step on SmolLM2 spent a fifth of its time in those draws (210 layers)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return torch.nn.functional.dropout(x, self.p, training=True)
        n = x.numel()
        bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64).view(torch.int16)[:n]
        drop = bits.view(x.shape) < round(self.p * 65536) - 32768  # P(drop) = p, to 1/65536
        return (x * (1 / (1 - self.p))).masked_fill_(drop, 0)


def with_fast_dropout(model):
    """The model with every LoRA layer's dropout replaced by LoraDropout (same distribution)."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name, dropout in module.lora_dropout.items():
                if isinstance(dropout, torch.nn.Dropout):
                    module.lora_dropout[name] = LoraDropout(dropout.p)
    return model


PLAIN_HEADS = ("llama", "mistral", "qwen2", "qwen3", "phi3", "smollm3")


def answer_logits(model, input_ids, attention_mask, labels):
    """(logits, targets) at the answer tokens only (labels not IGNORE, shifted): the vocabulary projection (576 x
    49152 for SmolLM2, about a fifth of the model's compute, and its largest activation) runs for those tokens
    alone. None for an architecture whose head does more than a projection (logit scaling or soft-capping)."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    if causal_lm.config.model_type not in PLAIN_HEADS:
        return None
    hidden = causal_lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE
    return causal_lm.get_output_embeddings()(hidden[:, :-1][keep]).float(), targets[keep]


class AnswerLoss(torch.nn.Module):
    """The objective: mean cross-entropy on the answer tokens (labels not IGNORE), the same value as the model's
    own loss, with the vocabulary projection computed for those tokens only (answer_logits). A module, so that
    DDP wraps the whole objective. Other heads use the model's own loss."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        found = answer_logits(self.model, input_ids, attention_mask, labels)
        if found is None:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        return torch.nn.functional.cross_entropy(*found)


def load_adapter_model(adapter_dir: Path):
    """Base + adapter, wherever the adapter was trained (QLoRA's too: on the full-precision base): the base is
    named portably ("embedded", an HF id or a folder) in adapter_config.json, never by a site-packages path."""
    from peft import PeftModel

    model, tokenizer = load_base(adapter_base(adapter_dir))
    return PeftModel.from_pretrained(model, str(adapter_dir)), tokenizer


def export_merged(adapter_dir: Path, target: Path) -> Path:
    """Base + adapter merged into one ordinary transformers model folder (for servers without LoRA support)."""
    model, tokenizer = load_adapter_model(adapter_dir)
    merged = model.merge_and_unload()
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target
