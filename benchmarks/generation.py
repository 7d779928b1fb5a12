"""Local generation: the project's engine against plain `model.generate`, and the memory-bandwidth bound.

On the embedded SmolLM2-135M with cookbook recipe prompts (greedy, both produce the same tokens):
time to first token and decode tokens/s of assistant.generation's engine and of transformers'
`generate` with a streamer, in the same run. The bound is measured memory bandwidth over the bytes of
weights read per decoded token. Also: mean prompt tokens of the RAG baseline (3 retrieved examples) vs
the fine-tuned model's prompt, the cost argument of the lesson.

    python -m benchmarks.generation
"""

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import torch

from assistant.contenders import Contender, ExampleIndex
from assistant.generation import engine, load_model
from training.evaluation import load_cases
from training.models import resolve_base_model
from training.prepare import prepare
from training.recipes import SAMPLE_CSV
from training.settings import load_settings

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PROMPTS = 12
MAX_TOKENS = 64


def cookbook_files(tmp: Path) -> tuple[Path, Path]:
    """(train, held-out) chat JSONL: the cookbook split when it is beside the project, else the sample; it says
    which, since the figures differ between them."""
    if (SHARED / "recipes_cookbook_train.jsonl").is_file():
        print(f"data: the cookbook's RecipeNLG split from {SHARED} (101 train / 100 validation)")
        return SHARED / "recipes_cookbook_train.jsonl", SHARED / "recipes_cookbook_validation.jsonl"
    print(f"data: the bundled sample ({SAMPLE_CSV.name}: 150 train / 40 test); {SHARED} is not beside the project")
    files = prepare(SAMPLE_CSV, tmp / "sample", train=150, validation=40, test=40).files
    return Path(files["train"]), Path(files["test"])


def plain_generate(model, tokenizer, messages) -> tuple[float, float, int]:
    """(ttft, total seconds, new tokens) of model.generate with a streamer timing the first token."""
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):
        def __init__(self):
            self.calls, self.first = 0, None

        def put(self, value):
            self.calls += 1
            if self.calls == 2:  # the first call is the prompt
                self.first = time.perf_counter()

        def end(self):
            pass

    streamer = FirstToken()
    started = time.perf_counter()
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False, streamer=streamer,
                             pad_token_id=tokenizer.eos_token_id)
    total = time.perf_counter() - started
    return streamer.first - started, total, out.shape[1] - inputs["input_ids"].shape[1]


def memory_bandwidth() -> float:  # run on the engine's thread too
    """Bytes/s of a large copy (read + write), best of 5."""
    source = torch.ones(128 * 1024 * 1024 // 4 * 4)  # 512 MiB
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.numel() * source.element_size() / best


def run() -> dict:
    settings = load_settings(_env_file=None)
    source = resolve_base_model(settings)
    model, tokenizer = load_model(source, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        train, heldout = cookbook_files(Path(tmp))
        cases = load_cases(heldout, limit=PROMPTS, seed=0)
        tuned_prompts = [[{"role": "system", "content": c.system}, {"role": "user", "content": c.prompt}] for c in cases]
        rag = Contender("rag", "rag", backend=None, index=ExampleIndex(load_settings(_env_file=None, data_dir=Path(tmp)),
                                                                        train, k=3).build())
        rag_prompts = [asyncio.run(rag.messages(c)) for c in cases]

    count = lambda messages: len(tokenizer.apply_chat_template(messages, add_generation_prompt=True,  # noqa: E731
                                                               return_dict=True)["input_ids"])
    # Both on the engine's thread: torch work on a second thread would slow both (see assistant/generation.py).
    baseline = lambda messages: engine.call(plain_generate, model, tokenizer, messages)  # noqa: E731
    engine.complete(source, tuned_prompts[0], max_tokens=8)  # warm both paths
    baseline(tuned_prompts[0])
    ours, theirs = [], []
    for messages in tuned_prompts:
        _, usage = engine.complete(source, messages, max_tokens=MAX_TOKENS)
        ours.append((usage.ttft_s, usage.latency_s, usage.completion_tokens))
        theirs.append(baseline(messages))

    def figures(runs):
        ttft = statistics.median(r[0] for r in runs)
        decode = sum(r[2] - 1 for r in runs) / sum(r[1] - r[0] for r in runs)
        return ttft, decode

    ttft, speed = figures(ours)
    base_ttft, base_speed = figures(theirs)
    weights = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    bandwidth = engine.call(memory_bandwidth)
    bound = bandwidth / weights
    tuned_tokens = statistics.fmean(count(m) for m in tuned_prompts)
    rag_tokens = statistics.fmean(count(m) for m in rag_prompts)
    print(f"{len(cases)} prompts, greedy, up to {MAX_TOKENS} tokens, {torch.get_num_threads()} threads")
    print(f"engine:          TTFT {ttft * 1000:.0f} ms (median), decode {speed:.1f} tokens/s")
    print(f"model.generate:  TTFT {base_ttft * 1000:.0f} ms (median), decode {base_speed:.1f} tokens/s")
    print(f"bandwidth bound: {bandwidth / 1e9:.1f} GB/s over {weights / 1e6:.0f} MB of fp32 weights = {bound:.1f} "
          f"tokens/s; the engine reaches {speed / bound:.0%} of it")
    print(f"mean prompt tokens: fine-tuned {tuned_tokens:.0f}, RAG baseline (3 examples) {rag_tokens:.0f} "
          f"({rag_tokens / tuned_tokens:.1f}x)")
    return {"name": "local generation (decode tokens/s; TTFT)", "project": f"{speed:.1f}; {ttft * 1000:.0f} ms",
            "baseline": f"{base_speed:.1f}; {base_ttft * 1000:.0f} ms (model.generate)",
            "ratio": f"{speed / base_speed:.2f}x tokens/s, {base_ttft / ttft:.2f}x TTFT; {speed / bound:.0%} of the "
                     f"{bound:.0f} tokens/s bandwidth bound; RAG prompts {rag_tokens / tuned_tokens:.1f}x longer"}


if __name__ == "__main__":
    print(run())
