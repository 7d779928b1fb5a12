"""`tutor`: the command line of Fine-Tuning Tutor, on the same code as the chat.

    tutor ask "What is LoRA?"            # streamed answer, then its sources
    tutor ask "What is LoRA?" --json     # {"answer": str, "sources": [{"path", "heading", "text"}]}
    tutor check                          # the "Should I fine-tune?" check, in the terminal
    tutor prepare --source sample --train 150 --validation 40 --test 40 --seed 42 [--json]
    tutor validate FILE.jsonl [--model gpt-4o-mini|local] [--price 3.0] [--json]
    tutor index                          # (re)index knowledge/ incrementally
    tutor settings                       # the effective configuration, keys masked
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from assistant.errors import TutorError

# Tracebacks never show local variables: one of them could hold an API key.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Fine-Tuning Tutor: learn LLM fine-tuning by doing it.")


def fail(message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        typer.secho(f"Error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@app.command()
def ask(
    question: str = typer.Argument(..., help="Your question about fine-tuning."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: answer and sources."),
    backend: Optional[str] = typer.Option(None, help="Chat backend: local or openai (default: from settings)."),
    temperature: Optional[float] = typer.Option(None, min=0.0, max=2.0, help="Sampling temperature."),
):
    """Ask the tutor a question; the answer is grounded in knowledge/ and lists its sources."""
    from assistant.service import get_tutor
    from assistant.tutor import format_sources

    async def run() -> dict:
        tutor = get_tutor()
        reply = await tutor.ask(question, backend=backend, temperature=temperature)
        async for piece in reply:
            if not as_json:
                print(piece, end="", flush=True)
        if not as_json:
            print(format_sources(reply.sources).replace("**", ""))
        return reply.to_dict()

    try:
        result = asyncio.run(run())
    except TutorError as exc:
        fail(str(exc), as_json)
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))


@app.command()
def prepare(
    source: str = typer.Option("sample", help="'sample' (bundled recipes), a RecipeNLG CSV, or a chat JSONL."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: DATA_DIR/datasets/<source>-seed<seed>)."),
    train: int = typer.Option(150, min=1, help="Training examples."),
    validation: int = typer.Option(40, min=0, help="Validation examples."),
    test: int = typer.Option(40, min=0, help="Held-out test examples."),
    seed: int = typer.Option(42, help="Seed: the same seed and input give the same files."),
    dedupe: bool = typer.Option(True, help="Drop recipes with the same title and ingredients."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Build the recipe-assistant dataset: train/validation/test chat JSONL, deduplicated and seeded."""
    from assistant.settings import get_settings
    from training.prepare import prepare as build
    from training.recipes import SourceError

    def progress(rows: int, done: int, total: int) -> None:
        if not as_json:
            typer.echo(f"\r{rows:,} rows read ({done / max(total, 1):.0%})", err=True, nl=False)

    try:
        folder = out or get_settings().data_dir / "datasets" / f"{Path(source).stem}-seed{seed}"
        report = build(source, folder, train=train, validation=validation, test=test, seed=seed, dedupe=dedupe,
                       progress=progress)
    except (SourceError, ValueError, OSError, TutorError) as exc:
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
    from training.validate import validate_file

    try:
        report = validate_file(file, model=model, price_per_million=price)
    except (OSError, TutorError) as exc:
        fail(str(exc), as_json)
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.as_markdown())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def index():
    """Bring the knowledge index up to date, embedding only files that changed."""
    from assistant.knowledge import KnowledgeBase
    from assistant.settings import get_settings

    try:
        report = KnowledgeBase(get_settings()).sync()
    except TutorError as exc:
        fail(str(exc), False)
    print(json.dumps(asdict(report), indent=2))


@app.command()
def settings():
    """Show the effective settings (API keys masked)."""
    from assistant.settings import get_settings

    try:
        print(json.dumps(get_settings().describe(), indent=2))
    except TutorError as exc:
        fail(str(exc), False)


@app.command()
def check():
    """The guided "Should I fine-tune?" check: answer by number, get a recommendation with reasons."""
    from assistant import decision

    answers: dict[str, str] = {}
    while question := decision.next_question(answers):
        typer.secho(f"\n{question.topic}: {question.text}", bold=True)
        for number, option in enumerate(question.options, 1):
            print(f"  {number}. {option.label}")
        choice = typer.prompt("Your answer", type=int)
        while not 1 <= choice <= len(question.options):
            choice = typer.prompt(f"Please type a number from 1 to {len(question.options)}", type=int)
        answers[question.key] = question.options[choice - 1].key
    print()
    print(decision.recommend(answers).as_markdown())


if __name__ == "__main__":
    app(prog_name="tutor")
