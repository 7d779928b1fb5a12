"""What a learner gets by pressing "Fine-tune locally" without changing anything: the bundled sample prepared
with /prepare's defaults, TrainConfig()'s defaults, the trainer in its own process as the app starts it. The
figures: seconds from the command to the finished run (model load, training, the run's own validation and the
llama.cpp file included), and F1 on 30 real RecipeNLG recipes the run never saw (the cookbook's validation
split), against the RAG baseline (the base model with 3 retrieved training examples) on the same recipes.

    python -m benchmarks.default_fine_tune                            # the defaults
    python -m benchmarks.default_fine_tune epochs=2 learning_rate=1e-3   # a sweep point: any TrainConfig fields
"""

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assistant.chat.dataset_flow import DEFAULTS
from assistant.inference.backends import create_backend
from assistant.inference.engine import engine
from assistant.tutor.contenders import Contender, ExampleIndex, answer_budget
from benchmarks.generation import SHARED
from training.base.models import load_tokenizer, resolve_base_model
from training.base.settings import load_settings
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
from training.data.tokens import local_counter
from training.evaluation.diagnosis import diagnose
from training.evaluation.held_out import evaluate, load_cases
from training.local.config import TrainConfig

HELD_OUT = 30


def run(overrides: dict | None = None) -> dict:
    held_out = SHARED / "recipes_cookbook_validation.jsonl"
    if not held_out.is_file():
        raise SystemExit(f"needs the cookbook's split beside the project ({SHARED}): real held-out recipes")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = load_settings(_env_file=None, data_dir=tmp / "data")
        files = prepare(SAMPLE_CSV, tmp / "sample", **{k: DEFAULTS[k] for k in ("train", "validation", "test", "seed")}).files
        config = TrainConfig(train_file=files["train"], validation_file=files["validation"], **(overrides or {}))
        run_dir = tmp / "run"
        run_dir.mkdir()
        config.save(run_dir / "config.json")
        started = time.perf_counter()
        trained = subprocess.run([sys.executable, "-m", "training.local.lora", str(run_dir)], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if trained.returncode != 0:
            raise SystemExit(trained.stderr[-2000:])
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        done = events[-1]
        explained = [f.kind for f in diagnose(events, config.model_dump())] or ["no finding"]
        source = engine.call(resolve_base_model, settings)
        budget = answer_budget(files["train"], local_counter(load_tokenizer(source)))
        tuned = Contender("fine-tuned", "fine-tuned", create_backend("local", settings, model=str(run_dir / "adapter")),
                          max_tokens=budget)
        rag = Contender("rag", "rag", create_backend("local", settings),
                        index=ExampleIndex(settings, files["train"], 3).build(), max_tokens=budget)
        summary, _ = asyncio.run(evaluate({"fine-tuned": tuned.answer, "rag": rag.answer},
                                          load_cases(held_out, HELD_OUT, seed=0)))
    ours, theirs = summary["fine-tuned"]["f1"], summary["rag"]["f1"]
    changed = ", ".join(f"{k}={v}" for k, v in (overrides or {}).items()) or "the defaults"
    print(f"{changed}: {seconds:.0f} s from the command to the finished run ({done['steps']} steps); "
          f"F1 on {HELD_OUT} held-out cookbook recipes {ours:.3f} (RAG baseline {theirs:.3f}); "
          f"val loss {done.get('val_loss', float('nan')):.3f}; Explain my run: {', '.join(explained)}")
    return {"name": f"default local fine-tune ({changed}), bundled sample -> {HELD_OUT} real held-out recipes",
            "project": f"F1 {ours:.2f} in {seconds:.0f} s from the command", "baseline": f"F1 {theirs:.2f} (RAG)",
            "ratio": f"{ours / theirs:.1f}x F1" if theirs else "RAG scored 0"}


if __name__ == "__main__":
    print(run({key: json.loads(value) if value[0].isdigit() or value[0] in "[-" else value
               for key, value in (arg.split("=", 1) for arg in sys.argv[1:])}))
