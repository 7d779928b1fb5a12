"""Chat handlers for the dataset step: prepare the recipe dataset, validate uploaded files.

Thin: the work is training.prepare / training.validate / training.charts, run off the event loop.
A long preparation (a 2 GB RecipeNLG CSV takes minutes) runs as a background task started from the
action callback, reporting progress in a task list a few times a second.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import chainlit as cl

from assistant.errors import TutorError
from assistant.refresh import refreshing
from assistant.settings import get_settings
from assistant.training_flow import training_actions
from training.charts import token_histogram
from training.prepare import prepare
from training.recipes import SAMPLE_CSV, SourceError
from training.registry import registry_for
from training.validate import validate_file

log = logging.getLogger(__name__)

DEFAULTS = {"train": 150, "validation": 40, "test": 40, "seed": 42}
_OPTION = re.compile(r"\b(train|validation|val|test|seed)\s*=\s*(\d+)", re.IGNORECASE)
ACCEPTED = (".csv", ".jsonl")


def parse_options(text: str) -> dict[str, int]:
    """Sizes and seed from '/prepare train=200 val=50 test=50 seed=7' (missing ones keep defaults)."""
    options = dict(DEFAULTS)
    for key, value in _OPTION.findall(text or ""):
        options["validation" if key.lower() == "val" else key.lower()] = int(value)
    return options


def sample_size() -> int:
    with open(SAMPLE_CSV, encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1


async def offer_prepare(text: str = "") -> None:
    options = parse_options(text)
    sizes = f"{options['train']} / {options['validation']} / {options['test']}"
    await cl.Message(
        content=("**Prepare the recipe dataset** (the OpenAI cookbook's recipe assistant: extract the generic "
                 f"ingredients of a recipe).\n\nSplits train / validation / test: **{sizes}**, seed **{options['seed']}**. "
                 "Change them with `/prepare train=200 validation=50 test=50 seed=7`.\n\n"
                 "Use the bundled sample, or attach your own file with the paperclip: a RecipeNLG-format `.csv` "
                 "(any size, it is streamed) or a chat `.jsonl` to validate and split."),
        actions=[cl.Action(name="prepare_dataset", payload={"source": "sample", **options},
                           label=f"Use the bundled sample ({sample_size()} recipes)")],
    ).send()


@cl.action_callback("prepare_dataset")
async def on_prepare_dataset(action: cl.Action):
    # Action callbacks run inside an HTTP request: start the work and return at once.
    # The task is kept in the session (tests await it); Chainlit serialises what a callback returns.
    cl.user_session.set("dataset_job", asyncio.create_task(run_prepare(dict(action.payload))))


async def run_prepare(payload: dict) -> None:
    """Prepare, validate and report, with live progress; every failure becomes one clear message."""
    source = payload.get("source", "sample")
    options = {key: int(payload.get(key, value)) for key, value in DEFAULTS.items()}
    stem = "sample" if source == "sample" else Path(source).stem
    out_dir = get_settings().data_dir / "datasets" / f"{stem}-seed{options['seed']}-{time.strftime('%Y%m%d-%H%M%S')}"
    seen = {"rows": 0, "fraction": 0.0}
    tasks = cl.TaskList(status="Preparing...")
    reading = cl.Task(title="Read, clean and deduplicate recipes", status=cl.TaskStatus.RUNNING)
    checking = cl.Task(title="Validate and count tokens")
    for task in (reading, checking):
        await tasks.add_task(task)
    await tasks.send()

    def progress(rows: int, done: int, total: int) -> None:  # called from the worker thread
        seen.update(rows=rows, fraction=done / max(total, 1))

    async def show_progress():
        reading.title = f"Read, clean and deduplicate recipes: {seen['rows']:,} rows ({seen['fraction']:.0%})"
        await tasks.send()

    try:
        async with refreshing(0.3, show_progress):
            report = await asyncio.to_thread(prepare, source, out_dir, train=options["train"],
                                             validation=options["validation"], test=options["test"],
                                             seed=options["seed"], progress=progress)
        reading.title, reading.status, checking.status = (f"Read {report.rows_read:,} rows", cl.TaskStatus.DONE,
                                                          cl.TaskStatus.RUNNING)
        await tasks.send()
        validation = await asyncio.to_thread(validate_file, Path(report.files["train"]))
        await asyncio.to_thread(registry_for(get_settings()).add_dataset, out_dir.name, report.files, report.to_dict())
    except (SourceError, ValueError, OSError, TutorError) as exc:
        await fail(tasks, f"⚠️ {exc}")
        return
    except Exception:
        log.exception("Preparing the dataset failed")
        await fail(tasks, "⚠️ Preparing the dataset failed unexpectedly (details in the server log). Your input file "
                          "was not changed.")
        return
    checking.status, tasks.status = cl.TaskStatus.DONE, "Done"
    await tasks.send()
    elements = [cl.Plotly(name="token lengths", figure=token_histogram(validation.example_lengths,
                                                                       validation.context_limit), display="inline")]
    elements += [cl.File(name=Path(path).name, path=path, display="inline") for path in report.files.values()]
    actions, note = training_actions(report.files["train"],
                                     report.files["validation"] if report.written["validation"] else None)
    await cl.Message(content=f"### Dataset ready\n\n{report.as_markdown()}\n\n### Training file check\n\n"
                             f"{validation.as_markdown()}\n\nDownload the files below, or fine-tune on them now."
                             + (f" {note}" if note else ""), elements=elements, actions=actions).send()


async def fail(tasks: cl.TaskList, message: str) -> None:
    tasks.status = "Failed"
    await tasks.send()
    await cl.Message(content=message).send()


async def handle_uploads(files: list) -> None:
    """A .jsonl is validated (and can then be split); a .csv is prepared directly."""
    for file in files:
        name, path = getattr(file, "name", "file"), getattr(file, "path", None)
        if not path or not name.lower().endswith(ACCEPTED):
            await cl.Message(content=f"⚠️ I can read RecipeNLG `.csv` files and chat `.jsonl` files; `{name}` is neither.").send()
            continue
        if name.lower().endswith(".csv"):
            await run_prepare({"source": path, **DEFAULTS})
            continue
        try:
            report = await asyncio.to_thread(validate_file, Path(path))
        except OSError as exc:
            await cl.Message(content=f"⚠️ Could not read `{name}`: {exc.strerror or exc}.").send()
            continue
        report.path = name  # show the learner's file name, not the upload's storage path
        elements = [cl.Plotly(name="token lengths", figure=token_histogram(report.example_lengths, report.context_limit),
                              display="inline")] if report.example_lengths else []
        actions = [cl.Action(name="prepare_dataset", payload={"source": path, **DEFAULTS},
                             label="Split it into train / validation / test")] if report.valid_examples else []
        await cl.Message(content=report.as_markdown(), elements=elements, actions=actions).send()
