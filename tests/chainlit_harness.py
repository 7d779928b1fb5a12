"""Drive Chainlit handlers without a browser: a recording emitter in Chainlit's own context.

    chat = open_chat()                      # inside an async test; open_chat("alice") as a logged-in user
    await app.on_message(user_says("What is LoRA?"))
    chat.messages[-1]["output"]             # what the learner sees
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import chainlit as cl
from chainlit.context import ChainlitContext, context_var
from chainlit.emitter import BaseChainlitEmitter
from chainlit.session import HTTPSession


class RecordingEmitter(BaseChainlitEmitter):
    """Keeps every step (message), streamed token, action, element, setting and command sent."""

    def __init__(self, session):
        super().__init__(session)
        self.steps: dict[str, dict] = {}
        self.outputs: dict[str, list[str]] = defaultdict(list)  # every text a message showed, in order
        self.tokens: dict[str, list[str]] = defaultdict(list)
        self.actions: list[dict] = []
        self.removed_actions: list[str] = []
        self.elements: list[dict] = []
        self.chat_settings: list[dict] = []
        self.commands: list[dict] = []

    def _record(self, step: dict) -> None:
        self.steps[step["id"]] = {**self.steps.get(step["id"], {}), **step}
        if "output" in step:
            self.outputs[step["id"]].append(step["output"])

    async def send_step(self, step_dict):
        self._record(step_dict)

    async def update_step(self, step_dict):
        self._record(step_dict)

    async def stream_start(self, step_dict):
        self._record(step_dict)

    async def send_token(self, id, token, is_sequence=False, is_input=False):
        self.tokens[id].append(token)

    async def send_element(self, element_dict):
        self.elements.append(element_dict)

    def set_chat_settings(self, settings):  # Chainlit calls this one without awaiting
        pass

    async def set_commands(self, commands):
        self.commands = list(commands)

    async def emit(self, event, data):
        if event == "action":
            self.actions.append(data)
        elif event == "remove_action":
            self.removed_actions.append(data["id"])
        elif event == "element":
            self.elements.append(data)
        elif event == "chat_settings":
            self.chat_settings = data

    @property
    def messages(self) -> list[dict]:
        return [s for s in self.steps.values() if s.get("type") == "assistant_message"]

    def actions_for(self, message_id: str) -> list[dict]:
        return [a for a in self.actions if a["forId"] == message_id and a["id"] not in self.removed_actions]


def open_chat(user: str | None = None, language: str | None = None) -> RecordingEmitter:
    """A new chat session in this task's context: the local learner's, or a logged-in user's (by account name: the
    session carries the account's id, as a login makes it); `language` is the browser's (Chainlit's websocket
    session takes it from Accept-Language, e.g. "uk-UA")."""
    from training.base.registry import registry_for
    from training.base.settings import get_settings

    account = registry_for(get_settings()).user(user) if user else None
    session = HTTPSession(id=str(uuid.uuid4()), client_type="webapp",
                          user=cl.User(identifier=account.id, display_name=user) if account else None)
    if language:
        session.language = language
    # Chainlit keeps session files in <repo>/.files and removes that folder when a `chainlit run` (another
    # test's app) exits: make sure it is there again.
    session.files_dir.parent.mkdir(parents=True, exist_ok=True)
    emitter = RecordingEmitter(session)
    context_var.set(ChainlitContext(session, emitter))
    return emitter


def user_says(text: str, command: str | None = None) -> cl.Message:
    return cl.Message(content=text, author="User", type="user_message", command=command)


async def press_start(chat: RecordingEmitter) -> dict:
    """Press Start under the estimate the chat just showed (every backend's confirm step); the confirm message."""
    from assistant.chat import training_flow

    confirm = chat.messages[-1]
    [start] = chat.actions_for(confirm["id"])
    assert start["name"] == "start_training", confirm["output"]
    await training_flow.on_start_training(cl.Action(name="start_training", payload=start["payload"], id=start["id"]))
    return confirm


async def start_billed_training(chat: RecordingEmitter, command: str, timeout: float) -> tuple[dict, dict]:
    """Type a `/train BACKEND ...` command, pick the first dataset offered, press Start under the estimate and
    wait for the run to end; the dataset button pressed and the confirmation (the estimate) the learner saw."""
    import asyncio

    import assistant.chat.app as app
    from assistant.chat import training_flow

    await app.on_message(user_says(command, command="train"))
    [pick] = chat.actions_for(chat.messages[-1]["id"])
    await training_flow.on_finetune(cl.Action(name="finetune", payload=pick["payload"]))
    confirm = await press_start(chat)
    await asyncio.wait_for(cl.user_session.get("training_job"), timeout)
    return pick, confirm
