"""`tutor prepare`, `tutor validate` and `tutor tokens`: the data a run trains on, built, checked and looked into.

    tutor prepare --source sample --train 150 --validation 40 --test 40 --seed 42 [--json]
    tutor validate FILE.jsonl [--model gpt-4o-mini|local] [--price 3.0] [--json]
    tutor tokens FILE.jsonl --line 3 [--json]    # which tokens of an example the trainer trains on
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from assistant.cli.common import fail, open_registry
from assistant.web.accounts import owner_named
from training.base.errors import TutorError
from training.base.registry import LOCAL_USER, RegistryError


def prepare(
    source: str = typer.Option("sample", help="'sample' (bundled recipes), a RecipeNLG CSV, a chat JSONL, or "
                                              "hub:OWNER/NAME[@SPLIT], a Hub dataset with a messages column (or "
                                              "prompt/completion columns)."),
    out: Optional[Path] = typer.Option(None, help="A new output folder (default: DATA_DIR/datasets/<dataset id>)."),
    train: int = typer.Option(150, min=1, help="Training examples."),
    validation: int = typer.Option(40, min=0, help="Validation examples."),
    test: int = typer.Option(40, min=0, help="Held-out test examples."),
    seed: int = typer.Option(42, help="Seed: the same seed and input give the same files."),
    dedupe: bool = typer.Option(True, help="Drop recipes with the same title and ingredients."),
    owner: str = typer.Option(LOCAL_USER, help="The account that owns the dataset (chat shows it to them)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Build the recipe-assistant dataset: train/validation/test chat JSONL in a fresh folder, deduplicated and
    seeded. An earlier dataset's files are never overwritten."""
    from assistant.cli.models import hub_dataset
    from training.base.registry import new_id
    from training.base.settings import get_settings
    from training.data.prepare import prepare as build
    from training.data.recipes import SourceError
    from training.models.hub import discard_dataset

    def progress(rows: int, done: int, total: int) -> None:
        if not as_json:
            typer.echo(f"\r{rows:,} rows read ({done / max(total, 1):.0%})", err=True, nl=False)

    registry = open_registry()
    dataset_id = new_id("ds")
    try:
        folder = out or get_settings().data_dir / "datasets" / dataset_id
        if folder.exists() and any(folder.iterdir()):
            raise TutorError(f"{folder} already holds files; `tutor prepare` never overwrites a dataset. "
                             "Choose a new --out folder, or leave --out out for a fresh one.")
        path, label = (hub_dataset(source, get_settings().data_dir, as_json) if source.startswith("hub:")
                       else (source, None))
        try:
            report = build(path, folder, train=train, validation=validation, test=test, seed=seed, dedupe=dedupe,
                           progress=progress, label=label)
        finally:
            if label:  # a Hub download, now copied into the dataset
                discard_dataset(Path(path).parent, get_settings().data_dir)
        name = f"{Path(label).name if label else Path(source).stem}-seed{seed}"
        # /train in chat offers it
        registry.add_dataset(name, report.files, report.to_dict(), owner_named(registry, owner), dataset_id)
    except (SourceError, ValueError, OSError, TutorError, RegistryError) as exc:
        fail(str(exc), as_json)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo("", err=True)
        print(report.as_markdown())



def validate(
    file: Path = typer.Argument(..., help="A chat-format JSONL file."),
    model: str = typer.Option("gpt-4o-mini",
                              help="Count tokens for this OpenAI model, or 'local' for the local model."),
    price: float = typer.Option(3.0, min=0.0, help="USD per 1M training tokens, for the cost estimate."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Check a chat JSONL file like OpenAI's data-prep checks: format errors, warnings, tokens, cost."""
    from training.data.validate import validate_file

    try:
        report = validate_file(file, model=model, price_per_million=price)
    except (OSError, TutorError) as exc:
        fail(str(exc), as_json)
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.as_markdown())
    if not report.ok:
        raise typer.Exit(1)



def tokens(file: Path = typer.Argument(..., help="A chat JSONL file (a prepared train.jsonl, or your own)."),
           line: int = typer.Option(1, "--line", help="Which example: its line number, from 1."),
           max_length: Optional[int] = typer.Option(None, "--max-length", min=16,
                                                    help="Cut examples here (default: the trainer's default)."),
           as_json: bool = typer.Option(False, "--json")):
    """An example after the chat template, with the tokens the trainer's loss counts marked [[like this]]."""
    import sys

    from training.base.models import load_tokenizer, resolve_base_model
    from training.base.settings import get_settings
    from training.local.config import TrainConfig
    from training.local.token_view import example_at, token_view

    try:
        messages, _ = example_at(file, line)
        view = token_view(load_tokenizer(resolve_base_model(get_settings())), messages,
                          max_length or TrainConfig().max_length)
    except OSError as exc:
        fail(f"Could not read {file}: {exc.strerror or exc}.", as_json)
    except TutorError as exc:
        fail(str(exc), as_json)
    print(json.dumps(view.to_dict(), ensure_ascii=False) if as_json else view.as_text(color=sys.stdout.isatty()))

