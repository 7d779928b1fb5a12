"""LoRA training throughput on the embedded SmolLM2-135M: the project's trainer vs the HF Trainer + PEFT as a
skilled user sets it up (dynamic padding, length-grouped batches, the same precision), and vs TRL's
SFTTrainer (completion-only loss, as the project trains), same data, same hyperparameters, in one run.
Tokens/s counts real (non-pad) tokens only; FLOP/s (about 4 x parameters x tokens/s for LoRA) is compared
with this machine's matmul peak measured in the same run. The project and the HF Trainer each train twice,
in turns, and each keeps its faster run: 8 timed steps are short, and a hiccup on a shared 2-core machine
should not decide the ratio (the baseline alone measured 124 and 165 tokens/s on two runs the same evening).
TRL comes with `make bench` only.

    python -m benchmarks.train_throughput [EXAMPLES]
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from training.data.recipes import SAMPLE_CSV

SHARED_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "recipes_cookbook_train.jsonl"
EXAMPLES, BATCH, MAX_LENGTH, LR, R, ALPHA = 64, 8, 512, 2e-4, 8, 16
ROUNDS = 2  # runs of the project and the HF Trainer, in turns; the faster of each counts


def training_file(folder: Path, examples: int) -> Path:
    if SHARED_TRAIN.exists():
        print(f"data: the first {examples} examples of the cookbook's split ({SHARED_TRAIN})")
        lines = SHARED_TRAIN.read_text().splitlines()[:examples]
        path = folder / "train.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return path
    from training.data.prepare import prepare

    print(f"data: {examples} examples of the bundled sample; {SHARED_TRAIN.parent} is not beside the project")
    prepare(str(SAMPLE_CSV), folder, train=examples, validation=0, test=0)
    return folder / "train.jsonl"


def matmul_peak(dtype, size=1024, seconds=1.5) -> float:
    a = torch.randn(size, size).to(dtype)
    a @ a
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ a
        count += 1
    return 2 * size ** 3 * count / (time.perf_counter() - started)


def project(train_file: Path, folder: Path) -> tuple[float, bool]:
    from training.local.config import TrainConfig
    from training.local.lora import train

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=folder))
    TrainConfig(train_file=str(train_file), epochs=1, batch_size=BATCH, learning_rate=LR, lora_r=R, lora_alpha=ALPHA,
                max_length=MAX_LENGTH, save_every=10_000, eval_generate_limit=0).save(run_dir / "config.json")
    train(run_dir)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "step"][1:]  # the first step pays one-time warm-up
    bf16 = next(e for e in events if e["type"] == "start")["bf16"]
    real = sum(e["tokens"] for e in steps[-1:]) - next(e for e in events if e["type"] == "step")["tokens"]
    seconds = steps[-1]["time"] - next(e for e in events if e["type"] == "step")["time"]
    return real / seconds, bf16


def baseline(train_file: Path, folder: Path, bf16: bool) -> float:
    """What a skilled user runs: HF Trainer + PEFT, dynamic padding (each batch padded to its longest example),
    length-grouped batches, and bf16 autocast exactly when the project's trainer chose it, so both compute alike."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from training.local.lora_model import load_base

    model, tokenizer = load_base("embedded")
    model = get_peft_model(model, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    texts = [tokenizer.apply_chat_template(json.loads(line)["messages"], tokenize=False) for line in train_file.open()]
    rows = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)}
            for ids in tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]]
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="hf-", dir=folder), per_device_train_batch_size=BATCH,
                             num_train_epochs=1, learning_rate=LR, save_strategy="no", report_to=[],
                             logging_strategy="no", use_cpu=True, train_sampling_strategy="group_by_length", bf16=bf16, dataloader_drop_last=True, seed=0)
    pad = DataCollatorForSeq2Seq(tokenizer, padding="longest")  # labels padded with -100
    return timed(Trainer(model=model, args=args, train_dataset=rows, data_collator=pad))


def trl_baseline(train_file: Path, folder: Path, bf16: bool) -> float:
    """TRL's SFTTrainer as its docs set it up for chat data: prompt-completion conversations, loss on the
    completion only, LoRA through `peft_config`, length-grouped batches, the same precision."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from training.local.lora_model import load_base

    model, tokenizer = load_base("embedded")
    conversations = [json.loads(line)["messages"] for line in train_file.open()]
    data = Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in conversations])
    args = SFTConfig(output_dir=str(folder / "trl"), per_device_train_batch_size=BATCH, num_train_epochs=1,
                     learning_rate=LR, save_strategy="no", report_to=[], logging_strategy="no", use_cpu=True,
                     train_sampling_strategy="group_by_length", bf16=bf16, dataloader_drop_last=True, seed=0,
                     max_length=MAX_LENGTH, completion_only_loss=True)
    lora = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora)
    return timed(trainer)


def timed(trainer) -> float:
    """Real tokens/s of a transformers Trainer over its steps after the first (which pays one-time warm-up)."""
    from transformers import TrainerCallback

    real, stamps, collate = [], [], trainer.data_collator

    def counting(batch):
        padded = collate(batch)
        real.append(int(padded["attention_mask"].sum()))  # batches come in step order (no workers)
        return padded

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    trainer.data_collator = counting
    trainer.add_callback(Clock())
    trainer.train()
    return sum(real[1:len(stamps)]) / (stamps[-1] - stamps[0])


def run(examples: int = EXAMPLES) -> dict:
    params = 134.5e6
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = training_file(folder, examples)
        ours, theirs = [], []
        for _ in range(ROUNDS):
            speed, bf16 = project(data, folder)
            ours.append(speed)
            theirs.append(baseline(data, folder, bf16))
        trl = trl_baseline(data, folder, bf16)
    print("runs, real tokens/s: project " + ", ".join(f"{v:.0f}" for v in ours) + "; HF Trainer "
          + ", ".join(f"{v:.0f}" for v in theirs))
    ours, theirs = max(ours), max(theirs)
    peak = matmul_peak(torch.bfloat16 if bf16 else torch.float32)
    achieved = 4 * params * ours
    precision = "bf16" if bf16 else "fp32"
    print(f"project : {ours:,.0f} real tokens/s ({precision}), {achieved / 1e9:.1f} GFLOP/s = "
          f"{achieved / peak:.0%} of the measured {peak / 1e9:.0f} GFLOP/s matmul peak")
    print(f"baseline: {theirs:,.0f} real tokens/s (HF Trainer + PEFT, dynamic padding, length-grouped, {precision})")
    print(f"TRL     : {trl:,.0f} real tokens/s (SFTTrainer, completion-only loss, length-grouped, {precision})")
    return {"name": f"LoRA training, SmolLM2-135M, {examples} cookbook examples (real tokens/s)",
            "project": f"{ours:,.0f} ({achieved / peak:.0%} of {peak / 1e9:.0f} GFLOP/s matmul peak)",
            "baseline": f"{theirs:,.0f} (HF Trainer + PEFT, dynamic padding, length-grouped batches, {precision}); "
                        f"TRL SFTTrainer {trl:,.0f}", "ratio": f"{ours / theirs:.2f}x; {ours / trl:.2f}x TRL"}


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES))
