"""`tutor`: the command line of Fine-Tuning Tutor, on the same code as the chat. One module per command group:

    tutor ask "What is LoRA?" [--json]   # streamed answer, then its sources ({"answer", "sources"} with --json)
    tutor check [--language uk]          # the "Should I fine-tune?" check, in the terminal
    tutor chat [--json]                  # a conversation: follow-ups resolved (assistant/cli/chat.py)
    tutor quiz [--topic lora] [--lang uk] [--questions 3] [--json]   # a check of understanding (quiz.py)
    tutor prepare | validate | tokens    # the data (assistant/cli/data.py)
    tutor train --backend local --train train.jsonl [--epochs 2 --lr 1e-3 --r 8 ...]   # (training.py)
    tutor jobs list | show | cancel | resume | deployed | export; tutor explain RUN     # (jobs.py)
    tutor eval --model RUN --data test.jsonl [--baseline rag|base]                    # (evaluation.py)
    tutor serve | index | settings       # the server, the knowledge index, the configuration (service.py)
    tutor models [download ID] | doctor  # base models and this machine (models.py, doctor.py)
    tutor users add NAME [--admin] | list [--usage] | remove NAME | transfer ID NAME   # (users.py)
"""

from __future__ import annotations

import asyncio
import json
from typing import Optional

import typer

from assistant.cli import data, evaluation, jobs, service, training
from assistant.cli.chat import chat
from assistant.cli.common import LANGUAGE, fail, language_of_option
from assistant.cli.models import doctor, models_app
from assistant.cli.quiz import quiz_command
from assistant.cli.users import users_app
from training.base.errors import TutorError

# Tracebacks never show local variables: one of them could hold an API key.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Fine-Tuning Tutor: learn LLM fine-tuning by doing it.")


@app.callback()
def configure() -> None:
    """Every command: offline and sized to this machine before any model library loads."""
    from training.base.common import configure_process

    configure_process()


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
def check(language: Optional[str] = LANGUAGE):
    """The guided "Should I fine-tune?" check: answer by number, get a recommendation with reasons."""
    from assistant.tutor import decision

    language = language_of_option(language)
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


for command in (chat, data.prepare, data.validate, training.train, jobs.explain, data.tokens, doctor, service.serve,
                service.index, service.settings):
    app.command()(command)
app.command("quiz")(quiz_command)
app.command("eval")(evaluation.evaluate_model)
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")


if __name__ == "__main__":
    app(prog_name="tutor")
