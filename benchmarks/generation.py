"""Local generation: the project's engine against llama.cpp alone, and the memory-bandwidth bound.

On the embedded SmolLM2-135M with cookbook recipe prompts, greedy: time to first token and decode tokens/s
of assistant.inference.engine's engine (its llama.cpp runtime on the Q8_0 file it writes, with the scheduling,
streaming and text decoding around it) against the baseline a skilled user would pick: a bare llama.cpp
loop (assistant/inference/bare.py) on the shipped Q4_1 GGUF, same prompt ids and threads, in the same run. For
reference: the bare loop on the engine's own Q8_0 file (the engine's overhead), and transformers' `generate` on the fp32
conversion (the engine's runtime for non-GGUF models). The bound is measured memory bandwidth over the bytes of
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

from assistant.inference.bare import BareLlama
from assistant.inference.engine import engine, load_model
from assistant.inference.llama_runtime import model_file
from assistant.tutor.contenders import Contender, ExampleIndex
from training.base.common import usable_cpus
from training.base.models import gguf_file, resolve_base_model
from training.base.settings import load_settings
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
from training.evaluation.held_out import load_cases

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


def bare(llama: BareLlama, prompt_ids: list[int]) -> tuple[float, float, int]:
    """(ttft, total seconds, new tokens) of bare llama.cpp, the baseline (assistant/inference/bare.py)."""
    answer = llama.generate(prompt_ids, MAX_TOKENS)
    return answer.ttft_s, answer.seconds, len(answer.tokens)


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
    gguf = gguf_file(source)
    model, tokenizer = load_model(source, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        train, heldout = cookbook_files(Path(tmp))
        cases = load_cases(heldout, limit=PROMPTS, seed=0)
        tuned_prompts = [[{"role": "system", "content": c.system}, {"role": "user", "content": c.prompt}] for c in cases]
        rag = Contender("rag", "rag", backend=None, index=ExampleIndex(load_settings(_env_file=None, data_dir=Path(tmp)),
                                                                        train, k=3).build())
        rag_prompts = [asyncio.run(rag.messages(c)) for c in cases]

    ids = lambda messages: tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                         return_dict=True)["input_ids"]
    threads = usable_cpus()
    shipped = BareLlama(gguf, threads=threads)
    own = BareLlama(engine.call(model_file, source, None), threads=threads)
    # All on the engine's thread: torch work on a second thread would slow the rest (see assistant/inference/engine.py).
    contenders = {
        "engine": lambda messages: _engine(source, messages),
        "llama.cpp, shipped Q4_1": lambda messages: engine.call(bare, shipped, ids(messages)),
        "llama.cpp, engine's Q8_0": lambda messages: engine.call(bare, own, ids(messages)),
        "model.generate": lambda messages: engine.call(plain_generate, model, tokenizer, messages),
    }
    for generate in contenders.values():  # warm each path
        generate(tuned_prompts[0])
    runs = {name: [] for name in contenders}
    for messages in tuned_prompts:  # interleaved, so a slow stretch of the machine hits all alike
        for name, generate in contenders.items():
            runs[name].append(generate(messages))

    def figures(name):
        ttft = statistics.median(r[0] for r in runs[name])
        decode = sum(r[2] - 1 for r in runs[name]) / sum(r[1] - r[0] for r in runs[name])
        return ttft, decode

    (ttft, speed), (base_ttft, base_speed) = figures("engine"), figures("llama.cpp, shipped Q4_1")
    bandwidth = engine.call(memory_bandwidth)
    weights = engine.call(model_file, source, None).stat().st_size
    bound = bandwidth / weights
    tuned_tokens = statistics.fmean(len(ids(m)) for m in tuned_prompts)
    rag_tokens = statistics.fmean(len(ids(m)) for m in rag_prompts)
    print(f"{len(cases)} prompts, greedy, up to {MAX_TOKENS} tokens, {threads} threads, {gguf.name}")
    for name in contenders:
        name_ttft, name_speed = figures(name)
        print(f"{name + ':':26}TTFT {name_ttft * 1000:.0f} ms (median), decode {name_speed:.1f} tokens/s")
    print(f"bandwidth bound: {bandwidth / 1e9:.1f} GB/s over {weights / 1e6:.0f} MB of Q8_0 GGUF weights = "
          f"{bound:.0f} tokens/s; the engine reaches {speed / bound:.0%} of it")
    print(f"mean prompt tokens: fine-tuned {tuned_tokens:.0f}, RAG baseline (3 examples) {rag_tokens:.0f} "
          f"({rag_tokens / tuned_tokens:.1f}x)")
    generate_speed = figures("model.generate")[1]
    return {"name": "local generation (decode tokens/s; TTFT)", "project": f"{speed:.1f}; {ttft * 1000:.0f} ms",
            "baseline": f"{base_speed:.1f}; {base_ttft * 1000:.0f} ms (bare llama.cpp on the shipped Q4_1 GGUF)",
            "ratio": f"{speed / base_speed:.2f}x tokens/s, {base_ttft / ttft:.2f}x TTFT; {speed / bound:.0%} of the "
                     f"{bound:.0f} tokens/s bandwidth bound; {speed / generate_speed:.1f}x model.generate; "
                     f"RAG prompts {rag_tokens / tuned_tokens:.1f}x longer"}


def _engine(source: str, messages) -> tuple[float, float, int]:
    _, usage = engine.complete(source, messages, max_tokens=MAX_TOKENS)
    return usage.ttft_s, usage.latency_s, usage.completion_tokens


if __name__ == "__main__":
    print(run())
