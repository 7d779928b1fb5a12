"""`tutor`: the command line of Fine-Tuning Tutor, on the same code as the chat.

    tutor ask "What is LoRA?"            # streamed answer, then its sources
    tutor ask "What is LoRA?" --json     # {"answer": str, "sources": [{"path", "heading", "text"}]}
    tutor chat [--json]                  # a conversation: follow-ups resolved (assistant/cli/chat.py)
    tutor quiz [--topic lora] [--lang uk] [--questions 3] [--json]   # a check of understanding (cli_quiz.py)
    tutor check [--language uk]          # the "Should I fine-tune?" check, in the terminal
    tutor prepare --source sample --train 150 --validation 40 --test 40 --seed 42 [--json]
    tutor validate FILE.jsonl [--model gpt-4o-mini|local] [--price 3.0] [--json]
    tutor train --backend local --train train.jsonl --val validation.jsonl [--epochs 2 --lr 1e-3 --r 8 ...]
    tutor train --backend openai --train train.jsonl --val validation.jsonl [--model ft:... --suffix recipes --auto]
    tutor serve [--port 8100]            # this project's OpenAI-compatible fine-tuning + chat server
    tutor users add NAME [--admin] | list [--usage] | remove NAME | transfer ID NAME   # (assistant/cli/users.py)
    tutor jobs list | show RUN | cancel RUN | resume RUN | export RUN
    tutor explain RUN [--json] [--language uk]   # what the run's curve shows, cited, and the next run
    tutor tokens FILE.jsonl --line 3 [--json]    # which tokens of an example the trainer trains on
    tutor eval --model RUN --data test.jsonl [--baseline rag|base] [--k 3] [--limit 20] [--json]
    tutor index                          # (re)index knowledge/ incrementally
    tutor settings                       # the effective configuration, keys masked
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from assistant.cli.chat import chat
from assistant.cli.common import fail, open_registry
from assistant.cli.models import doctor, models_app, show_estimate
from assistant.cli.quiz import quiz_command
from assistant.cli.users import users_app
from assistant.web.accounts import owner_named
from training.base.errors import TutorError
from training.base.registry import LOCAL_USER, RegistryError
from training.local.config import TrainConfig

# Tracebacks never show local variables: one of them could hold an API key.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Fine-Tuning Tutor: learn LLM fine-tuning by doing it.")


@app.callback()
def configure() -> None:
    """Every command: offline and sized to this machine before any model library loads."""
    from training.base.common import configure_process

    configure_process()


app.command()(chat)
app.command("quiz")(quiz_command)


@app.command()
def ask(
    question: str = typer.Argument(..., help="Your question about fine-tuning."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: answer and sources."),
    backend: Optional[str] = typer.Option(None, help="Chat backend: local or openai (default: from settings)."),
    temperature: Optional[float] = typer.Option(None, min=0.0, max=2.0, help="Sampling temperature."),
):
    """Ask the tutor a question; the answer is grounded in knowledge/ and lists its sources."""
    from assistant.tutor.answers import format_sources
    from assistant.tutor.service import get_tutor

    async def run() -> dict:
        tutor = get_tutor()
        reply = await tutor.ask(question, backend=backend, temperature=temperature)
        async for piece in reply:
            if not as_json:
                print(piece, end="", flush=True)
        if not as_json:
            print(format_sources(reply.sources, reply.language).replace("**", ""))
        return reply.to_dict()

    try:
        result = asyncio.run(run())
    except TutorError as exc:
        fail(str(exc), as_json)
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))


@app.command()
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
        registry.add_dataset(name, report.files, report.to_dict(), owner_named(registry, owner), dataset_id)  # /train in chat offers it
    except (SourceError, ValueError, OSError, TutorError, RegistryError) as exc:
        fail(str(exc), as_json)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo("", err=True)
        print(report.as_markdown())


@app.command()
def validate(
    file: Path = typer.Argument(..., help="A chat-format JSONL file."),
    model: str = typer.Option("gpt-4o-mini", help="Count tokens for this OpenAI model, or 'local' for the local model."),
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


def _follow(run: dict, registry, as_json: bool) -> dict:
    """Print a run's progress until it ends; Ctrl-C leaves it running."""
    from training.backends import local as jobs
    from training.base.settings import get_settings

    settings = get_settings()

    async def follow() -> None:
        async for event in jobs.follow(run, registry, settings=settings):
            if not as_json:
                _print_event(event)

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        typer.echo(f"\nStill training in the background: `tutor jobs show {run['id']}`, `tutor jobs cancel {run['id']}`.",
                   err=True)
        raise typer.Exit(130)
    return registry.run(run["id"])


def _print_event(event) -> None:
    """One typed event (training/jobs/events.py) on stderr, by its type."""
    from training.jobs.events import Cancelled, Checkpoint, Error, Eval, Start, Status, Step

    if isinstance(event, Step):
        typer.echo("\r" + "  ".join(event.progress()) + "   ", nl=False, err=True)
    elif isinstance(event, Eval):
        accuracy = f", token accuracy {event.val_token_accuracy:.1%}" if event.val_token_accuracy is not None else ""
        typer.echo(f"\n  validation loss {event.val_loss:.4f}{accuracy}", err=True)
    elif isinstance(event, Status) and event.position:
        typer.echo(f"\nqueued: position {event.position} of {event.queue_length}", err=True)
    elif isinstance(event, Status):
        typer.echo(f"\n{event.level if event.message else 'status'}: {event.message or event.status}", err=True)
    elif isinstance(event, Start) and event.resumed:
        typer.echo(f"\nresumed from step {event.step}", err=True)
    elif isinstance(event, Checkpoint):
        typer.echo(f"\ncheckpoint: {event.label}", err=True)
    elif isinstance(event, (Error, Cancelled)):
        typer.echo(f"\n{event.type}: {getattr(event, 'message', '') or ''}".rstrip(": "), err=True)


def _show(run: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(run, indent=2))
        return
    print(f"{run['id']}  {run['status']}  {run['backend']}  {run['run_dir']}")
    if run.get("error"):
        print(f"  error: {run['error']}")
    for key, value in (run.get("metrics") or {}).items():
        print(f"  {key}: {value}")


def local_default(field: str) -> str:
    return f" (local default: {TrainConfig.model_fields[field].default})"


@app.command()
def train(
    train_file: Path = typer.Option(..., "--train", help="Training chat JSONL."),
    val_file: Optional[Path] = typer.Option(None, "--val", help="Validation chat JSONL."),
    backend: str = typer.Option("local", help="Where to train: local (LoRA here), openai (OpenAI or OPENAI_BASE_URL), "
                                              "azure (Azure OpenAI), or another registered training backend."),
    base_model: str = typer.Option("embedded", help="local: 'embedded', an HF id in the local cache, or a folder."),
    model: Optional[str] = typer.Option(None, help="hosted: base model (default: gpt-4o-mini-2024-07-18 on OpenAI, "
                                                   "gpt-4.1-mini-2025-04-14 on Azure), or a fine-tune to continue."),
    suffix: Optional[str] = typer.Option(None, help="hosted: added to the fine-tuned model's name."),
    lr_multiplier: Optional[float] = typer.Option(None, help="hosted: learning-rate multiplier (default auto)."),
    auto: bool = typer.Option(False, help="hosted: let the provider pick epochs and batch size."),
    # Unset options take the backend's defaults (local: TrainConfig's, measured for the embedded model).
    epochs: Optional[float] = typer.Option(None, help=f"Passes over the data{local_default('epochs')}."),
    learning_rate: Optional[float] = typer.Option(None, "--lr", help=f"Step size{local_default('learning_rate')}."),
    lora_r: Optional[int] = typer.Option(None, "--r", help=f"LoRA rank{local_default('lora_r')}."),
    lora_alpha: Optional[int] = typer.Option(None, "--alpha", help=f"LoRA scale{local_default('lora_alpha')}."),
    lora_dropout: Optional[float] = typer.Option(None, "--dropout", help=f"LoRA dropout{local_default('lora_dropout')}."),
    target_modules: Optional[str] = typer.Option(None, help="'all-linear' or a comma list like q_proj,v_proj"
                                                            f"{local_default('target_modules')}."),
    max_length: Optional[int] = typer.Option(None, help=f"Cut examples here{local_default('max_length')}."),
    batch_size: Optional[int] = typer.Option(None, help=f"Examples per step{local_default('batch_size')}."),
    gradient_accumulation: Optional[int] = typer.Option(None, "--grad-accum",
                                                        help=f"Steps per update{local_default('gradient_accumulation')}."),
    seed: Optional[int] = typer.Option(None, help=f"Data order and initial adapter{local_default('seed')}."),
    save_every: Optional[int] = typer.Option(None, help=f"Steps between checkpoints{local_default('save_every')}."),
    eval_generate: Optional[int] = typer.Option(None, help="Validation examples the model answers for the F1 score"
                                                           f"{local_default('eval_generate_limit')}."),
    method: Optional[str] = typer.Option(None, help="local: lora, or qlora (4-bit base, NVIDIA GPUs only)."),
    gradient_checkpointing: Optional[bool] = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                          help="local: recompute activations, for less memory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only estimate: peak memory, time and whether it fits "
                                                          "(hosted backends: the cost). Nothing starts."),
    gpu: Optional[str] = typer.Option(None, help="With --dry-run: estimate for a GPU that is not here (one of "
                                                 "T4, L4, A10G, RTX 4090, A100-40GB, A100-80GB, L40S, H100, H200)."),
    owner: str = typer.Option(LOCAL_USER, help="The account that owns the run (chat shows it to them)."),
    detach: bool = typer.Option(False, help="Start and return; follow later with `tutor jobs show`."),
    as_json: bool = typer.Option(False, "--json", help="Print the final run record as JSON."),
):
    """Fine-tune (local LoRA in a background process, or a job on a provider), following it until it ends.
    Local runs join the training queue: at most TUTOR_MAX_TRAINING_JOBS train at once."""
    from training.backends.registry import training_backend
    from training.base.settings import get_settings
    from training.local.config import ConfigError

    registry = open_registry()
    values = {"train_file": str(train_file), "validation_file": str(val_file) if val_file else None,
              "base_model": base_model, "model": model, "suffix": suffix, "lr_multiplier": lr_multiplier,
              "auto": auto, "epochs": epochs, "learning_rate": learning_rate, "lora_r": lora_r,
              "lora_alpha": lora_alpha, "lora_dropout": lora_dropout, "target_modules": target_modules,
              "max_length": max_length, "batch_size": batch_size, "gradient_accumulation": gradient_accumulation,
              "seed": seed, "save_every": save_every, "eval_generate_limit": eval_generate, "method": method,
              "gradient_checkpointing": gradient_checkpointing}
    try:
        trainer = training_backend(backend, get_settings())
        if dry_run:
            show_estimate(trainer, trainer.check(trainer.config(values)), gpu, as_json)
            return
        run = trainer.start(trainer.config(values), registry, owner_named(registry, owner))
    except (ConfigError, TutorError, RegistryError, OSError) as exc:
        fail(str(exc), as_json)
    _finish_train(run, registry, detach, as_json)


def _finish_train(run: dict, registry, detach: bool, as_json: bool) -> None:
    if not detach:
        run = _follow(run, registry, as_json)
        typer.echo("", err=True)
    _show(run, as_json)
    if run["status"] not in ("succeeded", "running", "queued"):
        raise typer.Exit(1)


jobs_app = typer.Typer(help="List, inspect, cancel and resume fine-tuning jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")
app.command()(doctor)


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
        names = {u["id"]: u["name"] for u in registry.users() + registry.users(removed=True)}
    except (TutorError, RegistryError) as exc:
        fail(str(exc), as_json)
    for run in runs:
        run["queue_position"] = places.get(run["id"], (None,))[0]
        run["owner_name"] = names.get(run["owner"], run["owner"])
    if as_json:
        print(json.dumps(runs, indent=2))
    for run in [] if as_json else runs:
        f1 = (run.get("metrics") or {}).get("val_f1")
        place = f"queue #{run['queue_position']}" if run["queue_position"] else ""
        print(f"{run['id']}  {run['owner_name']:<12} {run['status']:<11} {run['backend']:<6} {place}"
              + (f"val F1 {f1:.3f}" if f1 is not None else ""))


@jobs_app.command("show")
def jobs_show(run_id: str, as_json: bool = typer.Option(False, "--json")):
    """One run: status, error, metrics, paths."""
    _show(_find(run_id, as_json)[0], as_json)


@jobs_app.command("cancel")
def jobs_cancel(run_id: str, as_json: bool = typer.Option(False, "--json")):
    """Stop a run (it saves a checkpoint first, so it can resume)."""
    from training.backends import local as jobs
    from training.base.settings import get_settings

    run, registry = _find(run_id, as_json)
    try:
        _show(jobs.cancel(run, registry, settings=get_settings()), as_json)
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
    _show(run if detach else _follow(run, registry, as_json), as_json)


@jobs_app.command("deployed")
def jobs_deployed(run_id: str, deployment: str = typer.Argument(..., help="The deployment's name on the provider."),
                  as_json: bool = typer.Option(False, "--json")):
    """Record the deployment you made of a finished fine-tune (Azure: portal or `az`), so chat, A/B and eval use it."""
    from training.backends.registry import backend_of
    from training.base.settings import get_settings

    run, registry = _find(run_id, as_json)
    try:
        _show(backend_of(run, get_settings()).deployed(run, registry, deployment), as_json)
    except TutorError as exc:
        fail(str(exc), as_json)


@jobs_app.command("export")
def jobs_export(run_id: str, as_json: bool = typer.Option(False, "--json")):
    """Merge a finished run's adapter into its base model: RUN_DIR/merged, an ordinary model folder."""
    from training.local.lora_model import export_merged

    run, _ = _find(run_id, as_json)
    if run["status"] != "succeeded" or not run.get("adapter_path"):
        fail(f"Run {run_id} has no finished adapter to export ({run['status']}).", as_json)
    target = export_merged(Path(run["adapter_path"]), Path(run["run_dir"]) / "merged")
    print(json.dumps({"merged": str(target)}) if as_json else f"Merged model: {target}")


class Baseline(str, Enum):
    rag = "rag"
    base = "base"


@app.command()
def explain(run_id: str, as_json: bool = typer.Option(False, "--json"),
            language: str = typer.Option("en", help="en or uk: the language of the quoted notes.")):
    """What a run's own curve and evaluation show, each finding citing the notes, and the settings to try next."""
    from assistant.tutor.explain import explain as explain_run

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
                           if run["config"].get(key) != value)
        print(f"Next run to try: {change}.")


@app.command()
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


@app.command("eval")
def evaluate_model(
    model: str = typer.Option(..., "--model", help="A run id (or model id) from `tutor jobs list`."),
    data: Path = typer.Option(..., "--data", help="Held-out recipes: chat JSONL or RecipeNLG CSV."),
    baseline: Baseline = typer.Option(Baseline.rag, help="rag: base model + k retrieved training examples; "
                                                          "base: base model alone."),
    k: int = typer.Option(3, min=1, max=20, help="Retrieved examples for the RAG baseline."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate a seeded sample of this many recipes."),
    owner: str = typer.Option(LOCAL_USER, help="The account the evaluation is recorded for."),
    as_json: bool = typer.Option(False, "--json", help="Print one object per system."),
):
    """Score a fine-tuned model and a baseline on held-out recipes: P/R/F1, exact match, tokens, latency."""
    from assistant.tutor.contenders import pair_for_run
    from training.base.registry import new_id
    from training.base.settings import get_settings
    from training.evaluation.held_out import evaluate, load_cases, markdown_table, write_results

    settings = get_settings()
    try:
        if not data.is_file():
            raise TutorError(f"{data} does not exist.")
        cases = load_cases(data, limit)
        if not cases:
            raise TutorError(f"{data} has no recipe with a valid gold ingredient list.")
        registry = open_registry()
        tuned, base = pair_for_run(registry, settings, model, baseline.value, k)
        systems = {"fine-tuned": tuned, baseline.value: base}
        progress = None if as_json else lambda n, total: typer.echo(f"\r{n}/{total} answers", nl=False, err=True)
        summary, rows = asyncio.run(evaluate({name: c.answer for name, c in systems.items()}, cases, progress))
        out_dir = write_results(settings.data_dir / "evals" / new_id("eval"), summary, rows,
                                {"model": model, "baseline": baseline.value, "data": str(data)})
        registry.add_evaluation(owner_named(registry, owner), model if model.startswith("run-") else None, summary,
                                out_dir)
    except (TutorError, ValueError, OSError, RegistryError) as exc:  # ValueError: a CSV without RecipeNLG's columns
        fail(str(exc), as_json)
    if as_json:
        print(json.dumps({"systems": [{"system": name, "label": systems[name].label, **values}
                                      for name, values in summary.items()], "results": str(out_dir)}, indent=2))
        return
    typer.echo("")
    typer.echo(markdown_table(summary, {name: c.label for name, c in systems.items()}))
    typer.echo(f"\nPer-example results: {out_dir / 'results.jsonl'}")


@app.command()
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8100, min=1, max=65535)):
    """Serve the OpenAI fine-tuning API (files, jobs, events, checkpoints) and chat on the local trainer and models.

    Point OPENAI_BASE_URL at http://HOST:PORT/v1. TUTOR_SERVE_API_KEY (environment or .env) sets the bearer key
    it requires; beyond 127.0.0.1 it refuses to start without one."""
    from assistant.server.app import serve as run_server
    from training.base.settings import get_settings

    try:
        settings = get_settings()
        typer.echo(f"OpenAI-compatible server at http://{host}:{port}/v1 (Ctrl-C stops it; jobs keep training)",
                   err=True)
        run_server(settings, host, port)
    except (TutorError, RegistryError) as exc:
        fail(str(exc), False)


app.add_typer(users_app, name="users")


@app.command()
def index():
    """Bring the knowledge index up to date, embedding only files that changed."""
    from assistant.retrieval.knowledge import KnowledgeBase
    from training.base.settings import get_settings

    try:
        report = KnowledgeBase(get_settings()).sync()
    except TutorError as exc:
        fail(str(exc), False)
    print(json.dumps(asdict(report), indent=2))


@app.command()
def settings():
    """Show the effective settings (API keys masked)."""
    from training.base.settings import get_settings

    try:
        print(json.dumps(get_settings().describe(), indent=2))
    except TutorError as exc:
        fail(str(exc), False)


@app.command()
def check(language: str = typer.Option("en", help="en or uk: the language of the questions and the recommendation.")):
    """The guided "Should I fine-tune?" check: answer by number, get a recommendation with reasons."""
    from assistant.tutor import decision

    if language not in decision.PHRASES:
        raise typer.BadParameter(f"'{language}' is not one of {', '.join(decision.PHRASES)}.", param_hint="--language")
    answers: dict[str, str] = {}
    while question := decision.next_question(answers):
        shown = question.in_language(language)
        typer.secho(f"\n{shown.topic}: {shown.text}", bold=True)
        for number, option in enumerate(shown.options, 1):
            print(f"  {number}. {option.label}")
        choice = typer.prompt(decision.phrase("cli.answer", language), type=int)
        while not 1 <= choice <= len(shown.options):
            choice = typer.prompt(decision.phrase("cli.number", language, count=len(shown.options)), type=int)
        answers[question.key] = shown.options[choice - 1].key
    print()
    print(decision.recommend(answers, language).as_markdown())


if __name__ == "__main__":
    app(prog_name="tutor")
