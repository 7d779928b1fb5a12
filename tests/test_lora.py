"""The local LoRA trainer on a tiny model: only LoRA weights learn, runs resume, cancel, and fail clearly."""

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import make_run, wait_for
from training.backends import local as jobs
from training.base.registry import Registry
from training.jobs import events, queue
from training.jobs.events import Done, Start, Step
from training.local.batches import collate, length_grouped_batches
from training.local.checkpoints import latest_checkpoint
from training.local.config import ConfigError, TrainConfig
from training.local.lora import train
from training.local.lora_model import add_lora, load_adapter_model, load_base


def test_lora_weights_change_and_base_weights_do_not(tmp_path, data, tiny_model_dir):
    base, _ = load_base(str(tiny_model_dir))
    before = {name: p.detach().clone() for name, p in base.named_parameters()}
    run_dir = make_run(tmp_path, data, tiny_model_dir)
    summary = train(run_dir)
    assert summary["status"] == "succeeded" and summary["steps"] == 12 and summary["tokens_trained"] > 0
    assert {"val_loss", "val_token_accuracy", "val_f1", "final_loss"} <= set(summary)
    adapter = run_dir / "adapter"
    assert {p.name for p in adapter.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)

    trained, _ = load_adapter_model(adapter)
    lora = {n: p for n, p in trained.named_parameters() if "lora_" in n}
    assert lora and any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n), "LoRA B never moved from zero"
    for name, weight in trained.get_base_model().named_parameters():
        if "lora_" not in name:
            original = name.replace("base_layer.", "")
            assert torch.equal(weight, before[original]), f"base weight {original} changed"


def test_the_bf16_path_trains_the_adapter_and_leaves_the_base_alone(tmp_path, data, tiny_model_dir):
    base, _ = load_base(str(tiny_model_dir))
    before = {name: p.detach().clone() for name, p in base.named_parameters()}
    run_dir = make_run(tmp_path, data, tiny_model_dir, bf16="yes", epochs=3, eval_generate_limit=0)
    # Its own process, as the app runs it: accelerate keeps one precision per process.
    result = subprocess.run([sys.executable, "-m", "training.local.lora", str(run_dir)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = events.read(run_dir)[0]
    assert next(e for e in seen if e["type"] == "start")["bf16"] is True
    losses = [e["loss"] for e in seen if e["type"] == "step"]
    assert statistics.fmean(losses[-3:]) < statistics.fmean(losses[:3]), f"the loss did not fall: {losses}"
    trained, _ = load_adapter_model(run_dir / "adapter")
    b_weights = {n: p for n, p in trained.named_parameters() if "lora_B" in n}
    assert b_weights and all(p.abs().sum() > 0 for p in b_weights.values()), "a LoRA B weight never moved"
    for name, weight in trained.get_base_model().named_parameters():
        if "lora_" not in name:
            assert torch.equal(weight, before[name.replace("base_layer.", "")]), f"base weight {name} changed"


def test_batches_group_lengths_and_padding_stays_small(data, tiny_model_dir):
    from transformers import AutoTokenizer

    from training.local.batches import load_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, _ = load_examples(str(data[0]), tokenizer, 512)
    lengths = [len(e["input_ids"]) for e in examples]
    batches = length_grouped_batches(lengths, 4, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    assert batches == length_grouped_batches(lengths, 4, seed=1) != length_grouped_batches(lengths, 4, seed=2)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert sum(lengths) / padded > 0.9, "length grouping should keep padding under 10%"
    batch = collate([examples[i] for i in batches[0]], tokenizer.pad_token_id)
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    first = examples[0]
    assert first["labels"][0] == -100 and first["labels"][-1] != -100  # loss on the assistant answer only


def test_the_answer_loss_is_the_models_own_loss(tiny_model_dir, data):
    """Same value as transformers' loss with the labels, though the head runs on the answer tokens only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.local.batches import load_examples
    from training.local.lora_model import AnswerLoss

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, _ = load_examples(str(data[0]), tokenizer, 512)
    batch = collate(examples[:4], tokenizer.pad_token_id)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), TrainConfig(train_file=str(data[0])))
    model.eval()
    with torch.no_grad():
        expected = model(**batch).loss
        assert torch.allclose(AnswerLoss(model)(**batch), expected, atol=1e-5)


def test_the_fast_lora_dropout_keeps_the_distribution():
    from training.local.lora_model import LoraDropout

    dropout = LoraDropout(0.05)
    out = dropout(torch.ones(400_000))
    assert abs((out == 0).float().mean().item() - 0.05) < 0.002
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.95))
    assert abs(out.mean().item() - 1) < 0.005  # unbiased, as torch's dropout
    assert not torch.equal(out, dropout(torch.ones(400_000))), "the same mask twice"
    dropout.eval()
    assert torch.equal(dropout(torch.ones(10)), torch.ones(10))


@pytest.mark.parametrize("overrides, message", [
    ({"learning_rate": 0}, "learning_rate must be greater than 0"),
    ({"learning_rate": -1e-4}, "learning_rate must be greater than 0"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
    ({"lora_r": 0}, "lora_r must be greater than or equal to 1"),
    ({"train_file": "/nope.jsonl"}, "training file does not exist"),
])
def test_bad_settings_are_refused_before_starting(tmp_path, data, tiny_model_dir, overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{"train_file": str(data[0]), **overrides}).check()


def test_max_length_above_the_context_fails_the_run_with_its_reason(tmp_path, data, tiny_model_dir):
    registry = Registry(tmp_path / "registry.sqlite")
    run_dir = make_run(tmp_path, data, tiny_model_dir, max_length=100_000)
    registry.create_run("local", {}, run_dir, run_id=run_dir.name)
    from training.local.lora import main

    assert main([str(run_dir), "--registry", str(registry.path)]) == 2
    run = registry.run(run_dir.name)
    assert run.status == "failed" and "above the model's context of 2048" in run.error


def test_a_dataset_without_assistant_answers_fails_clearly(tmp_path, data, tiny_model_dir):
    empty = tmp_path / "no_answers.jsonl"
    empty.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    run_dir = make_run(tmp_path, (empty, data[1]), tiny_model_dir)
    with pytest.raises(ConfigError, match="No usable training examples"):
        train(run_dir)


def test_two_trainers_cannot_share_a_run_directory(tmp_path, data, tiny_model_dir):
    from training.local.lora import RunBusy, RunLock

    run_dir = make_run(tmp_path, data, tiny_model_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from training.local.lora import RunLock; "
                               f"lock = RunLock(__import__('pathlib').Path({str(run_dir)!r})).__enter__(); "
                               "print('locked', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusy, match=f"in use by process {holder.pid}"):
            RunLock(run_dir).__enter__()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(run_dir):  # a dead owner's lock is stale and taken over
        assert (run_dir / "lock").read_text() == str(os.getpid())


def follow_all(run, registry) -> list:
    async def collect():
        return [event async for event in jobs.follow(run, registry, poll=0.2)]

    return asyncio.run(collect())


def started_job(tmp_path, data, tiny_model_dir, **overrides):
    registry = Registry(tmp_path / "data" / "registry.sqlite")
    config = TrainConfig(train_file=str(data[0]), validation_file=str(data[1]), base_model=str(tiny_model_dir),
                         batch_size=2, learning_rate=1e-3, save_every=2, eval_generate_limit=1, bf16="no",
                         **{"epochs": 6, **overrides})
    return jobs.start_local(config, tmp_path / "data", registry), registry


def test_a_killed_job_is_marked_interrupted_and_resumes_from_its_checkpoint(tmp_path, data, tiny_model_dir):
    run, registry = started_job(tmp_path, data, tiny_model_dir)
    run_dir = Path(run.run_dir)
    wait_for(lambda: latest_checkpoint(run_dir) and int(latest_checkpoint(run_dir).name[5:]) >= 4)
    os.killpg(int(run.handle), signal.SIGKILL)
    wait_for(lambda: not queue.process_alive(run.handle))
    assert queue.reconcile(registry) == [run.id]
    assert registry.run(run.id).status == "interrupted"
    saved_step = int(latest_checkpoint(run_dir).name[5:])

    resumed = jobs.resume(registry.run(run.id), registry)
    seen = follow_all(resumed, registry)
    resumed_at = next(e for e in seen if isinstance(e, Start) and e.resumed)
    assert resumed_at.step == saved_step
    steps = [e.step for e in seen if isinstance(e, Step)]
    assert steps[steps.index(saved_step + 1):][-1] == seen[-1].steps  # continued, not restarted
    assert isinstance(seen[-1], Done) and registry.run(run.id).status == "succeeded"
    assert [m.location for m in registry.models()] == [str(run_dir / "adapter")]


def test_cancel_stops_the_process_and_keeps_a_checkpoint(tmp_path, data, tiny_model_dir):
    run, registry = started_job(tmp_path, data, tiny_model_dir, epochs=20)
    run_dir = Path(run.run_dir)
    wait_for(lambda: any(e["type"] == "step" for e in events.read(run_dir)[0]))
    cancelled = jobs.cancel(registry.run(run.id), registry)
    assert cancelled.status == "cancelled" and not queue.process_alive(run.handle)
    assert any(e["type"] == "cancelled" for e in events.read(run_dir)[0])
    assert latest_checkpoint(run_dir) is not None


def test_failures_are_explained_in_words():
    import errno

    from training.local.lora import explain_failure

    assert "disk is full" in explain_failure(OSError(errno.ENOSPC, "No space left on device"))
    assert "lower the batch size" in explain_failure(torch.OutOfMemoryError("CUDA out of memory"))
    assert "lower the batch size" in explain_failure(RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory"))
    assert explain_failure(ConfigError("bad r")) == "bad r"


def test_merged_export_matches_the_adapter(tmp_path, data, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from training.local.lora_model import export_merged

    run_dir = make_run(tmp_path, data, tiny_model_dir, epochs=1, eval_generate_limit=0)
    train(run_dir)
    merged_dir = export_merged(run_dir / "adapter", run_dir / "merged")
    adapted, _ = load_adapter_model(run_dir / "adapter")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    ids = torch.tensor([[1, 20, 300, 4000]])
    with torch.no_grad():
        assert torch.allclose(adapted(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)


def test_the_registry_round_trips(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite")
    dataset = registry.add_dataset("sample", {"train": "t.jsonl"}, {"rows_read": 239})
    run = registry.create_run("local", {"epochs": 3, "lora_r": 8}, tmp_path / "run", run_id="run-a")
    registry.update_run("run-a", status="succeeded", metrics={"val_f1": 0.8}, adapter_path="/a")
    again = Registry(tmp_path / "registry.sqlite")  # a restarted app
    assert again.datasets()[0].id == dataset and again.datasets()[0].report == {"rows_read": 239}
    stored = again.run("run-a")
    assert stored.config == {"epochs": 3, "lora_r": 8} and stored.metrics == {"val_f1": 0.8}
    assert stored.status == "succeeded" and run.created_at <= stored.updated_at
    with pytest.raises(ValueError):
        again.update_run("run-a", status="exploded")


def test_two_process_accelerate_run(tmp_path, data, tiny_model_dir):
    run_dir = make_run(tmp_path, data, tiny_model_dir, epochs=1, batch_size=2, eval_generate_limit=0)
    accelerate = Path(sys.executable).parent / "accelerate"
    # --multi_gpu selects accelerate's torchrun launcher; on a CPU-only machine the processes use gloo.
    result = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                             "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.local.lora", str(run_dir)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()]
    assert seen[0]["type"] == "start" and seen[0]["processes"] == 2
    assert seen[-1]["type"] == "done" and (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert seen[0]["total_steps"] == 6  # 24 examples in batches of 2 = 12 batches, shared by 2 processes


def test_the_runs_validation_answers_are_generated_in_batches_like_one_at_a_time(embedded_torch_dir):
    """generation_f1 decodes its answers 8 at a time with left padding: the same greedy tokens as alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.local.lora import generate_answers

    tokenizer = AutoTokenizer.from_pretrained(embedded_torch_dir)
    model = AutoModelForCausalLM.from_pretrained(embedded_torch_dir)
    system = {"role": "system", "content": "List the generic ingredients of the recipe as a JSON list."}
    titles = ["Tea", "Pancakes with blueberries and maple syrup", "Soup", "Garlic bread with butter and parsley"]
    conversations = [[system, {"role": "user", "content": f"Title: {title}"}, {"role": "assistant", "content": ""}]
                     for title in titles]
    together = generate_answers(model, tokenizer, conversations, max_new_tokens=24, batch_size=4)
    alone = [generate_answers(model, tokenizer, [c], max_new_tokens=24, batch_size=1)[0] for c in conversations]
    assert together == alone and len(set(together)) == 4


def test_the_defaults_are_the_ones_the_docs_document():
    """What "Fine-tune locally" trains with when nothing is changed: the measured defaults in the docs
    (docs/fine-tuning.md, "Defaults that work"), exactly."""
    import re

    from training.base.settings import PROJECT_ROOT

    page = (PROJECT_ROOT / "docs" / "fine-tuning.md").read_text(encoding="utf-8")
    [line] = [text for text in page.splitlines() if text.startswith("Defaults (`TrainConfig()`):")]
    documented = dict(pair.split("=", 1) for pair in re.findall(r"`(\w+=[^`]+)`", line))
    assert set(documented) == {"epochs", "learning_rate", "lora_r", "lora_alpha", "lora_dropout", "target_modules",
                               "batch_size", "gradient_accumulation", "max_length", "warmup_ratio", "eval_generate_limit"}
    defaults = TrainConfig()
    assert {name: str(getattr(defaults, name)) for name in documented} == documented
