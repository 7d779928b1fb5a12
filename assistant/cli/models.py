"""`tutor models`: the base models this server offers (training/local/catalog.py) with their estimates, and downloads from
the Hugging Face Hub with a progress bar; also the Hub-dataset source of `tutor prepare`. Same library calls as the
chat's `/models` (assistant/chat/models_flow.py).

    tutor models [--train train.jsonl] [--json]      # offered models, each with its estimate on this machine
    tutor models download Qwen/Qwen2.5-0.5B-Instruct  # into the HF cache (HF_HOME), resumable, with progress

Also what this machine can do: `tutor doctor` (assistant/cli/doctor.py) and `tutor train ... --dry-run` (show_estimate).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from assistant.cli.common import fail
from training.base.errors import TutorError

models_app = typer.Typer(help="Base models: what this server offers, and downloads from the Hugging Face Hub.",
                         invoke_without_command=True)


@models_app.callback()
def models(ctx: typer.Context,
           train_file: Optional[Path] = typer.Option(None, "--train", help="Estimate each on this training file."),
           as_json: bool = typer.Option(False, "--json", help="Print the offer as JSON.")):
    """The models a learner may fine-tune here, with parameters, license, gate, whether downloaded, and the
    estimate of the default settings on --train."""
    if ctx.invoked_subcommand is not None:
        return
    from training.base.settings import get_settings
    from training.local import catalog

    online = catalog.hub_reachable()
    if train_file is not None and not train_file.is_file():
        fail(f"{train_file} is not a file: --train takes a training split (chat JSONL).", as_json)
    try:
        offers = catalog.offered(get_settings(), online, str(train_file) if train_file else None)
    except (TutorError, OSError, ValueError) as exc:
        fail(str(exc), as_json)
    if as_json:
        print(json.dumps({"online": online, "models": [
            {**o.model_dump(exclude={"estimate"}), "estimate": None if o.estimate is None else {
                "peak_memory_bytes": o.estimate.memory.total, "fits": o.estimate.fits,
                "seconds": o.estimate.time.seconds if o.estimate.time else None}} for o in offers]}, indent=2))
        return
    if not online:
        print("The Hugging Face Hub can't be reached: only the models already here are offered.")
    for offer in offers:
        size = f"{offer.parameters / 1e9:.2f} B parameters, " if offer.parameters else ""
        where = "downloaded" if offer.downloaded else f"{(offer.download_bytes or 0) / 1e9:.1f} GB to download"
        gate = ", gated (accept its license, set HF_TOKEN)" if offer.gated else ""
        print(f"- {offer.label}: {size}{offer.license or 'license: see its page'}{gate}, {where}")
        if offer.estimate:
            print(f"  {offer.estimate.describe()}".replace("**", ""))


@models_app.command()
def download(model: str = typer.Argument(..., help="A Hugging Face id, like Qwen/Qwen2.5-0.5B-Instruct."),
             as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Download a model into the local Hugging Face cache (a broken transfer resumes), with a progress bar."""
    from training.base.settings import get_settings
    from training.local import catalog
    from training.models.hub import HubRequest

    try:
        model_id = catalog.allowed(get_settings(), model)
        done = fetch_with_bar(HubRequest(kind="model", repo_id=model_id), as_json)
    except TutorError as exc:
        fail(str(exc), as_json)
    print(json.dumps({"model": model_id, "path": done.path}) if as_json else f"{model_id} is downloaded: {done.path}")


def fetch_with_bar(request, as_json: bool):
    """Run a Hub download to its end, drawing its progress on stderr (bytes of a model, rows of a dataset)."""
    from training.models.hub import Progress, download

    bar = None

    def show(event) -> None:
        nonlocal bar
        if as_json or not isinstance(event, Progress) or not event.total:
            return
        if bar is None:
            bar = typer.progressbar(length=event.total, label=f"{request.repo_id}", file=typer.get_text_stream("stderr"))
        bar.update(event.downloaded - bar.pos)

    try:
        return download(request, on_event=show)
    finally:
        if bar is not None:
            bar.render_finish()


def hub_dataset(source: str, data_dir: Path, as_json: bool) -> tuple[Path, str]:
    """`hub:OWNER/NAME[@SPLIT]` downloaded as chat JSONL into a fresh folder of the data dir: (file, its label)."""
    from training.models.hub import dataset_request, discard_dataset

    repo_id, _, split = source.removeprefix("hub:").partition("@")
    request = dataset_request(repo_id, data_dir, split=split or "train")
    try:
        done = fetch_with_bar(request, as_json)
    except BaseException:
        discard_dataset(request.destination, data_dir)
        raise
    return Path(done.path), repo_id


def show_estimate(trainer, config, gpu: str | None, as_json: bool) -> None:
    """The estimate before any work: a local run's memory, time and verdict, a hosted job's cost."""
    from training.local.estimate import GPU_TABLE, estimate

    if trainer.name != "local":
        cost = trainer.estimate(config)
        print(json.dumps({"backend": trainer.name, "estimate": cost}) if as_json else cost or "No estimate.")
        return
    if gpu and gpu not in GPU_TABLE:
        fail(f"Unknown GPU '{gpu}': choose one of {', '.join(GPU_TABLE)}.", as_json)
    found = estimate(config, trainer.settings, gpu=gpu)
    if as_json:
        print(json.dumps({**found.model_dump(exclude={"shape": {"lengths"}}), "fits": found.fits,
                          "peak_memory_bytes": found.memory.total, "text": found.describe()}))
    else:
        print(found.describe())
    if not found.fits:
        raise typer.Exit(1)


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object.")):
    """What this machine offers for training, and a fix for each problem: Python, platform, CPU features, GPU and
    driver or MPS, the precision the trainer picks and why, the generation runtime, models, disk and data dir."""
    from assistant.cli.doctor import render, report
    from training.base.settings import get_settings

    found = report(get_settings())
    print(found.model_dump_json(indent=2) if as_json else render(found))
