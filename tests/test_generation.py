"""The local generation engine: exact greedy decoding, off-loop streaming, fair interleaving of
concurrent requests, and LoRA adapters on a shared base, on both runtimes: llama.cpp for the embedded
GGUF (and its fine-tunes, merged), transformers for any other model."""

import asyncio

import pytest
import torch

from assistant.inference.engine import Usage, engine, load_model
from training.base.errors import TutorError

MESSAGES = [{"role": "user", "content": "Title: Pancakes\n\nIngredients: [\"1 c. flour\", \"2 eggs\"]"}]


def plain_generate(model, tokenizer, max_tokens):
    inputs = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True), inputs["input_ids"].shape[1]


def test_the_embedded_model_runs_on_llama_cpp_token_for_token(embedded_model_dir):
    """The engine's greedy answer is bare llama.cpp's (assistant/inference/bare.py), on the same file."""
    from assistant.inference.bare import BareLlama
    from assistant.inference.llama_runtime import model_file
    from training.base.models import load_tokenizer

    tokenizer = load_tokenizer(str(embedded_model_dir))
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]
    expected = tokenizer.decode(BareLlama(model_file(str(embedded_model_dir), None)).generate(prompt, 20).tokens,
                                skip_special_tokens=True)
    text, usage = engine.complete(str(embedded_model_dir), MESSAGES, max_tokens=20)
    assert text == expected
    assert usage.prompt_tokens == len(prompt) and usage.completion_tokens == 20
    assert 0 < usage.ttft_s <= usage.latency_s


async def test_llama_cpp_decodes_concurrent_requests_together_exactly_as_alone(embedded_model_dir, monkeypatch):
    from assistant.inference import llama_runtime

    source = str(embedded_model_dir)
    prompts = [MESSAGES, [{"role": "user", "content": "hi"}], [{"role": "user", "content": "word " * 60}],
               [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Title: Soup"}]]
    alone = [(await asyncio.to_thread(engine.complete, source, p, max_tokens=24))[0] for p in prompts]
    batch_sizes = []
    step = llama_runtime.LlamaCohort.step

    def counted(cohort, inputs, threads):
        batch_sizes.append(len(inputs))
        return step(cohort, inputs, threads)

    monkeypatch.setattr(llama_runtime.LlamaCohort, "step", counted)
    together = await asyncio.gather(*(_text(source, p, 24) for p in prompts))
    assert together == alone
    assert max(batch_sizes) == len(prompts), f"never decoded together: batch sizes {set(batch_sizes)}"


async def test_a_fine_tune_runs_on_llama_cpp_beside_its_base(embedded_model_dir, embedded_adapter_dir):
    """The adapter merged into the GGUF once: it changes the answer, the base's answers stay as they were,
    and both stream side by side as they would alone."""
    from assistant.inference.llama_runtime import MERGED_FILE

    source, adapter = str(embedded_model_dir), str(embedded_adapter_dir)
    base_before, _ = engine.complete(source, MESSAGES, max_tokens=15)
    tuned, _ = engine.complete(source, MESSAGES, adapter=adapter, max_tokens=15)
    assert (embedded_adapter_dir / MERGED_FILE).is_file()
    assert tuned != base_before, "the adapter was not applied"

    async def text(adapter):
        return "".join([p async for p in engine.stream(source, MESSAGES, adapter=adapter, max_tokens=15)])

    assert await asyncio.gather(text(adapter), text(None)) == [tuned, base_before]


def test_greedy_decoding_on_transformers_matches_plain_generate_and_reports_usage(embedded_torch_dir):
    # The real model: a random tiny one has near-tied logits, which the engine's probe of another thread
    # count (a different summation order) can flip on a busy machine.
    model, tokenizer = load_model(str(embedded_torch_dir), "cpu")
    expected, prompt_tokens = plain_generate(model, tokenizer, 12)
    text, usage = engine.complete(str(embedded_torch_dir), MESSAGES, max_tokens=12)
    assert text == expected
    assert usage.prompt_tokens == prompt_tokens and usage.completion_tokens == 12
    assert 0 < usage.ttft_s <= usage.latency_s


async def test_streaming_keeps_the_loop_free_and_stops_when_closed(tiny_model_dir):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    tick_task = asyncio.create_task(ticker())
    usage = Usage()
    stream = engine.stream(str(tiny_model_dir), MESSAGES, max_tokens=2000, usage=usage)
    received = [await stream.__anext__() for _ in range(3)]
    await stream.aclose()
    await asyncio.sleep(0.2)
    tick_task.cancel()
    assert all(isinstance(piece, str) for piece in received)
    assert ticks >= 5, "the event loop was blocked while the engine generated"
    assert usage.completion_tokens < 2000, "closing the stream did not stop the generation"


async def test_concurrent_requests_interleave_instead_of_queueing_behind_each_other(tiny_model_dir):
    order = []

    async def consume(name):
        async for _ in engine.stream(str(tiny_model_dir), MESSAGES, max_tokens=40):
            order.append(name)

    await asyncio.gather(consume("a"), consume("b"))
    assert order.count("a") > 5 and order.count("b") > 5
    first_b, last_a = order.index("b"), len(order) - 1 - order[::-1].index("a")
    assert first_b < last_a, f"b waited for a to finish: {''.join(order)}"


def test_an_adapter_changes_the_answer_on_the_shared_base_which_stays_intact(tiny_model_dir, tiny_adapter_dir):
    source = str(tiny_model_dir)
    base_before, _ = engine.complete(source, MESSAGES, max_tokens=15)
    model_before = load_model(source, "cpu")[0]
    tuned, _ = engine.complete(source, MESSAGES, adapter=str(tiny_adapter_dir), max_tokens=15)
    base_after, _ = engine.complete(source, MESSAGES, max_tokens=15)
    assert tuned != base_before, "the adapter was not applied"
    assert base_after == base_before, "the adapter leaked into base-model answers"
    assert load_model(source, "cpu")[0] is model_before, "the base model was reloaded"


async def test_an_adapter_and_its_base_stream_side_by_side(tiny_model_dir, tiny_adapter_dir):
    source = str(tiny_model_dir)
    alone_tuned, _ = engine.complete(source, MESSAGES, adapter=str(tiny_adapter_dir), max_tokens=15)
    alone_base, _ = engine.complete(source, MESSAGES, max_tokens=15)

    async def text(adapter):
        return "".join([p async for p in engine.stream(source, MESSAGES, adapter=adapter, max_tokens=15)])

    tuned, base = await asyncio.gather(text(str(tiny_adapter_dir)), text(None))
    assert (tuned, base) == (alone_tuned, alone_base), "switching adapters per step mixed the two answers"


def test_a_missing_adapter_is_a_clear_error_and_the_engine_serves_on(tiny_model_dir, tmp_path):
    with pytest.raises(TutorError, match="missing or incomplete"):
        engine.complete(str(tiny_model_dir), MESSAGES, adapter=str(tmp_path / "gone"), max_tokens=5)
    _, usage = engine.complete(str(tiny_model_dir), MESSAGES, max_tokens=5)
    assert usage.completion_tokens == 5


def test_embeddings_and_loading_run_on_the_engine_thread_the_one_torch_thread(monkeypatch, tiny_model_dir):
    import threading

    import numpy as np

    from assistant.retrieval import embeddings

    seen = []

    def recording_embed(texts):
        seen.append(threading.current_thread().name)
        return np.zeros((len(texts), 3)).tolist()

    monkeypatch.setattr(embeddings, "_embed", recording_embed)
    assert embeddings.encode(["flour"]) == [[0.0, 0.0, 0.0]]
    assert seen == ["generation"], "torch work on another thread slows every later decode step"
    assert engine.call(lambda: threading.current_thread().name) == "generation"
    with pytest.raises(ZeroDivisionError):
        engine.call(lambda: 1 / 0)


def test_the_thread_tuner_falls_back_to_one_thread_when_cores_are_busy_and_returns_when_free():
    from assistant.inference.threads import ThreadTuner

    tuner = ThreadTuner(2)
    step_seconds = {2: 0.12, 1: 0.05}  # another process holds a core: two threads wait at every barrier
    for _ in range(3 * ThreadTuner.WINDOW):
        tuner.record(step_seconds[tuner.pick()])
    assert tuner.best == 1
    step_seconds = {2: 0.03, 1: 0.05}  # the core is free again: the next probe finds out
    for _ in range(2 * ThreadTuner.PROBE_EVERY):
        tuner.record(step_seconds[tuner.pick()])
    assert tuner.best == 2
    assert ThreadTuner(1).options == [1]


async def test_concurrent_requests_decode_in_one_batch_exactly_as_alone(tiny_model_dir):
    """Prompts of different lengths decode together (one forward for all), each token for token as it would
    alone: the padding is masked and every row keeps its own positions."""
    source = str(tiny_model_dir)
    prompts = [MESSAGES, [{"role": "user", "content": "hi"}], [{"role": "user", "content": "word " * 60}],
               [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Title: Soup"}]]
    alone = [(await asyncio.to_thread(engine.complete, source, p, max_tokens=24))[0] for p in prompts]
    batch_sizes = []
    model = load_model(source, "cpu")[0]
    hook = model.register_forward_hook(lambda _m, _a, kwargs, _o: batch_sizes.append(kwargs["input_ids"].shape[0]),
                                       with_kwargs=True)
    try:
        together = await asyncio.gather(*(_text(source, p, 24) for p in prompts))
    finally:
        hook.remove()
    assert together == alone
    assert max(batch_sizes) == len(prompts), f"never decoded together: batch sizes {set(batch_sizes)}"


async def _text(source, messages, max_tokens):
    return "".join([piece async for piece in engine.stream(source, messages, max_tokens=max_tokens)])
