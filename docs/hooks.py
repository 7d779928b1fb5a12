"""MkDocs hooks: the CLI and configuration references, generated from the code on every build, and includes.

mkdocs.yml names this file under `hooks:`; the library never imports it. A page asks for generated text with a
marker on a line of its own:

    <!-- cli-reference -->            every `tutor` command, walked from the typer app `assistant.cli.main:app`
    <!-- settings-reference -->       every field of `training.base.settings.Settings`: variable, default, meaning
    <!-- include PATH -->             a file of the checkout (PATH from the root), e.g. SECURITY.md

    .venv/bin/mkdocs build --strict     # what `make test` runs; `mkdocs serve` rebuilds as you edit

The generators are plain functions (`cli_reference()`, `settings_reference()`), so tests call them without MkDocs.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- (cli-reference|settings-reference|include (\S+)) -->$", re.MULTILINE)


def text(value: str) -> str:
    """Plain help text for Markdown: `<` outside code spans would open an HTML tag, `|` would end a table cell."""
    parts = " ".join(value.split()).split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts)).replace("|", r"\|")


def command_paths(group, path: tuple[str, ...] = ("tutor",)) -> list[tuple[tuple[str, ...], object]]:
    """Every visible command and group under a click group, depth first in name order: (its words, it)."""
    found = [(path, group)]
    for name, command in sorted(getattr(group, "commands", {}).items()):
        if not command.hidden:
            found += command_paths(command, path + (name,))
    return found


def tutor_command():
    """The click command tree of `tutor`, from the typer app every command is registered on."""
    import typer

    from assistant.cli.main import app

    return typer.main.get_command(app)


def cli_reference() -> str:
    """A section per command: its help, its usage, and a table of its arguments and options with their help."""
    import typer

    root = tutor_command()
    contexts = {("tutor",): typer.Context(root, info_name="tutor")}
    sections = []
    for path, command in command_paths(root):
        if len(path) > 1:
            contexts[path] = typer.Context(command, info_name=path[-1], parent=contexts[path[:-1]])
        params = [p for p in command.params if not p.hidden]
        arguments = " ".join(p.name.upper() for p in params if p.param_type_name == "argument")
        subcommand = " COMMAND" if getattr(command, "commands", None) else ""
        lines = [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", "",
                 "\n\n".join(text(part) for part in (command.help or "").split("\n\n") if part.strip()), "",
                 f"Usage: `{' '.join(path)} [OPTIONS]{' ' + arguments if arguments else ''}{subcommand}`", ""]
        if params:
            lines += ["| argument or option | what it does |", "| --- | --- |"]
            for param in params:
                name, help_text = param.get_help_record(contexts[path]) or (param.name, "")
                lines.append(f"| `{name}` | {text(help_text)} |")
            lines.append("")
        sections.append("\n".join(lines))
    return "\n".join(sections)


def settings_entries() -> list[tuple[str, list[str], str]]:
    """The Settings docstring, where every setting is explained, as (section, its fields, their description):
    `Section:` lines, then `name / other_name: what they do` entries with indented continuations. A field named
    only inside another entry's text (azure_openai_api_key) joins that entry."""
    from training.base.settings import Settings

    entries: list[tuple[str, list[str], str]] = []
    section = ""
    for line in (Settings.__doc__ or "").splitlines():
        if re.match(r"^ {4}\S.*:$", line):
            section = line.strip().rstrip(":")
        elif re.match(r"^ {8}\S", line) and ":" in line:
            head, _, rest = line.strip().partition(": ")
            entries.append((section, [w for w in re.findall(r"\w+", head) if w in Settings.model_fields], rest))
        elif re.match(r"^ {12}\S", line) and entries:
            entries[-1] = (*entries[-1][:2], entries[-1][2] + " " + line.strip())
    for field in Settings.model_fields:
        if not any(field in names for _, names, _ in entries):
            mentioned = [names for _, names, words in entries if re.search(rf"\b{field}\b", words)]
            if mentioned:
                mentioned[0].append(field)
    return [entry for entry in entries if entry[1]]


def default_of(field) -> str:
    """A field's default as a learner would write it; paths inside the checkout relative to it."""
    from training.base.settings import PROJECT_ROOT

    value = field.default
    if value is None or value == []:
        return "unset"
    if isinstance(value, Path):
        return value.relative_to(PROJECT_ROOT).as_posix() if value.is_relative_to(PROJECT_ROOT) else str(value)
    if isinstance(value, list):
        return ",".join(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def allowed_values(field) -> str:
    """The values a field accepts where the model says: a Literal's choices, a number's bounds."""
    choices = [a for a in typing.get_args(field.annotation) if isinstance(a, str)]
    if typing.get_origin(field.annotation) is typing.Literal:
        return "one of " + ", ".join(f"`{c}`" for c in choices)
    bounds = [f"{symbol} {getattr(m, name)}" for m in field.metadata
              for name, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")) if hasattr(m, name)]
    return ", ".join(bounds)


def settings_reference() -> str:
    """A table per docstring section, a row per entry: its environment variables, their defaults and allowed
    values, and what they do (field names in the text shown as their variables)."""
    from training.base.settings import Settings, env_name

    names = {field: f"`{env_name(field)}`" for field in Settings.model_fields}
    sections: dict[str, list[str]] = {}
    for section, fields, description in settings_entries():
        infos = [Settings.model_fields[field] for field in fields]
        words = re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: names[m.group(1)], description)
        sections.setdefault(section, []).append(
            "| " + " | ".join("<br>".join(cells) for cells in (
                [names[field] for field in fields], [f"`{default_of(info)}`" for info in infos],
                [allowed_values(info) or "any" for info in infos])) + f" | {text(words)} |")
    return "\n".join(f"### {section}\n\n| variable | default | allowed | what it does |\n| --- | --- | --- | --- |\n"
                     + "\n".join(rows) + "\n" for section, rows in sections.items())


def expand(markdown: str) -> str:
    """The page with each marker replaced by what it names."""
    def replace(match: re.Match) -> str:
        if match.group(1) == "cli-reference":
            return cli_reference()
        if match.group(1) == "settings-reference":
            return settings_reference()
        return (ROOT / match.group(2)).read_text(encoding="utf-8")

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs) -> str:
    """MkDocs' hook: runs on each page's Markdown before it is rendered."""
    return expand(markdown)
