"""`tutor eval`: a fine-tuned model and a baseline scored on held-out recipes.

    tutor eval --model RUN --data test.jsonl [--baseline rag|base] [--k 3] [--limit 20] [--json]
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from assistant.cli.common import fail, open_registry
from assistant.web.accounts import owner_named
from training.base.errors import TutorError
from training.base.registry import LOCAL_USER, RegistryError


class Baseline(str, Enum):
    rag = "rag"
    base = "base"



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

