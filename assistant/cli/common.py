"""What every `tutor` command shares: one-line errors, the registry opened the same way, and the learner's language.

    fail("No account named alice.", as_json)     # `Error: ...` (or {"error": ...}), exit code 1
    registry = open_registry()                    # runs whose trainer died are marked interrupted first
    language: str = LANGUAGE                      # --language uk; default: the locale's (LANG=uk_UA.UTF-8), else en
    chosen = language_of_option(language)         # checked: one of the catalog's languages
"""

from __future__ import annotations

import json

import typer

from training.base.errors import TutorError
from training.base.registry import RegistryError
from training.base.texts import language_from_env, languages

LANGUAGE = typer.Option(None, "--language", "--lang", show_default=False,
                        help="The language of what the learner reads: en or uk. Default: the locale's (LC_ALL, "
                             "LC_MESSAGES or LANG), else English.")


def language_of_option(value: str | None) -> str:
    """The --language a learner gave (checked against the catalog's languages), else the locale's."""
    if value is None:
        return language_from_env()
    if value not in languages():
        raise typer.BadParameter(f"'{value}' is not one of {', '.join(languages())}.", param_hint="--language")
    return value


def fail(message: str, as_json: bool) -> None:
    """Every `tutor` command's error: one line (`Error: ...`, or `{"error": ...}` with --json), exit code 1."""
    if as_json:
        print(json.dumps({"error": message}))
    else:
        typer.secho(f"Error: {message}", fg="red", err=True)
    raise typer.Exit(1)


def open_registry():
    """The data dir's registry, with runs whose trainer died marked as interrupted; a damaged or locked
    registry is one line and exit 1."""
    from training.base.clients import secrets
    from training.base.errors import install_secret_redaction
    from training.base.registry import registry_for
    from training.base.settings import get_settings
    from training.jobs import queue

    try:
        install_secret_redaction(*secrets(get_settings()))  # the provider clients' logs, say, name no key
        registry = registry_for(get_settings())
        queue.reconcile(registry)
    except (TutorError, RegistryError) as exc:
        fail(str(exc), False)
    return registry
