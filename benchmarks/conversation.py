"""Follow-ups offline: does the tutor answer each turn of a conversation from the right section of the notes?

22 multi-turn dialogues written for the project (12 English, 10 Ukrainian, 3 to 6 turns): pronoun follow-ups
("its rank", "як його уникнути?"), ellipses ("And the batch size?", "А розмір батча?"), topic switches and
requests about the last answer (simpler, example, why, more, shorter, in other words). Each turn names the
section(s) of the notes that answer it: file, and heading (any heading of the file where none is given).

Counted over the follow-up turns (every turn after the first): the share whose first source is a right
section (also on HELD_OUT, 6 dialogues written after the ranking weights were chosen on these), for the tutor holding the conversation (the project) and for the same tutor answering each turn
alone (the baseline, as the tutor was before), with the median time per turn of each. Offline: the local
backend on the embedded SmolLM2-135M, its "In short" summary included.

    python -m benchmarks.conversation
"""

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from assistant.retrieval.knowledge import KnowledgeBase
from assistant.tutor.answers import Tutor
from assistant.tutor.conversation import Conversation
from training.base.settings import load_settings

LORA, UK_LORA = "lora-qlora-peft.md", "uk/lora-qlora-peft.md"
# (question, [(file under knowledge/, heading prefix or "")]): any of the sections is right.
DIALOGUES: list[list[tuple[str, list[tuple[str, str]]]]] = [
    [("What is LoRA?", [(LORA, "What LoRA is")]),
     ("How do I choose its rank?", [("hyperparameters.md", "LoRA rank"), ("glossary.md", "Adapter terms")]),
     ("And what does QLoRA add to it?", [(LORA, "QLoRA")]),
     ("Why does that save memory?", [(LORA, "QLoRA")]),
     ("Can you say that more simply?", [(LORA, "QLoRA")]),
     ("Give me an example with my recipe dataset.", [("recipe-assistant-walkthrough.md", "")])],
    [("What is catastrophic forgetting?", [("overfitting-and-forgetting.md", "Catastrophic forgetting")]),
     ("How can I avoid it?", [("overfitting-and-forgetting.md", "Mitigating")]),
     ("Why?", [("overfitting-and-forgetting.md", "Mitigating")]),
     ("Tell me more.", [("overfitting-and-forgetting.md", "")])],
    [("What is overfitting?", [("overfitting-and-forgetting.md", "Overfitting in fine-tuning")]),
     ("How do I spot it in the loss curves?", [("overfitting-and-forgetting.md", "Spotting overfitting")]),
     ("And how do I fix it?", [("overfitting-and-forgetting.md", "Fixing overfitting"),
                               ("hyperparameters.md", "Adjusting for underfitting or overfitting")])],
    [("How many training examples do I need?", [("what-you-need.md", "How many examples")]),
     ("What format should they be in?", [("chat-jsonl-format.md", "")]),
     ("Show me an example.", [("chat-jsonl-format.md", "An example training line"),
                              ("recipe-assistant-walkthrough.md", "An example recipe")])],
    [("What is RAG?", [("alternatives.md", "Retrieval-augmented generation"), ("glossary.md", "Prompting terms")]),
     ("What are its limits?", [("alternatives.md", "Limits of RAG")]),
     ("Can I combine it with fine-tuning?", [("alternatives.md", "Combining alternatives")])],
    [("What learning rate should I use?", [("hyperparameters.md", "Learning rate")]),
     ("And the batch size?", [("hyperparameters.md", "Batch size")]),
     ("Why does that matter?", [("hyperparameters.md", "Batch size")])],
    [("How do I evaluate a fine-tuned model?", [("evaluation.md", "")]),
     ("Why do I need a test split for that?", [("evaluation.md", "Hold out a test split")]),
     ("Which metrics should I use for the recipe task?", [("evaluation.md", "Task metrics")])],
    [("How do I estimate the cost of fine-tuning?", [("deployment-and-cost.md", "How to estimate")]),
     ("Give me an example.", [("deployment-and-cost.md", "Worked cost example")]),
     ("When does it break even?", [("deployment-and-cost.md", "Break-even")])],
    [("What is PEFT?", [(LORA, "Parameter-efficient fine-tuning")]),
     ("Which modules does LoRA target?", [(LORA, "Which modules")]),
     ("Shorter, please.", [(LORA, "Which modules")])],
    [("What is supervised fine-tuning?", [("supervised-vs-unsupervised.md", "Supervised fine-tuning")]),
     ("And DPO?", [("supervised-vs-unsupervised.md", "Preference tuning")]),
     ("In other words?", [("supervised-vs-unsupervised.md", "Preference tuning")])],
    [("How does OpenAI fine-tuning work?", [("providers.md", "OpenAI fine-tuning API")]),
     ("Can I still start new jobs there?", [("providers.md", "OpenAI is winding down")]),
     ("What about Azure?", [("providers.md", "Azure")])],
    [("What is an epoch?", [("glossary.md", "Training terms"), ("hyperparameters.md", "Epochs")]),
     ("How many should I train for?", [("hyperparameters.md", "Epochs"), ("hyperparameters.md", "OpenAI's default")]),
     ("Why?", [("hyperparameters.md", "Epochs"), ("hyperparameters.md", "OpenAI's default")])],
    [("Що таке LoRA?", [(UK_LORA, "Що таке LoRA")]),
     ("Як обрати її ранг?", [("uk/hyperparameters.md", "Ранг"), ("uk/glossary.md", "")]),
     ("А що до неї додає QLoRA?", [(UK_LORA, "QLoRA")]),
     ("Поясни простіше.", [(UK_LORA, "QLoRA")])],
    [("Що таке катастрофічне забування?", [("uk/overfitting-and-forgetting.md", "Катастрофічне забування")]),
     ("Як його уникнути?", [("uk/overfitting-and-forgetting.md", "Як пом'якшити")]),
     ("Поясни простіше.", [("uk/overfitting-and-forgetting.md", "Як пом'якшити")])],
    [("Що таке перенавчання?", [("uk/overfitting-and-forgetting.md", "Перенавчання під час")]),
     ("Як його помітити?", [("uk/overfitting-and-forgetting.md", "Як помітити")]),
     ("А як його виправити?", [("uk/overfitting-and-forgetting.md", "Як виправити"),
                               ("uk/hyperparameters.md", "Коригування")])],
    [("Скільки навчальних прикладів мені потрібно?", [("uk/what-you-need.md", "Скільки прикладів")]),
     ("У якому форматі їх подавати?", [("uk/chat-jsonl-format.md", "")]),
     ("Покажи приклад.", [("uk/chat-jsonl-format.md", "Приклад навчального рядка"),
                          ("uk/recipe-assistant-walkthrough.md", "Приклад рецепта")])],
    [("Що таке RAG?", [("uk/alternatives.md", "Генерація з доповненням"), ("uk/glossary.md", "")]),
     ("Які в нього обмеження?", [("uk/alternatives.md", "Обмеження RAG")]),
     ("Чому?", [("uk/alternatives.md", "Обмеження RAG")])],
    [("Яку швидкість навчання обрати?", [("uk/hyperparameters.md", "Швидкість навчання")]),
     ("А розмір батча?", [("uk/hyperparameters.md", "Розмір батча")]),
     ("Розкажи детальніше.", [("uk/hyperparameters.md", "")])],
    [("Як оцінити тонко налаштовану модель?", [("uk/evaluation.md", "")]),
     ("Навіщо для цього тестова вибірка?", [("uk/evaluation.md", "Відкладіть тестову")]),
     ("Коротше.", [("uk/evaluation.md", "Відкладіть тестову")])],
    [("Як розрахувати вартість тонкого налаштування?", [("uk/deployment-and-cost.md", "Як розрахувати")]),
     ("Наведи приклад.", [("uk/deployment-and-cost.md", "Розібраний приклад")]),
     ("А коли воно окупається?", [("uk/deployment-and-cost.md", "Точка беззбитковості")])],
    [("Що таке PEFT?", [(UK_LORA, "Параметрично ефективне")]),
     ("На які модулі спрямована LoRA?", [(UK_LORA, "На які модулі")]),
     ("Іншими словами?", [(UK_LORA, "На які модулі")])],
    [("Що таке кероване тонке налаштування?", [("uk/supervised-vs-unsupervised.md", "Кероване")]),
     ("А DPO?", [("uk/supervised-vs-unsupervised.md", "Налаштування на вподобаннях")]),
     ("Чому його використовують?", [("uk/supervised-vs-unsupervised.md", "Налаштування на вподобаннях")])],
]

# Written after the ranking weights (assistant/tutor/ranking.py) were chosen on DIALOGUES, and never used to choose them:
# the figure on these says how far the choice carries to conversations it was not fitted to.
HELD_OUT: list[list[tuple[str, list[tuple[str, str]]]]] = [
    [("What is a validation set?", [("glossary.md", "Training terms")]),
     ("How is it different from the test set?", [("evaluation.md", "Hold out a test split"),
                                                 ("glossary.md", "Training terms")]),
     ("Why?", [("evaluation.md", "Hold out a test split"), ("glossary.md", "Training terms")])],
    [("What is gradient accumulation?", [("hyperparameters.md", "Batch size")]),
     ("And warmup?", [("hyperparameters.md", "Warmup")]),
     ("Give me more detail.", [("hyperparameters.md", "")])],
    [("How do I serve LoRA adapters?", [("deployment-and-cost.md", "Serving LoRA adapters")]),
     ("Can I merge them into the base model?", [("deployment-and-cost.md", "Merging adapters"),
                                                (LORA, "LoRA adapters")]),
     ("Shorter.", [("deployment-and-cost.md", "Merging adapters"), (LORA, "LoRA adapters")])],
    [("Що таке розігрів швидкості навчання?", [("uk/hyperparameters.md", "Розігрів")]),
     ("А максимальна довжина послідовності?", [("uk/hyperparameters.md", "Максимальна довжина")]),
     ("Поясни простіше.", [("uk/hyperparameters.md", "Максимальна довжина")])],
    [("Що таке few-shot промптинг?", [("uk/alternatives.md", "Few-shot промптинг")]),
     ("Які в нього обмеження?", [("uk/alternatives.md", "Обмеження few-shot")]),
     ("Чому?", [("uk/alternatives.md", "Обмеження few-shot")])],
    [("Як працює тонке налаштування в Azure OpenAI?", [("uk/providers.md", "Тонке налаштування в Azure OpenAI"),
                                                      ("uk/providers.md", "Процес тонкого налаштування в Azure")]),
     ("А крок за кроком?", [("uk/providers.md", "Процес тонкого налаштування в Azure")]),
     ("Розкажи детальніше.", [("uk/providers.md", "")])],
]


def right(reply: dict, wanted: list[tuple[str, str]]) -> bool:
    first = reply["sources"][0] if reply["sources"] else None
    return first is not None and any(first["path"] == f"knowledge/{path}" and first["heading"].startswith(heading)
                                     for path, heading in wanted)


async def converse(tutor: Tutor, dialogue, together: bool) -> list[tuple[bool, float, dict]]:
    """Each turn: (right section first, seconds, the reply), in one conversation or each turn alone."""
    conversation, results = Conversation(), []
    for question, wanted in dialogue:
        started = time.perf_counter()
        reply = await tutor.ask(question, conversation=conversation if together else None)
        async for _ in reply:
            pass
        results.append((right(reply.to_dict(), wanted), time.perf_counter() - started, reply.to_dict()))
        reply.record(conversation)
    return results


def share(turns) -> tuple[float, float, int]:
    """Of the follow-up turns: the share from a right section, the median seconds of every turn, the count."""
    follow_ups = [turn for dialogue in turns for turn in dialogue[1:]]
    return (sum(ok for ok, _, _ in follow_ups) / len(follow_ups),
            statistics.median(seconds for dialogue in turns for _, seconds, _ in dialogue), len(follow_ups))


def show(dialogues, turns) -> None:
    for dialogue, results in zip(dialogues, turns):
        for (question, _), (ok, _, reply) in zip(dialogue, results):
            got = reply["sources"][0] if reply["sources"] else {"path": "-", "heading": "not covered"}
            print(f"{'ok  ' if ok else 'MISS'} [{reply['understood_as']:>9}] {question}  ->  {got['path']} › "
                  f"{got['heading'][:50]}  (searched: {reply['searched'][:60]})")
        print()


async def measure() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_env_file=None, data_dir=Path(tmp) / "data", backend="local")
        knowledge = KnowledgeBase(settings)
        knowledge.sync()
        tutor = Tutor(settings, knowledge)
        figures = {}
        for name, dialogues in (("written", DIALOGUES), ("held out", HELD_OUT)):
            for together in (True, False):
                turns = [await converse(tutor, dialogue, together) for dialogue in dialogues]
                figures[name, together] = share(turns)
                if together:
                    show(dialogues, turns)
    return figures


def run() -> dict:
    figures = asyncio.run(measure())
    for name in ("written", "held out"):
        (ours, ours_s, count), (alone, alone_s, _) = figures[name, True], figures[name, False]
        print(f"{name}: conversation (project) {ours:.0%} of {count} follow-ups from the right section, median "
              f"{ours_s:.2f} s a turn; each turn alone (baseline) {alone:.0%}, median {alone_s:.2f} s a turn")
    (ours, ours_s, count), (alone, alone_s, _) = figures["written", True], figures["written", False]
    held, held_alone = figures["held out", True][0], figures["held out", False][0]
    return {"name": f"Follow-ups from the right section, offline ({len(DIALOGUES)} dialogues, {count} follow-ups; "
                    f"median time a turn; held out: {len(HELD_OUT)} dialogues)",
            "project": f"{ours:.0%} ({ours_s:.2f} s); held out {held:.0%}",
            "baseline": f"{alone:.0%} ({alone_s:.2f} s), each turn alone; held out {held_alone:.0%}",
            "ratio": f"{ours / alone:.2f}x" if alone else "baseline got none"}


if __name__ == "__main__":
    print(run())
