""""See what is trained": the token view agrees with the trainer's labels, in the CLI and in chat."""

import json

import chainlit as cl
import pytest
from typer.testing import CliRunner

from assistant.chat import token_flow
from assistant.cli.main import app as cli
from tests.chainlit_harness import open_chat
from training.base.errors import TutorError
from training.base.models import load_tokenizer
from training.base.registry import registry_for
from training.base.settings import get_settings
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
from training.local.batches import IGNORE, chat_ids, load_examples
from training.local.token_view import CONTEXT, CUT, TRAINED, example_at, token_view


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return prepare(SAMPLE_CSV, tmp_path_factory.mktemp("sample"), train=12, validation=2, test=2, seed=1).files["train"]


@pytest.fixture(scope="module")
def tokenizer(embedded_model_dir):
    return load_tokenizer(str(embedded_model_dir))


def per_token(view) -> list[str]:
    return [kind for piece in view.pieces for kind in [piece.kind] * piece.tokens]


@pytest.mark.parametrize("max_length", [512, 120])
def test_the_view_marks_exactly_the_tokens_the_trainer_labels(tokenizer, train_file, max_length):
    """At 120 tokens some prompts fill max_length (the trainer skips those) and the other answers are cut."""
    examples, raw = load_examples(train_file, tokenizer, max_length)
    trainer_saw = {json.dumps(messages): example for example, messages in zip(examples, raw)}
    seen = {"skipped": 0, "cut": 0}
    for number in range(1, 13):
        messages, lines = example_at(train_file, number)
        assert lines == 12
        view = token_view(tokenizer, messages, max_length)
        kinds = per_token(view)
        whole = chat_ids(tokenizer, messages)
        assert len(kinds) == len(whole) and kinds[max_length:] == [CUT] * (len(whole) - max_length)
        example = trainer_saw.get(json.dumps(messages))
        if example is None:  # the trainer has nothing to learn here: neither does the view
            seen["skipped"] += 1
            assert view.counts[TRAINED] == 0 and view.note
            continue
        assert [kind == TRAINED for kind in kinds[:len(example["input_ids"])]] == [
            label != IGNORE for label in example["labels"]]
        assert view.counts[TRAINED] + view.counts[CONTEXT] == len(example["input_ids"])
        seen["cut"] += view.counts[CUT] > 0
        # The pieces are the templated text, whole; the answer is trained, the recipe is context only.
        assert "".join(piece.text for piece in view.pieces) == tokenizer.decode(whole)
        if max_length == 512:
            trained_text = "".join(p.text for p in view.pieces if p.kind == TRAINED)
            assert trained_text.startswith(messages[-1]["content"]) and trained_text.endswith("<|im_end|>\n")
            assert messages[1]["content"] in "".join(p.text for p in view.pieces if p.kind == CONTEXT)
    assert len(examples) == (12 if max_length == 512 else 12 - seen["skipped"])
    assert seen == ({"skipped": 0, "cut": 0} if max_length == 512 else {"skipped": 6, "cut": 5})


def test_an_example_with_nothing_to_learn_says_so(tokenizer):
    view = token_view(tokenizer, [{"role": "user", "content": "Title: Tea"}], 512)
    assert view.counts[TRAINED] == 0 and "Nothing in it is trained" in view.note
    answered = [{"role": "user", "content": "Title: Борщ"}, {"role": "assistant", "content": '["буряк"]'}]
    pieces = token_view(tokenizer, answered, 512).pieces
    assert "буряк" in "".join(p.text for p in pieces) and not any("\ufffd" in p.text for p in pieces)


def test_example_at_names_what_is_wrong(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n{"messages": [{"role": 1}]}\n')
    with pytest.raises(TutorError, match="The file has 3 lines; there is no line 4"):
        example_at(path, 4)
    with pytest.raises(TutorError, match="Line 2 is not a chat example"):
        example_at(path, 2)
    with pytest.raises(TutorError, match="Line 3's messages must each have a role"):
        example_at(path, 3)


def test_tutor_tokens_prints_the_view_and_json(train_file, monkeypatch, tmp_path):
    from tests.conftest import MODEL_CACHE

    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(MODEL_CACHE))
    get_settings.cache_clear()
    runner = CliRunner()
    shown = runner.invoke(cli, ["tokens", train_file, "--line", "2"])
    assert shown.exit_code == 0, shown.output
    assert "[[[" in shown.output and "<|im_end|>\n]]" in shown.output and "nothing is cut" in shown.output
    data = json.loads(runner.invoke(cli, ["tokens", train_file, "--line", "2", "--json", "--max-length", "40"]).output)
    assert data["max_length"] == 40 and data["counts"]["cut"] > 0 and data["counts"]["trained"] == 0
    missing = runner.invoke(cli, ["tokens", train_file, "--line", "99"])
    assert missing.exit_code == 1 and "there is no line 99" in missing.output
    get_settings.cache_clear()


async def test_the_chat_button_steps_through_the_learners_own_dataset_only(train_file, monkeypatch, tmp_path):
    from tests.conftest import MODEL_CACHE

    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(MODEL_CACHE))
    get_settings.cache_clear()
    registry = registry_for(get_settings())
    ann, bob = registry.add_user("ann", None).id, registry.add_user("bob", None).id
    mine = registry.add_dataset("mine", {"train": train_file}, {}, owner=ann)
    theirs = registry.add_dataset("theirs", {"train": train_file}, {}, owner=bob)

    chat = open_chat(user="ann", language="uk-UA")
    await token_flow.on_see_tokens(token_flow.tokens_action(mine, 12))
    shown = chat.messages[-1]
    assert shown["output"].startswith("**Приклад 12 навчального файлу `mine`**")
    [element] = [e for e in chat.elements if e.get("forId") == shown["id"]]
    assert element["name"] == "TokenView" and element["props"]["counts"]["trained"] > 0
    assert element["props"]["labels"] == {"trained": "навчаються", "context": "лише контекст",
                                          "cut": "відрізано на max_length"}
    buttons = chat.actions_for(shown["id"])
    assert [b["payload"]["line"] for b in buttons] == [11]  # line 12 is the last: no "next"
    assert buttons[0]["label"] == "◀ Попередній приклад"

    await token_flow.on_see_tokens(cl.Action(name="see_tokens", payload={"dataset_id": theirs, "line": 1}))
    assert chat.messages[-1]["output"] == "⚠️ Цього набору даних немає серед ваших: підготуйте його командою /prepare."
    await token_flow.on_see_tokens(cl.Action(name="see_tokens", payload={"dataset_id": mine, "line": "1"}))
    assert chat.messages[-1]["output"] == "⚠️ Дані цієї кнопки не ті, що надіслав застосунок, тому я нічого не зробив."
    get_settings.cache_clear()
