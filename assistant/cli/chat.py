"""`tutor chat`: a conversation with the tutor in the terminal, each question the next turn of one conversation
(follow-ups, "simpler", "an example", "why?" resolved as in the chat; assistant/tutor/conversation.py).

    tutor chat                                   # interactive: type a question, Enter; an empty line or Ctrl-D ends
    printf 'What is LoRA?\nHow do I choose its rank?\n' | tutor chat --json
        # one JSON object per line: answer, sources, language, understood_as, follow_up_of, searched
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Optional

import typer

from training.base.errors import TutorError


def chat(
    as_json: bool = typer.Option(False, "--json", help="Read questions one per line; print one JSON object per answer."),
    backend: Optional[str] = typer.Option(None, help="Chat backend: local or openai (default: from settings)."),
    temperature: Optional[float] = typer.Option(None, min=0.0, max=2.0, help="Sampling temperature."),
):
    """Talk with the tutor: each question is answered as the next turn of one conversation."""
    from assistant.tutor.answers import format_sources
    from assistant.tutor.conversation import Conversation
    from assistant.tutor.service import get_tutor

    interactive = sys.stdin.isatty() and not as_json

    async def turn(tutor, conversation: Conversation, question: str) -> None:
        try:
            reply = await tutor.ask(question, conversation=conversation, backend=backend, temperature=temperature)
            async for piece in reply:
                if not as_json:
                    print(piece, end="", flush=True)
        except TutorError as exc:  # one line, and the conversation goes on
            print(json.dumps({"error": str(exc)}, ensure_ascii=False) if as_json else f"⚠️ {exc}", flush=True)
            return
        reply.record(conversation)
        if as_json:
            print(json.dumps(reply.to_dict(), ensure_ascii=False), flush=True)
        else:
            print(format_sources(reply.sources, reply.language).replace("**", "") + "\n", flush=True)

    async def run() -> None:
        tutor, conversation = get_tutor(), Conversation()
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line or (interactive and not line.strip()):
                return
            if line.strip():
                await turn(tutor, conversation, line.strip())

    asyncio.run(run())
