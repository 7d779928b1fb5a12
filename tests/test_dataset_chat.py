"""The dataset step in chat, through Chainlit's handlers with a recording emitter."""

import json

import chainlit as cl
import pytest

import assistant.chat.app as app
from assistant.chat import dataset_flow
from tests.chainlit_harness import open_chat, user_says
from training.base.errors import TutorError
from training.base.settings import get_settings


@pytest.fixture
def data_dir(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_options_parse_from_the_command():
    assert dataset_flow.parse_options("/prepare train=200 val=50 test=5 seed=7").model_dump() == {
        "source": "sample", "train": 200, "validation": 50, "test": 5, "seed": 7}
    assert dataset_flow.parse_options("/prepare").model_dump() == {"source": "sample", **dataset_flow.DEFAULTS}
    with pytest.raises(TutorError, match="train must be greater than or equal to 1"):
        dataset_flow.parse_options("/prepare train=0")
    with pytest.raises(TutorError, match="seed must be a valid integer"):
        dataset_flow.parse_options("/prepare seed=lucky")
    with pytest.raises(TutorError, match="owner/name"):  # the id's own sentence, not the sizes'
        dataset_flow.parse_options("/prepare source=hub:a/b/c")


async def test_prepare_from_the_sample_reports_progress_files_and_a_chart(data_dir):
    chat = open_chat()
    await app.on_message(user_says("/prepare train=30 validation=10 test=10 seed=3", command="prepare"))
    offer = chat.messages[-1]
    [button] = chat.actions_for(offer["id"])
    assert button["payload"] == {"source": "sample", "train": 30, "validation": 10, "test": 10, "seed": 3}
    assert "239 recipes" in button["label"]

    assert await dataset_flow.on_prepare_dataset(cl.Action(name=button["name"], payload=button["payload"])) is None
    await cl.user_session.get("dataset_job")
    done = chat.messages[-1]
    assert done["output"].startswith("### Dataset ready")
    assert "| train | 30 |" in done["output"] and "No format errors found." in done["output"]
    assert "OpenAI's default for 30 examples" in done["output"]
    kinds = sorted(e["type"] for e in chat.elements if e.get("forId") == done["id"])
    assert kinds == ["file", "file", "file", "plotly"]
    [folder] = (data_dir / "datasets").iterdir()
    assert folder.name.startswith("ds-") and "`sample-seed3`" in done["output"]
    assert len((folder / "validation.jsonl").read_text().splitlines()) == 10
    tasklists = [e for e in chat.elements if e["type"] == "tasklist"]
    assert tasklists, "no progress was shown"


def upload(tmp_path, name: str, body: bytes) -> cl.File:
    path = tmp_path / name
    path.write_bytes(body)
    return cl.File(name=name, path=str(path))


async def test_an_uploaded_jsonl_is_validated_with_line_numbers(data_dir, tmp_path):
    chat = open_chat()
    good = {"messages": [{"role": "user", "content": "Title: Tea"}, {"role": "assistant", "content": "[\"tea\"]"}]}
    bad = {"messages": [{"role": "chef", "content": "hi"}]}
    body = "\n".join(json.dumps(x) for x in (good, good, bad)).encode() + b"\n"
    message = user_says("")
    message.elements = [upload(tmp_path, "mine.jsonl", body)]
    await app.on_message(message)
    report = chat.messages[-1]
    assert "**mine.jsonl**: 3 examples, 2 well-formed" in report["output"]
    assert "| unrecognized_role | 1 | 3 |" in report["output"]
    assert chat.actions_for(report["id"])[0]["label"].startswith("Split it")


async def test_an_uploaded_csv_with_bad_rows_is_prepared_and_the_skips_explained(data_dir, tmp_path):
    chat = open_chat()
    rows = "".join(f'{i},Dish {i},"[""{i} c. rice""]","[""Cook.""]",x,y,"[""rice""]"\n' for i in range(40))
    body = (",title,ingredients,directions,link,source,NER\n" + rows + '40,Broken,"[oops","[]",x,y,"[]"\n').encode()
    message = user_says("")
    message.elements = [upload(tmp_path, "recipes.csv", body)]
    await app.on_message(message)
    done = chat.messages[-1]["output"]
    assert "1 skipped as malformed" in done and "line 42: ingredients is not a valid JSON list" in done


@pytest.mark.parametrize("name, body, expected", [
    ("empty.csv", b"", "empty.csv is empty"),
    ("wrong.csv", b"name,items\nA,B\n", "missing column(s) title, ingredients, NER"),
    ("photo.png", b"\x89PNG", "`photo.png` is neither"),
])
async def test_unusable_uploads_get_a_clear_message(data_dir, tmp_path, name, body, expected):
    chat = open_chat()
    message = user_says("")
    message.elements = [upload(tmp_path, name, body)]
    await app.on_message(message)
    assert expected in chat.messages[-1]["output"] and "Traceback" not in chat.messages[-1]["output"]
