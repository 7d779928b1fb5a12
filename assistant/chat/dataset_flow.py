"""Chat handlers for the dataset step: prepare the recipe dataset, validate and keep uploaded files.

Thin: the work is training.data.prepare / training.data.validate / training.evaluation.charts, run off the event loop.
A long preparation (a 2 GB RecipeNLG CSV takes minutes) runs as a background task started from the
action callback, reporting progress in a task list a few times a second. Buttons carry only the source
("sample" or an upload's id), the split sizes and the seed; each dataset gets a fresh folder named by
its id and belongs to the learner who made it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from contextlib import aclosing
from pathlib import Path

import chainlit as cl
from pydantic import ValidationError

from assistant.chat.actions import PrepareRequest, action, current_learner, guarded, typed_settings
from assistant.chat.refresh import refreshing
from assistant.chat.token_flow import tokens_action
from assistant.chat.training_flow import training_actions
from assistant.i18n import session_language, text
from assistant.web import uploads
from assistant.web.accounts import Learner
from training.base.errors import TutorError
from training.base.registry import new_id, registry_for
from training.base.settings import get_settings
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
from training.data.validate import validate_file
from training.evaluation.charts import token_histogram
from training.local.config import explain, field_names
from training.models.hub import Done, Failed, Progress, dataset_request, discard_dataset, fetch, valid_repo_id

DEFAULTS = {"train": 150, "validation": 40, "test": 40, "seed": 42}


def parse_options(command: str, language: str = "en") -> PrepareRequest:
    """Sizes and seed from '/prepare train=200 val=50 test=50 seed=7' (missing ones keep defaults); a value
    that is not a whole number in range, or an unknown name, is a TutorError naming it (in `language`)."""
    typed = typed_settings(re.sub(r"^/prepare\b", "", (command or "").strip(), flags=re.I).split(), language)
    names = field_names(PrepareRequest)  # `val` is `validation`
    typed = {names.get(key, key): value for key, value in typed.items()}
    if unknown := sorted(set(typed) - set(DEFAULTS) - {"source"}):
        raise TutorError(text("prepare.unknown_setting", language, name=unknown[0]))
    source = typed.get("source", "sample")
    if source != "sample" and not (isinstance(source, str) and source.startswith("hub:")):
        raise TutorError(text("prepare.bad_source", language))
    if source != "sample":
        valid_repo_id(source.removeprefix("hub:"), language)  # its own sentence, before the sizes are read
    try:
        return PrepareRequest.model_validate({**DEFAULTS, **typed, "source": source}, strict=False)
    except ValidationError as exc:
        raise TutorError(explain(text("prepare.bad_sizes", language), exc, language) + " "
                         + text("prepare.whole_numbers", language)) from None


def sample_size() -> int:
    with open(SAMPLE_CSV, encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1


async def offer_prepare(command: str = "") -> None:
    language = session_language()
    options = parse_options(command, language)
    sizes = f"{options.train} / {options.validation} / {options.test}"
    label = (text("prepare.sample_button", language, count=sample_size()) if options.source == "sample" else
             text("prepare.hub_button", language, name=options.source.removeprefix("hub:")))
    await cl.Message(content=text("prepare.offer", language, sizes=sizes, seed=options.seed),
                     actions=[cl.Action(name="prepare_dataset", payload=options.model_dump(), label=label)]).send()


@action("prepare_dataset", PrepareRequest)
async def on_prepare_dataset(request: PrepareRequest, learner: Learner, _sent):
    # Action callbacks run inside an HTTP request: start the work and return at once.
    # The task is kept in the session (tests await it); Chainlit serialises what a callback returns.
    cl.user_session.set("dataset_job", asyncio.create_task(guarded(run_prepare(request, learner), "Preparing")))


async def run_prepare(request: PrepareRequest, learner: Learner) -> None:
    """Prepare, validate and report, with live progress; every failure becomes one clear message."""
    settings = get_settings()
    registry = registry_for(settings)
    language = session_language()
    if request.source == "sample":
        source, label = "sample", None  # prepare names the bundled sample in the chat's language
    elif request.source.startswith("hub:"):
        from training.local.catalog import allowed_dataset

        repo_id = allowed_dataset(settings, request.source.removeprefix("hub:"), language)
        source, label = await hub_dataset(repo_id, settings, language)
    else:
        upload = await asyncio.to_thread(registry.file, request.source, learner.scope)
        if upload is None:
            raise TutorError(text("prepare.not_your_upload", language))
        source, label = upload.path, upload.name
    await asyncio.to_thread(uploads.check_disk, settings, registry, learner, 0, language)
    dataset_id = new_id("ds")
    out_dir = settings.data_dir / "datasets" / dataset_id
    name = f"{'sample' if source == 'sample' else Path(label).stem}-seed{request.seed}".replace("/", "-")
    seen = {"rows": 0, "fraction": 0.0}
    tasks = cl.TaskList(status=text("prepare.preparing", language))
    reading = cl.Task(title=text("prepare.task.read", language), status=cl.TaskStatus.RUNNING)
    checking = cl.Task(title=text("prepare.task.check", language))
    for task in (reading, checking):
        await tasks.add_task(task)
    await tasks.send()

    def progress(rows: int, done: int, total: int) -> None:  # called from the worker thread
        seen.update(rows=rows, fraction=done / max(total, 1))

    async def show_progress():
        reading.title = text("prepare.task.progress", language, title=text("prepare.task.read", language),
                             rows=seen["rows"], fraction=seen["fraction"])
        await tasks.send()

    try:
        async with refreshing(0.3, show_progress):
            report = await asyncio.to_thread(prepare, source, out_dir, train=request.train,
                                             validation=request.validation, test=request.test, seed=request.seed,
                                             progress=progress, label=label, language=language)
        reading.title, reading.status, checking.status = (text("prepare.task.read_done", language,
                                                               rows=report.rows_read),
                                                          cl.TaskStatus.DONE, cl.TaskStatus.RUNNING)
        await tasks.send()
        validation = await asyncio.to_thread(validate_file, Path(report.files["train"]))
        await asyncio.to_thread(registry.add_dataset, name, report.files, report.to_dict(), learner.id, dataset_id)
    except BaseException:
        tasks.status = text("prepare.failed", language)
        await tasks.send()
        shutil.rmtree(out_dir, ignore_errors=True)  # a fresh folder of this run only: no half dataset stays
        raise
    finally:
        if request.source.startswith("hub:"):  # the download, copied into the dataset (or refused with it)
            await asyncio.to_thread(discard_dataset, Path(source).parent, settings.data_dir)
    checking.status, tasks.status = cl.TaskStatus.DONE, text("prepare.done", language)
    await tasks.send()
    elements = [cl.Plotly(name=text("prepare.chart", language), display="inline", figure=token_histogram(
        validation.example_lengths, validation.context_limit, language=language))]
    elements += [cl.File(name=Path(path).name, path=path, display="inline") for path in report.files.values()]
    actions, note = training_actions(dataset_id, language)
    actions.append(tokens_action(dataset_id))
    await cl.Message(content=text("prepare.ready", language, name=name, report=report.as_markdown(language),
                                  validation=validation.as_markdown(language)) + (f" {note}" if note else ""),
                     elements=elements, actions=actions).send()


async def hub_dataset(repo_id: str, settings, language: str) -> tuple[str, str]:
    """A Hub dataset's rows as chat JSONL in a fresh folder of the data dir, downloaded by a child process with its
    progress shown (rows read); (the file, the dataset's id as its label). A failure is one sentence."""
    request = dataset_request(repo_id, settings.data_dir, language=language)  # checked before anything runs
    message = cl.Message(content=text("prepare.hub_reading", language, name=repo_id, rows=0))
    await message.send()
    try:
        async with aclosing(fetch(request)) as events:
            async for event in events:
                if isinstance(event, Progress):
                    message.content = text("prepare.hub_reading", language, name=repo_id, rows=event.downloaded)
                    await message.update()
                elif isinstance(event, Failed):
                    raise TutorError(event.message(language))
                elif isinstance(event, Done):
                    message.content = text("prepare.hub_done", language, name=repo_id, rows=event.rows,
                                           skipped=event.skipped or 0)
                    await message.update()
                    return event.path, repo_id
        raise TutorError(text("prepare.failed", language))
    except BaseException:
        await asyncio.to_thread(discard_dataset, request.destination, settings.data_dir)
        raise


async def handle_uploads(files: list) -> None:
    """Each file is kept for its learner; a .jsonl is validated (and can then be split), a .csv is prepared."""
    learner = await guarded(current_learner(), "Reading an upload")
    if learner is None:
        return
    settings = get_settings()
    registry = registry_for(settings)
    language = session_language()
    for file in files:
        kept = await guarded(asyncio.to_thread(uploads.keep, registry, settings, learner, getattr(file, "name", ""),
                                               file.path, language), "Keeping an upload")
        if kept is None:
            continue
        if kept.path.endswith(".csv"):
            await guarded(run_prepare(PrepareRequest(source=kept.id, **DEFAULTS), learner), "Preparing")
            continue
        report = await guarded(asyncio.to_thread(validate_file, Path(kept.path)), "Validating an upload")
        if report is None:
            continue
        report.path = kept.name  # the learner's file name, not the storage path
        elements = [cl.Plotly(name=text("prepare.chart", language), display="inline", figure=token_histogram(
            report.example_lengths, report.context_limit, language=language))] if report.example_lengths else []
        actions = [cl.Action(name="prepare_dataset", payload={"source": kept.id, **DEFAULTS},
                             label=text("prepare.split_button", language))] if report.valid_examples else []
        await cl.Message(content=report.as_markdown(language), elements=elements, actions=actions).send()
