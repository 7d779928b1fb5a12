"""Held-out evaluation: the project's `evaluate` against a skilled user's batched `model.generate`.

A LoRA adapter is trained first (one epoch on the training file, in its own process, as the app does), then
20 held-out recipes are answered by the fine-tune and by its RAG baseline (the base model with 3 retrieved
training examples):
- project: training.evaluation.held_out.evaluate through the app's contenders: 8 answers in flight on the generation
  engine (decoded together), greedy, stopped at EOS, at max_tokens derived from the training answers (p99 x
  1.5) or at a repetition;
- baseline: the same prompts through transformers' `generate`, batches of 8, left-padded, greedy, the same
  max_new_tokens (the adapter switched off for the RAG side), on the engine's thread like the project's.
Both are scored with the same metrics; the figure is wall time for all 40 answers, and F1 beside it, with the
paired difference per recipe and its standard error: the two runtimes' numerics differ (llama.cpp's Q8_0
against transformers' fp32), which flips near-tied greedy tokens, so 20 recipes tell F1 apart only roughly.

    python -m benchmarks.evaluation              # 20 recipes, as `make bench`
    python -m benchmarks.evaluation --cases 100  # every held-out cookbook recipe: F1 to within about 0.015
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from assistant.inference.backends import create_backend
from assistant.inference.engine import engine
from assistant.tutor.contenders import Contender, ExampleIndex, answer_budget
from benchmarks.generation import cookbook_files
from training.base.models import load_tokenizer, resolve_base_model
from training.base.settings import load_settings
from training.data.tokens import local_counter
from training.evaluation.held_out import evaluate, load_cases
from training.evaluation.metrics import score_answer
from training.local.config import TrainConfig
from training.local.lora_model import load_adapter_model

CASES, BATCH = 20, 8  # recipes by default; answers per generate call


def batched_generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, adapter: bool) -> list[str]:
    """A skilled user's evaluation loop: left-padded batches through `generate`, greedy."""
    tokenizer.padding_side = "left"
    answers = []
    for start in range(0, len(prompts), BATCH):
        batch = prompts[start:start + BATCH]
        inputs = tokenizer.apply_chat_template(batch, add_generation_prompt=True, padding=True, return_tensors="pt",
                                               return_dict=True)
        with torch.inference_mode():
            if adapter:
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.eos_token_id)
            else:
                with model.disable_adapter():
                    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                         pad_token_id=tokenizer.eos_token_id)
        answers += tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return answers


def paired(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """The mean per-recipe difference and its standard error."""
    differences = [a - b for a, b in zip(ours, theirs)]
    return statistics.fmean(differences), statistics.stdev(differences) / len(differences) ** 0.5


def run(count: int = CASES) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = load_settings(_env_file=None, data_dir=tmp / "data")
        train, held_out = cookbook_files(tmp)
        run_dir = tmp / "run"
        run_dir.mkdir()
        TrainConfig(train_file=str(train), epochs=1, batch_size=8, eval_generate_limit=0,
                    save_every=10_000).save(run_dir / "config.json")
        trained = subprocess.run([sys.executable, "-m", "training.local.lora", str(run_dir)], capture_output=True, text=True)
        if trained.returncode != 0:
            raise SystemExit(trained.stderr[-2000:])
        adapter = run_dir / "adapter"
        source = engine.call(resolve_base_model, settings)
        budget = answer_budget(train, local_counter(load_tokenizer(source)))
        tuned = Contender("fine-tuned", "fine-tuned", create_backend("local", settings, model=str(adapter)),
                          max_tokens=budget)
        rag = Contender("rag", "rag", create_backend("local", settings), index=ExampleIndex(settings, train, 3).build(),
                        max_tokens=budget)
        cases = load_cases(held_out, count, seed=0)
        asyncio.run(tuned.answer(cases[0]))  # load the model and the adapter, as a warm app has them
        asyncio.run(rag.answer(cases[0]))

        started = time.perf_counter()
        summary, rows = asyncio.run(evaluate({"fine-tuned": tuned.answer, "rag": rag.answer}, cases))
        ours = time.perf_counter() - started

        model, tokenizer = engine.call(load_adapter_model, adapter)
        prompts = {name: [asyncio.run(side.messages(case)) for case in cases]
                   for name, side in (("fine-tuned", tuned), ("rag", rag))}
        engine.call(batched_generate, model, tokenizer, prompts["rag"][:1], 4, False)  # warm
        started = time.perf_counter()
        answers = {name: engine.call(batched_generate, model, tokenizer, prompts[name], budget, name == "fine-tuned")
                   for name in prompts}
        theirs = time.perf_counter() - started

    scores = {name: [score_answer(a, c.gold)["f1"] for a, c in zip(answers[name], cases)] for name in answers}
    f1 = {name: statistics.fmean(values) for name, values in scores.items()}
    ours_f1 = {name: [row["f1"] for row in sorted((r for r in rows if r["system"] == name), key=lambda r: r["case"])]
               for name in scores}
    difference = {name: paired(ours_f1[name], scores[name]) for name in scores}
    print(f"{len(cases)} recipes x 2 systems, max_tokens {budget} (p99 of the training answers x 1.5)")
    for name in summary:
        print(f"project  {name:10s} F1 {summary[name]['f1']:.3f}, answers ended by {summary[name]['stops']}, "
              f"p95 latency {summary[name]['p95_latency_s']:.1f} s")
        print(f"baseline {name:10s} F1 {f1[name]:.3f}; project - baseline per recipe {difference[name][0]:+.3f} "
              f"(standard error {difference[name][1]:.3f})")
    print(f"project: {ours:.1f} s for {len(rows)} answers; batched model.generate: {theirs:.1f} s")
    return {"name": f"held-out evaluation ({len(cases)} recipes x fine-tuned + RAG)",
            "project": f"{ours:.0f} s; F1 {summary['fine-tuned']['f1']:.2f} / {summary['rag']['f1']:.2f}",
            "baseline": f"{theirs:.0f} s; F1 {f1['fine-tuned']:.2f} / {f1['rag']:.2f} (batched model.generate)",
            "ratio": f"{theirs / ours:.2f}x; F1 difference " + " / ".join(
                f"{mean:+.2f} ± {error:.2f}" for mean, error in difference.values())}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=CASES, help="held-out recipes to answer (default 20)")
    print(run(parser.parse_args().cases))
