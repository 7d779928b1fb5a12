"""`tutor serve`, `tutor index` and `tutor settings`: the server, the knowledge index and the configuration.

    tutor serve [--port 8100]            # this project's OpenAI-compatible fine-tuning + chat server
    tutor index                          # (re)index knowledge/ incrementally
    tutor settings                       # the effective configuration, keys masked
"""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from assistant.cli.common import fail
from training.base.errors import TutorError
from training.base.registry import RegistryError


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



def index():
    """Bring the knowledge index up to date, embedding only files that changed."""
    from assistant.retrieval.knowledge import KnowledgeBase
    from training.base.settings import get_settings

    try:
        report = KnowledgeBase(get_settings()).sync()
    except TutorError as exc:
        fail(str(exc), False)
    print(json.dumps(asdict(report), indent=2))



def settings():
    """Show the effective settings (API keys masked)."""
    from training.base.settings import get_settings

    try:
        print(json.dumps(get_settings().describe(), indent=2))
    except TutorError as exc:
        fail(str(exc), False)

