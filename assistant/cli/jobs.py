"""`tutor jobs` and `tutor explain`: the runs there are, one run, and what its curve shows.

    tutor jobs list | show RUN | cancel RUN | resume RUN | deployed RUN NAME | export RUN
    tutor explain RUN [--json] [--language uk]   # what the run's curve shows, cited, and the next run
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from assistant.cli.common import LANGUAGE, fail, language_of_option, open_registry
from assistant.cli.training import follow_run, show_run
from assistant.web.accounts import owner_named
from training.base.errors import TutorError
from training.base.registry import RegistryError

jobs_app = typer.Typer(help="List, inspect, cancel and resume fine-tuning jobs.", no_args_is_help=True)


def _find(run_id: str, as_json: bool):
    registry = open_registry()
    run = registry.run(run_id)
    if run is None:
        fail(f"No run '{run_id}'. `tutor jobs list` shows the runs.", as_json)
    return run, registry


@jobs_app.command("list")
def jobs_list(owner: Optional[str] = typer.Option(None, help="Only this account's runs."),
              as_json: bool = typer.Option(False, "--json")):
    """Every run (or one account's), newest first, with its owner and its place in the training queue."""
    from training.jobs import queue

    registry = open_registry()
    try:
        runs, places = registry.runs(owner and owner_named(registry, owner)), queue.positions(registry)
        names = {u.id: u.name for u in registry.users() + registry.users(removed=True)}
    except (TutorError, RegistryError) as exc:
        fail(str(exc), as_json)
    listed = [{**run.model_dump(), "queue_position": places.get(run.id, (None,))[0],
               "owner_name": names.get(run.owner, run.owner)} for run in runs]
    if as_json:
        print(json.dumps(listed, indent=2))
    for row in [] if as_json else listed:
        f1 = row["metrics"].get("val_f1")
        place = f"queue #{row['queue_position']}" if row["queue_position"] else ""
        print(f"{row['id']}  {row['owner_name']:<12} {row['status']:<11} {row['backend']:<6} {place}"
              + (f"val F1 {f1:.3f}" if f1 is not None else ""))


@jobs_app.command("show")
def jobs_show(run_id: str, as_json: bool = typer.Option(False, "--json")):
    """One run: status, error, metrics, paths."""
    show_run(_find(run_id, as_json)[0], as_json)


@jobs_app.command("cancel")
def jobs_cancel(run_id: str, as_json: bool = typer.Option(False, "--json")):
    """Stop a run (it saves a checkpoint first, so it can resume)."""
    from training.backends import local as jobs
    from training.base.settings import get_settings

    run, registry = _find(run_id, as_json)
    try:
        show_run(jobs.cancel(run, registry, settings=get_settings()), as_json)
    except TutorError as exc:
        fail(str(exc), as_json)


@jobs_app.command("resume")
def jobs_resume(run_id: str, as_json: bool = typer.Option(False, "--json"),
                detach: bool = typer.Option(False, help="Start and return.")):
    """Continue an interrupted, cancelled or failed run from its last checkpoint."""
    from training.backends import local as jobs
    from training.base.settings import get_settings

    run, registry = _find(run_id, as_json)
    try:
        run = jobs.resume(run, registry, get_settings())
    except (TutorError, RegistryError) as exc:
        fail(str(exc), as_json)
    show_run(run if detach else follow_run(run, registry, as_json), as_json)


@jobs_app.command("deployed")
def jobs_deployed(run_id: str, deployment: str = typer.Argument(..., help="The deployment's name on the provider."),
                  as_json: bool = typer.Option(False, "--json")):
    """Record the deployment you made of a finished fine-tune (Azure: portal or `az`), so chat, A/B and eval use it."""
    from training.backends.registry import backend_of
    from training.base.settings import get_settings

    run, registry = _find(run_id, as_json)
    try:
        show_run(backend_of(run, get_settings()).deployed(run, registry, deployment), as_json)
    except TutorError as exc:
        fail(str(exc), as_json)


@jobs_app.command("export")
def jobs_export(run_id: str, as_json: bool = typer.Option(False, "--json")):
    """Merge a finished run's adapter into its base model: RUN_DIR/merged, an ordinary model folder."""
    from training.local.lora_model import export_merged

    run, _ = _find(run_id, as_json)
    if run.status != "succeeded" or not run.adapter_path:
        fail(f"Run {run_id} has no finished adapter to export ({run.status}).", as_json)
    target = export_merged(Path(run.adapter_path), Path(run.run_dir) / "merged")
    print(json.dumps({"merged": str(target)}) if as_json else f"Merged model: {target}")



def explain(run_id: str, as_json: bool = typer.Option(False, "--json"),
            language: Optional[str] = LANGUAGE):
    """What a run's own curve and evaluation show, each finding citing the notes, and the settings to try next."""
    from assistant.tutor.explain import explain as explain_run

    language = language_of_option(language)
    run, registry = _find(run_id, as_json)
    try:
        report = explain_run(run, registry, language=language)
    except (OSError, ValueError) as exc:
        fail(f"Could not read run {run_id}'s events: {exc}", as_json)
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    if report["curve"]:
        print(report["curve"])
    if not report["findings"]:
        print(f"{run_id}: no rule found a problem in this run's curve or evaluation.")
    if not report["curve"]:
        print("This data dir has no loss curve of this run (a hosted job's stays with its provider): "
              "only its evaluation was read.")
    for finding in report["findings"]:
        source = finding["source"]
        print(f"- {finding['message']}\n  “{source['quote']}” ({source['path']} › {source['heading']})")
    if report["next_settings"]:
        change = ", ".join(f"{key} {value}" for key, value in report["next_settings"].items()
                           if run.config.get(key) != value)
        print(f"Next run to try: {change}.")

