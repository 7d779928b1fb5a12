"""`tutor train`: fine-tune on any training backend, following the run until it ends.

Its settings options are generated from the backends' Configs (training/backends/registry.py): one option per
field, named after the field and its short names (`--learning-rate`/`--lr`, `--lora-r`/`--r`), typed and
explained by it, with each backend's default in its help; a field several backends share (`--epochs`,
`--batch-size`, `--seed`) is one option. The backends are those registered when the CLI loads (the built-in
ones, and a plugin imported before). The backend's Config checks the values, as it checks the chat's form and
`/train key=value`, so a bad value is one sentence naming its field.

    tutor train --backend local --train train.jsonl --val validation.jsonl [--epochs 2 --lr 1e-3 --r 8 ...]
    tutor train --backend openai --train train.jsonl --val validation.jsonl [--model ft:... --suffix recipes --auto]
    tutor train --train train.jsonl --dry-run --json      # the estimate only: memory, time (hosted: the cost)
"""

from __future__ import annotations

import asyncio
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Optional

import typer

from assistant.cli.common import fail, open_registry
from assistant.cli.models import show_estimate
from assistant.web.accounts import owner_named
from training.backends.registry import training_backend, training_backend_configs
from training.base.errors import TutorError
from training.base.records import Run
from training.base.registry import LOCAL_USER, RegistryError
from training.base.settings import get_settings
from training.local.config import ConfigError, field_names

# Flags learners typed before the options were generated, beside each field's own: a field -> its extra flag.
FLAGS = {"train_file": "--train", "validation_file": "--val", "eval_generate_limit": "--eval-generate"}
REQUIRED = {"train_file"}  # a run needs its training file, whichever backend runs it
SIMPLE = (bool, int, float, str)


@dataclass
class Setting:
    """One generated option: the key the backends' configs read it by, its flags, and what each backend says."""

    key: str
    flags: list[str]
    kinds: set = field(default_factory=set)
    help: str = ""
    defaults: dict[str, object] = field(default_factory=dict)

    def parameter(self) -> inspect.Parameter:
        kind = next(iter(self.kinds)) if len(self.kinds) == 1 else str  # differing types: the Config parses text
        backends = ", ".join(name if default in (None, "") else f"{name}: {default}"  # each backend's default
                             for name, default in self.defaults.items())
        text = f"{self.help} ({backends})".lstrip()
        if self.key in REQUIRED:
            return inspect.Parameter(self.key, inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                     default=typer.Option(..., *self.flags, help=text))
        flags = [f"{self.flags[0]}/--no-{self.flags[0][2:]}"] if kind is bool else self.flags
        return inspect.Parameter(self.key, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind],
                                 default=typer.Option(None, *flags, help=text))


def _kind(annotation) -> type:
    """A field's type as an option's: bool, int, float or str (a union or a literal is text the Config parses)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(parts[0]) if len(parts) == 1 else str
    if typing.get_origin(annotation) is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    return annotation if annotation in SIMPLE else str


def settings_options() -> list[Setting]:
    """Every registered backend's Config fields as options, those that share a flag merged into one."""
    found: list[Setting] = []
    for name, config in training_backend_configs().items():
        aliases = field_names(config)
        for field_name, info in config.model_fields.items():
            names = [field_name] + [a for a, f in aliases.items() if f == field_name and a != field_name]
            flags = [f"--{n.replace('_', '-')}" for n in names] + ([FLAGS[field_name]] if field_name in FLAGS else [])
            setting = next((s for s in found if set(s.flags) & set(flags)), None)
            if setting is None:
                setting = Setting(field_name, [FLAGS[field_name]] if field_name in FLAGS else [])
                found.append(setting)
            setting.flags += [f for f in flags if f not in setting.flags]
            setting.kinds.add(_kind(info.annotation))
            setting.help = setting.help or info.description or ""
            setting.defaults[name] = info.default if not info.is_required() else None
    return found


def train(*, backend: str, auto: bool, dry_run: bool, gpu: Optional[str], owner: str, detach: bool, as_json: bool,
          **values):
    """Fine-tune (local LoRA in a background process, or a job on a provider), following it until it ends.
    Local runs join the training queue: at most TUTOR_MAX_TRAINING_JOBS train at once."""
    registry = open_registry()
    try:
        trainer = training_backend(backend, get_settings())
        config = trainer.config({**values, "auto": auto})
        if dry_run:
            show_estimate(trainer, trainer.check(config), gpu, as_json)
            return
        run = trainer.start(config, registry, owner_named(registry, owner))
    except (ConfigError, TutorError, RegistryError, OSError) as exc:
        fail(str(exc), as_json)
    if not detach:
        run = follow_run(run, registry, as_json)
        typer.echo("", err=True)
    show_run(run, as_json)
    if run.status not in ("succeeded", "running", "queued"):
        raise typer.Exit(1)


FIXED = [  # the options that are no backend's setting
    ("backend", str, typer.Option("local", help="Where to train: local (LoRA here), openai (OpenAI or "
                                                "OPENAI_BASE_URL), azure (Azure OpenAI), or another registered "
                                                "training backend.")),
    ("auto", bool, typer.Option(False, help="hosted: let the provider pick epochs and batch size.")),
    ("dry_run", bool, typer.Option(False, "--dry-run", help="Only estimate: peak memory, time and whether it fits "
                                                            "(hosted backends: the cost). Nothing starts.")),
    ("gpu", Optional[str], typer.Option(None, help="With --dry-run: estimate for a GPU that is not here (one of T4, "
                                                   "L4, A10G, RTX 4090, A100-40GB, A100-80GB, L40S, H100, H200).")),
    ("owner", str, typer.Option(LOCAL_USER, help="The account that owns the run (chat shows it to them).")),
    ("detach", bool, typer.Option(False, help="Start and return; follow later with `tutor jobs show`.")),
    ("as_json", bool, typer.Option(False, "--json", help="Print the final run record as JSON.")),
]
train.__signature__ = inspect.Signature(
    [s.parameter() for s in settings_options()]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=option)
       for name, kind, option in FIXED])


def follow_run(run: Run, registry, as_json: bool) -> dict:
    """Print a run's progress until it ends (training/jobs/presentation.py's lines); Ctrl-C leaves it running."""
    from training.backends import local as jobs
    from training.jobs.presentation import cli_line

    settings = get_settings()

    async def follow() -> None:
        async for event in jobs.follow(run, registry, settings=settings):
            if not as_json and (line := cli_line(event)):
                typer.echo(line, nl=False, err=True)

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        typer.echo(f"\nStill training in the background: `tutor jobs show {run.id}`, "
                   f"`tutor jobs cancel {run.id}`.", err=True)
        raise typer.Exit(130)
    return registry.run(run.id)


def show_run(run: Run, as_json: bool) -> None:
    """A run record: JSON, or its id, status, backend and folder, then its error and metrics."""
    if as_json:
        print(run.model_dump_json(indent=2))
        return
    print(f"{run.id}  {run.status}  {run.backend}  {run.run_dir}")
    if run.error:
        print(f"  error: {run.error}")
    for key, value in (run.metrics or {}).items():
        print(f"  {key}: {value}")
