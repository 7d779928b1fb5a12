"""Local fine-tuning in chat, through Chainlit's handlers with a recording emitter and a tiny model."""

import asyncio
import re

import chainlit as cl
import pytest

import assistant.chat.app as app
from assistant.chat import dataset_flow, training_flow
from assistant.chat.actions import PrepareRequest, typed_settings
from assistant.web.accounts import LOCAL_LEARNER
from tests.chainlit_harness import open_chat, press_start, user_says
from tests.conftest import make_settings
from training.backends.registry import training_backend
from training.base.errors import TutorError
from training.base.registry import registry_for
from training.base.settings import get_settings
from training.local.config import ConfigError


@pytest.fixture
async def data_dir(monkeypatch, tmp_path, tiny_model_dir):
    import assistant.tutor.service as service
    from tests.conftest import MODEL_CACHE

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(MODEL_CACHE))
    monkeypatch.setenv("TUTOR_BASE_MODEL", str(tiny_model_dir))  # what the chat start warms up
    get_settings.cache_clear()
    yield tmp_path / "data"
    if app._warmup is not None:
        await asyncio.wait([app._warmup])
    app._warmup, service._tutor = None, None
    get_settings.cache_clear()


def test_settings_parse_from_the_command(tmp_path):
    local = training_backend("local", make_settings(tmp_path))
    dataset = {"train": "t.jsonl"}

    def typed(text):
        return local.learner_settings(typed_settings(text.split()[1:]), dataset)[1]

    assert typed("/train epochs=2 lr=1e-3 r=16 batch_size=4 dropout=0.1") == {
        "epochs": 2.0, "learning_rate": 1e-3, "lora_r": 16, "batch_size": 4, "lora_dropout": 0.1}
    # A typed value is checked by the config, and a base model is a name from the server's list, never a path.
    with pytest.raises(TutorError, match="`/models/smol` is not a base model here; choose one of: embedded"):
        typed("/train base=/models/smol modules=q_proj,v_proj grad_accum=4")
    with pytest.raises(ConfigError, match="learning_rate must be a valid number"):
        typed("/train base=embedded lr=fast")
    config, chosen = local.learner_settings({"modules": "q_proj,v_proj", "grad_accum": "4", "base": "embedded"}, dataset)
    assert config.target_modules == ["q_proj", "v_proj"] and config.gradient_accumulation == 4
    assert chosen == {"target_modules": ["q_proj", "v_proj"], "gradient_accumulation": 4, "base": "embedded"}
    with pytest.raises(TutorError, match="I don't know the setting `learnin_rate`"):
        typed("/train learnin_rate=1e-3")
    for path_setting in ("train_file", "validation_file", "base_model", "init_adapter"):
        with pytest.raises(TutorError, match=f"I don't know the setting `{path_setting}`"):
            local.learner_settings({path_setting: "/etc/passwd"}, dataset)
    with pytest.raises(TutorError, match="`epochs` is not a setting"):
        typed_settings(["epochs"])


async def prepared(chat) -> dict:
    await dataset_flow.run_prepare(PrepareRequest(source="sample", train=16, validation=4, test=4, seed=1),
                                   LOCAL_LEARNER)
    ready = chat.messages[-1]
    button, tokens = chat.actions_for(ready["id"])  # one per available training backend, then the token view
    assert button["name"] == "finetune" and button["label"] == "Fine-tune locally"
    assert tokens["name"] == "see_tokens" and tokens["label"] == "See what is trained"
    assert button["payload"] == {"backend": "local", "dataset_id": button["payload"]["dataset_id"]}, \
        "a button carries a backend's name and an id, never a path"
    return button


async def test_prepare_then_fine_tune_shows_progress_a_chart_and_a_summary(data_dir, tiny_model_dir, fake_openai,
                                                                          monkeypatch):
    chat = open_chat()
    await app.on_message(user_says("/train", command="train"))
    assert "No prepared dataset yet" in chat.messages[-1]["output"]

    button = await prepared(chat)
    payload = {**button["payload"], "settings": {"epochs": 2, "batch_size": 4, "learning_rate": 1e-3}}
    await training_flow.on_finetune(cl.Action(name="finetune", payload=payload))
    confirm = await press_start(chat)  # the estimate before any work: memory, time, the verdict
    assert "Peak memory about **" in confirm["output"] and "training time about **" in confirm["output"]
    assert "measured over a few steps just now" in confirm["output"] or "earlier run" in confirm["output"]
    assert "it fits." in confirm["output"]
    await asyncio.wait_for(cl.user_session.get("training_job"), 180)

    progress = next(m for m in chat.messages if m["output"].startswith("**Training `run-"))
    assert "step **8/8**" in progress["output"] and "validation loss" in progress["output"]
    charts = [e for e in chat.elements if e["type"] == "plotly" and e["forId"] == progress["id"]]
    assert len(charts) >= 1 and len({c["id"] for c in charts}) == 1, "the chart should be updated in place"
    summary = chat.messages[-1]["output"]
    assert summary.startswith("### ✅ Fine-tuned") and "validation F1" in summary and "adapter" in summary.lower()
    assert re.search(r"measured peak memory [\d.]+ GB \(estimated [\d.]+ GB\); training \d+ s \(estimated \d+ s\)",
                     summary), summary
    [run] = registry_for(get_settings()).runs()
    assert run.status == "succeeded" and run.metrics["steps"] == 8

    chat_button, compare_button, explain_button = chat.actions_for(chat.messages[-1]["id"])
    assert chat_button["label"] == "Chat with it" and compare_button["label"] == "Compare with RAG baseline"
    assert explain_button == {**explain_button, "label": "Explain my run", "payload": {"run_id": run.id}}
    await training_flow.on_explain_run(cl.Action(name="explain_run", payload=explain_button["payload"]))
    explained = chat.messages[-1]["output"]
    assert explained.startswith(f"**What `{run.id}` shows**") and "The run trained on 16 examples" in explained
    assert "(knowledge/what-you-need.md › How many examples you need)" in explained
    assert "Validation loss went from" in explained and "validation answers' tokens were predicted right" in explained
    await training_flow.on_explain_run(cl.Action(name="explain_run", payload={"run_id": "run-not-yours"}))
    assert chat.messages[-1]["output"] == "⚠️ That run is not among yours."
    while_running = {a["name"] for a in chat.actions if a["forId"] == progress["id"]}
    assert while_running == {"cancel_run", "explain_run"}, "the curve so far can be explained while the run trains"

    # With a capable chat model the findings are told by it, cited, above the rules' own sentences; when it
    # fails, the rules' answer stands alone.
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", fake_openai.api_key)
    monkeypatch.setenv("TUTOR_OPENAI_MODEL", fake_openai.model)
    get_settings.cache_clear()
    cl.user_session.set("backend", "openai")
    await training_flow.on_explain_run(cl.Action(name="explain_run", payload=explain_button["payload"]))
    told = chat.messages[-1]["output"]
    assert told.startswith(f"**What `{run.id}` shows**\n\nTraining loss went from ")
    first = told.split("\n[1] ")[1].split("\n")[0]  # the first finding, as the rules said it
    assert f"\n\nIn short: {first}" in told and "The run trained on 16 examples" in told
    fake_openai.fail_next = [400]
    await training_flow.on_explain_run(cl.Action(name="explain_run", payload=explain_button["payload"]))
    assert chat.messages[-1]["output"] == explained
    cl.user_session.set("backend", None)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "TUTOR_OPENAI_MODEL"):
        monkeypatch.delenv(name)
    get_settings.cache_clear()

    # "Start that run": one click, the settings worked out again by the server from its record of the run.
    [start] = chat.actions_for(chat.messages[-1]["id"])
    assert start["name"] == "start_recommended" and start["payload"] == {"run_id": run.id}
    await training_flow.on_start_recommended(cl.Action(name="start_recommended", payload=start["payload"],
                                                       id=start["id"]))
    await asyncio.wait_for(cl.user_session.get("training_job"), 180)
    [second] = [r for r in registry_for(get_settings()).runs() if r.id != run.id]
    changed = {k for k in run.config if second.config.get(k) != run.config[k]} - {"train_file",
                                                                                         "validation_file"}
    assert changed == {"learning_rate"}
    assert second.config["learning_rate"] == pytest.approx(3 * run.config["learning_rate"])
    assert second.status == "succeeded"
    await training_flow.on_chat_with_model(cl.Action(name="chat_with_model", payload=chat_button["payload"]))
    await app.on_message(user_says('Title: Toast\n\nIngredients: ["2 slices bread"]\n\nGeneric ingredients: '))
    reply = chat.messages[-1]
    assert reply["name"] == f"fine-tuned {run.id}" and chat.tokens[reply["id"]], "the model's answer was not streamed"
    await app.on_message(user_says("Title: Soup\n\nIngredients: " + "water " * 20_000))
    assert "120,025 characters" in chat.messages[-1]["output"], "a 100 KB message gets a clear reply, not a cut"
    await app.on_message(user_says("/tutor"))
    assert cl.user_session.get("chat_model") is None and "Back to the tutor" in chat.messages[-1]["output"]

    await app.on_message(user_says("/train epochs=1", command="train"))
    [choice] = chat.actions_for(chat.messages[-1]["id"])
    assert choice["payload"]["settings"] == {"epochs": 1} and "16 examples" in choice["label"]


async def test_cancel_from_chat(data_dir, tiny_model_dir):
    chat = open_chat()
    button = await prepared(chat)
    payload = {**button["payload"], "settings": {"epochs": 200, "batch_size": 2}}
    await training_flow.on_finetune(cl.Action(name="finetune", payload=payload))
    await press_start(chat)
    watching = cl.user_session.get("training_job")
    for _ in range(3000):  # a generous bound: the first step comes after the trainer's start-up
        if any("step **" in m["output"] for m in chat.messages):
            break
        await asyncio.sleep(0.1)
    [run] = registry_for(get_settings()).runs()
    await training_flow.on_cancel_run(cl.Action(name="cancel_run", payload={"run_id": run.id}))
    await asyncio.wait_for(watching, 120)
    assert "was cancelled" in chat.messages[-1]["output"]
    assert registry_for(get_settings()).run(run.id).status == "cancelled"


async def test_bad_settings_are_explained(data_dir, tiny_model_dir):
    chat = open_chat()
    button = await prepared(chat)
    await training_flow.on_finetune(cl.Action(name="finetune", payload={
        **button["payload"], "settings": {"learning_rate": 0, "lora_r": 0}}))
    shown = chat.messages[-1]["output"]
    assert "learning_rate must be greater than 0" in shown and "lora_r must be greater than or equal to 1" in shown


async def test_a_chat_opened_later_follows_a_job_still_running(data_dir, tiny_model_dir):
    """The app restarted while a job trained: the next chat picks the job up and follows it to the end."""
    from training.backends import local as jobs
    from training.local.config import TrainConfig

    chat = open_chat()
    button = await prepared(chat)
    [dataset] = registry_for(get_settings()).datasets()
    assert dataset.id == button["payload"]["dataset_id"]
    config = TrainConfig(train_file=dataset.files["train"], validation_file=dataset.files["validation"],
                         base_model=str(tiny_model_dir), epochs=3, batch_size=2, eval_generate_limit=0)
    run = jobs.start_local(config, data_dir, registry_for(get_settings()))  # as if started by the previous app
    later = open_chat()
    await app.on_chat_start()
    [watching] = cl.user_session.get("watching")
    await asyncio.wait_for(watching, 180)
    assert later.messages[-1]["output"].startswith("### ✅ Fine-tuned") and run.id in later.messages[-1]["output"]
    assert any("picked up after a restart" in m["output"] for m in later.messages)
