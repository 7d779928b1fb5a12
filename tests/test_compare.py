"""The A/B chat and held-out evaluation: the RAG baseline's retrieved examples, both sides streaming
through the handlers, votes, bad messages, `tutor eval`, and an OpenAI fine-tune on the fake server."""

import json

import chainlit as cl
import pytest

import assistant.chat.app as app
from assistant.chat import ab_flow, training_flow
from assistant.tutor.contenders import ExampleIndex, pair_for_run
from assistant.web.accounts import LOCAL_LEARNER
from tests.chainlit_harness import open_chat, user_says
from tests.conftest import make_settings
from tests.helpers import finished_run, run_tutor
from training.base.registry import registry_for
from training.data.recipes import SAMPLE_CSV
from training.evaluation.held_out import Case, chat_triples, load_cases


@pytest.fixture
def ab_files(tmp_path, tiny_model_dir, tiny_adapter_dir):
    """The sample's files by split, with run-ab finished on them (a local adapter) in the registry."""
    return finished_run(tmp_path / "data", str(tiny_model_dir), str(tiny_adapter_dir))


async def test_the_rag_prompt_holds_the_k_most_similar_training_examples(ab_files, tmp_path):
    settings = make_settings(tmp_path / "data")
    tuned, rag = pair_for_run(registry_for(settings), settings, "run-ab", "rag", k=3)
    _, user, answer = list(chat_triples(ab_files["train"]))[7]
    messages = await rag.messages(Case(prompt=user, gold=[]))
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[1:3] == [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    assert messages[-1]["content"] == user
    assert [m["role"] for m in await tuned.messages(Case(prompt=user, gold=[]))] == ["system", "user"]
    # The index is built once per file content: a second build adds nothing, a changed file gets its own.
    again = ExampleIndex(settings, ab_files["train"]).build()
    assert again.name == rag.index.name
    _, base = pair_for_run(registry_for(settings), settings, "run-ab", "base")
    assert base.index is None and [m["role"] for m in await base.messages(Case(prompt=user, gold=[]))] == ["system", "user"]


async def test_ab_chat_streams_both_sides_records_a_vote_and_explains_bad_messages(ab_files, chat_env):
    chat = open_chat()
    await app.on_message(user_says("/compare", command="compare"))
    [pick] = chat.actions_for(chat.messages[-1]["id"])
    await ab_flow.on_pick(cl.Action(name="ab_pick", payload=pick["payload"]))
    rag_button, base_button = chat.actions_for(chat.messages[-1]["id"])
    assert rag_button["payload"]["baseline"] == "rag" and base_button["payload"]["baseline"] == "base"
    await ab_flow.on_start(cl.Action(name="ab_start", payload=rag_button["payload"]))
    intro = chat.messages[-1]
    assert "**A**: fine-tuned run-ab" in intro["output"] and "RAG baseline" in intro["output"]
    assert "6 held-out recipes from `test.jsonl`" in intro["output"]

    case = load_cases(ab_files["test"])[0]
    await app.on_message(user_says(case.prompt))
    compare = [e for e in chat.elements if e["type"] == "custom" and e["name"] == "ABCompare"]
    final = compare[-1]["props"]["sides"]
    assert final["a"]["done"] and final["b"]["done"] and not final["a"]["error"] and not final["b"]["error"]
    assert final["a"]["text"] and final["b"]["text"]
    assert final["b"]["stats"]["prompt_tokens"] > final["a"]["stats"]["prompt_tokens"] > 0  # three examples' worth
    assert 0 <= final["a"]["stats"]["f1"] <= 1 and "f1" in final["b"]["stats"], "a held-out recipe gets its F1"
    assert len({e["id"] for e in compare}) == 1, "the comparison should be updated in place"

    votes = chat.actions_for(chat.messages[-1]["id"])
    assert [v["label"] for v in votes] == ["A is better", "B is better", "Tie"]
    await ab_flow.on_vote(cl.Action(name="ab_vote", payload=votes[1]["payload"]))
    assert "B better **1**" in chat.messages[-1]["output"]

    for text, expected in (("   ", "Send a recipe"), ("What is LoRA?", "compares the models on the recipe task"),
                           ("ingredients " * 10_000, "characters")):
        await app.on_message(user_says(text))
        assert expected in chat.messages[-1]["output"]

    await ab_flow.on_heldout(cl.Action(name="ab_heldout", payload={}))
    assert [e for e in chat.elements if e["name"] == "ABCompare"][-1]["props"]["sides"]["a"]["stats"]["f1"] is not None


async def test_evaluation_from_chat_shows_a_table_a_chart_and_results(ab_files, chat_env):
    chat = open_chat()
    await ab_flow.start_compare("run-ab", "base", LOCAL_LEARNER)
    await ab_flow.on_eval(cl.Action(name="ab_eval", payload={}))
    await ab_flow.on_eval(cl.Action(name="ab_eval", payload={}))  # pressed again while it runs
    await cl.user_session.get("eval_job")
    assert sum("already running" in m["output"] for m in chat.messages) == 1
    message = next(m for m in chat.messages if m["output"].startswith("### Held-out evaluation"))
    report = message["output"]
    assert report.startswith("### Held-out evaluation (6 recipes)") and "| F1 |" in report and "p95 latency" in report
    names = {e["name"] for e in chat.elements if e.get("forId") == message["id"]}
    assert {"evaluation", "results.jsonl", "summary.json"} <= names

    [explain] = chat.actions_for(message["id"])  # the run's findings now include this evaluation
    assert explain["name"] == "explain_run" and explain["payload"] == {"run_id": "run-ab"}
    await training_flow.on_explain_run(cl.Action(name="explain_run", payload=explain["payload"]))
    assert "On 6 held-out recipes the fine-tune" in chat.messages[-1]["output"]


def test_tutor_eval_json_has_every_key_per_system(ab_files, tmp_path):
    result = run_tutor("eval", "--model", "run-ab", "--data", ab_files["test"], "--limit", "3", "--json",
                       tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    keys = {"system", "label", "n", "precision", "recall", "f1", "exact_match", "valid_json_rate",
            "mean_prompt_tokens", "mean_completion_tokens", "p50_latency_s", "p95_latency_s", "stops"}
    assert [s["system"] for s in payload["systems"]] == ["fine-tuned", "rag"]
    assert all(set(s) == keys and s["n"] == 3 for s in payload["systems"])
    assert all(sum(s["stops"].values()) == 3 and set(s["stops"]) <= {"eos", "max_tokens", "repetition"}
               for s in payload["systems"]), "how each answer ended is in the results"
    rag, tuned = payload["systems"][1], payload["systems"][0]
    assert rag["mean_prompt_tokens"] > 2 * tuned["mean_prompt_tokens"]
    lines = (tmp_path / payload["results"] / "results.jsonl").read_text().splitlines()
    assert len(lines) == 6 and {"answer", "gold", "f1", "latency_s"} <= set(json.loads(lines[0]))


def test_tutor_eval_reads_a_recipenlg_csv_and_explains_unknown_runs(ab_files, tmp_path):
    result = run_tutor("eval", "--model", "run-ab", "--data", str(SAMPLE_CSV), "--baseline", "base", "--limit", "2",
                       tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| F1 |" in result.stdout and "base" in result.stdout
    missing = run_tutor("eval", "--model", "run-nope", "--data", str(SAMPLE_CSV), "--json", tmp_path=tmp_path)
    assert missing.returncode == 1 and "No run or model named 'run-nope'" in json.loads(missing.stdout)["error"]


async def test_an_openai_fine_tune_against_its_rag_baseline(tmp_path, fake_openai):
    settings = make_settings(tmp_path / "data", openai_api_key=fake_openai.api_key,
                             openai_base_url=fake_openai.base_url)
    files = finished_run(tmp_path / "data", fake_openai.model, fake_openai.model, kind="openai")
    tuned, rag = pair_for_run(registry_for(settings), settings, "run-ab", "rag")
    case = load_cases(files["test"])[0]
    text, usage = await rag.answer(case)
    sent = fake_openai.requests[-1]
    assert sent["model"] == fake_openai.model and len(sent["messages"]) == 8  # system + 3 shots + the recipe
    assert text == sent["messages"][2]["content"], "the fake few-shot learner copies the nearest example"
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0 and usage["ttft_s"] is not None
    text, _ = await tuned.answer(case)
    assert text == '["flour"]' and len(fake_openai.requests[-1]["messages"]) == 2
