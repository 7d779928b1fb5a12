"""What every `tutor` command shares: one-line errors and the registry, opened the same way.

    fail("No account named alice.", as_json)     # `Error: ...` (or {"error": ...}), exit code 1
    registry = open_registry()                    # runs whose trainer died are marked interrupted first
"""

from __future__ import annotations

import json

import typer

from training.base.errors import TutorError
from training.base.registry import RegistryError


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
