"""A tutoring conversation: the turns so far, and what a new message means in their light.

One Conversation per chat thread. The chat keeps it in its session, so it is saved with the thread and back when
the learner resumes the thread from the sidebar; `tutor chat` keeps one per run. It is bounded: the last MAX_TURNS
turns, and what a model sees again of them is cut to HISTORY_TOKENS (`Conversation.history`).

    conversation = Conversation()
    understood = understand(conversation, "And what does QLoRA add to it?")
    understood.kind, understood.query, understood.follow_up_of     # "switch", "And what does QLoRA add to LoRA?", 0
    conversation.add(understood, reply.sources, reply.text)      # after the answer

Offline (the 135M model can't condense a question), a message is understood by rules, measured by
benchmarks/conversation.py against answering each message alone:
- a request about the last answer (simpler, example, why, more, shorter, in other words; English and Ukrainian)
  is answered from that answer's passages or their neighbours (assistant/tutor/follow_ups.py);
- a message naming a topic of the notes that the last turn did not is a switch: it is retrieved as it is, with a
  pronoun in it standing for the last topic, which keeps the relation ("And what does QLoRA add to it?");
- a message built on a pronoun or an ellipsis ("its rank", "and for QLoRA?", "його", "а ...?"), or one naming no
  topic of its own, is a follow-up: retrieved with the last topic carried in;
- anything else, and every first message, is a new question.
With an OpenAI-compatible or Azure model, the model condenses the follow-up from the history instead (Tutor).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from assistant.retrieval.knowledge import Passage, question_language
from training.base.settings import PROJECT_ROOT

MAX_TURNS = 8
HISTORY_TOKENS = 1200  # of earlier turns, as a model sees them again (estimated at 4 characters a token)
ANSWER_CHARS = 1500  # of each answer, as kept
NOTES = PROJECT_ROOT / "knowledge"

Kind = Literal["new", "follow_up", "switch", "simpler", "example", "why", "more", "shorter", "rephrase"]
REQUESTS = ("simpler", "example", "why", "more", "shorter", "rephrase")

# Requests about the last answer. Checked in this order: "why is that simpler?" asks why.
_REQUEST_PATTERNS: dict[str, dict[str, str]] = {
    "en": {
        "why": r"^\s*(why|how come)\b|\bwhat for\b|\bwhat is the reason\b",
        "simpler": r"\b(simpler|more simply|simply|simple (terms|words|way)|plain (english|words)|eli5|easier|"
                   r"like i'?m (five|5|new))\b",
        "example": r"\b(an example|another example|some examples|example please|examples? (of|with|for|from)|"
                   r"for instance|show me|illustrate)\b|^\W*examples?\W*$",
        "shorter": r"\b(shorter|briefly|in brief|tl;? ?dr|in one sentence|short version|sum (it|that) up)\b",
        "rephrase": r"\b(in other words|other words|rephrase|put (it|that) (differently|another way)|another way|"
                    r"say (it|that) differently|(don'?t|didn'?t|do not) (understand|get))\b",
        "more": r"\b(more detail|more details|tell me more|go on|continue|elaborate|in (more )?depth|more about "
                r"(it|that|this)|expand on|what else|keep going)\b",
    },
    "uk": {
        "why": r"^\s*(чому|навіщо|для чого|з якої причини)\b",
        "simpler": r"(простіше|простими словами|простіш|легше|зрозуміліше|для початківц)",
        "example": r"(наведи приклад|дай приклад|покажи|проілюструй|приклад (з|для|до|на)|^\W*приклад\W*$)",
        "shorter": r"(коротше|коротко|стисло|одним реченням|у двох словах)",
        "rephrase": r"(іншими словами|по-іншому|інакше|перефразуй|не зрозумі|не розумію)",
        "more": r"(детальніше|докладніше|більше про|розкажи ще|продовж|ще про це|а далі|що ще)",
    },
}
_PRONOUNS = {
    "en": r"\b(it|its|it's|this|that|these|those|they|them|their|such)\b",
    "uk": r"(?<![\w'])(його|її|їх|їхн\w*|це|цей|ця|ці|цього|цьому|цим|цієї|цю|цих|він|вона|воно|вони|ним|ній|нього|"
          r"неї|ними|таке|такий|такі)(?![\w'])",
}
_ELLIPSIS = {
    "en": r"^\s*(and|but|also|so|what about|how about|and what about|plus)\b",
    "uk": r"^\s*(а|і|й|та|але|ну а|а як щодо|а що з|що щодо)(?![\w'])",
}
# Topics a message can name, beside the glossary's terms and the notes' acronyms (LoRA, PEFT, JSONL...): the
# subjects of the notes' sections, in each language's words (matched by the first letters of each word).
_TOPICS = {
    "en": """overfitting; catastrophic forgetting; forgetting; learning rate; batch size; gradient accumulation; warmup;
epoch; hyperparameter; sequence length; prompt engineering; few-shot; retrieval-augmented generation; fine-tuning cost;
cost; deployment; deploy; adapter; rank; alpha; dropout; quantisation; quantization; target modules; merging adapters;
validation loss; training loss; token accuracy; test split; baseline; evaluation; metric; instruction tuning;
continued pre-training; preference tuning; dataset; training data; examples; pre-training; prompting; full fine-tuning;
provider; self-hosting; checkpoint; base model; recipe; format; chat format; loss curve; metrics""",
    "uk": """перенавчання; катастрофічне забування; забування; швидкість навчання; розмір батча; накопичення градієнтів;
розігрів; епох; гіперпараметр; довжина послідовності; промпт-інженерія; few-shot; генерація з доповненням пошуком;
вартість; розгортання; адаптер; ранг; альфа; квантування; цільові модулі; злиття адаптерів; валідаційні втрати;
втрати навчання; точність токенів; тестова вибірка; базов; оцінювання; метрик; інструктивне налаштування;
продовжене попереднє навчання; налаштування за вподобаннями; набір даних; дані; приклад; попереднє навчання;
промптинг; повне тонке налаштування; провайдер; контрольна точка; рецепт; формат; метрик; криві втрат""",
}
# Topics that are the setting of an example, not a new subject: "an example with my recipe dataset".
_CONTEXT = {"en": {"examples", "dataset", "recipe", "training data"}, "uk": {"приклад", "набір даних", "дані", "рецепт"}}
_ACRONYM = re.compile(r"\b[A-Za-z]*[A-Z][a-z]*[A-Z][A-Za-z0-9]*\b")  # LoRA, QLoRA, PEFT, JSONL, RLHF, IA3
_GLOSSARY_TERM = re.compile(r"^\*\*(.+?)\.\*\*", re.M)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*|[\u0400-\u04ff][\u0400-\u04ff'-]*")  # Latin or Cyrillic words: "什么是LoRA" names LoRA


class Turn(BaseModel):
    """One question and its answer, as the next message may build on it."""

    question: str
    kind: Kind = "new"
    query: str = ""  # what retrieval searched
    topic: str = ""  # the terms the turn was about ("LoRA"), carried into a follow-up
    language: str = "en"
    sources: list[Passage] = Field(default_factory=list)  # the first is the key passage
    answer: str = ""


class Understood(BaseModel):
    """What a message was understood as: its kind, what to retrieve, the turn it builds on (an index)."""

    question: str
    kind: Kind
    query: str
    language: str
    topic: str
    follow_up_of: int | None = None


class Conversation(BaseModel):
    """The turns of one chat, oldest first; bounded in turns and in what is kept of each answer."""

    turns: list[Turn] = Field(default_factory=list)

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def add(self, understood: Understood, sources: list[Passage], answer: str) -> Turn:
        turn = Turn(question=understood.question, kind=understood.kind, query=understood.query,
                    topic=understood.topic or topic_of(sources[0].heading if sources else "", understood.language),
                    language=understood.language, sources=sources[:3], answer=answer[:ANSWER_CHARS])
        self.turns = [*self.turns, turn][-MAX_TURNS:]
        return turn

    def history(self, budget: int = HISTORY_TOKENS) -> list[dict]:
        """The latest turns as chat messages (user, assistant), oldest first, within `budget` tokens."""
        kept, used = [], 0
        for turn in reversed(self.turns):
            cost = (len(turn.question) + len(turn.answer)) // 4 + 8
            if used + cost > budget:
                break
            kept[:0] = [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer}]
            used += cost
        return kept


def _stems(text: str) -> list[str]:
    return [word[:5] for word in _WORD.findall(text.lower())]


@functools.cache
def known_terms(language: str, knowledge: Path = NOTES) -> tuple[str, ...]:
    """The topics a message can name in a language, longest first: the section subjects above, the glossary's
    terms (both names of a Ukrainian one: "Ранг LoRA (LoRA rank)") and the notes' acronyms."""
    root = knowledge / ("uk" if language == "uk" else "")
    notes = "\n".join(path.read_text(encoding="utf-8") for path in sorted(root.glob("*.md")))
    glossary = (root / "glossary.md").read_text(encoding="utf-8") if (root / "glossary.md").exists() else ""
    terms = {t.strip() for t in _TOPICS[language].replace("\n", " ").split(";")}
    for term in _GLOSSARY_TERM.findall(glossary):
        terms.update(part.strip(" )") for part in term.split("("))
    terms.update(_ACRONYM.findall(notes))
    return tuple(sorted((t for t in terms if len(t) > 2), key=len, reverse=True))


def named_terms(text: str, language: str, knowledge: Path = NOTES) -> list[str]:
    """The known topics a text names, longest first, none inside another ("QLoRA" but not its "LoRA")."""
    words = _stems(text)
    exact = set(_WORD.findall(text))
    found: list[str] = []
    for term in known_terms(language, knowledge):
        if is_acronym(term):  # the word itself, any case ("lora")
            hit = term.lower() in {w.lower() for w in exact}
        else:
            stems = _stems(term)
            hit = any(words[i:i + len(stems)] == stems for i in range(len(words) - len(stems) + 1))
        if hit and not any(_inside(term, longer) for longer in found):  # "LoRA" of "LoRA rank", not of "QLoRA"
            found.append(term)
    return found


def is_acronym(term: str) -> bool:
    """LoRA, QLoRA, PEFT, DPO: a subject of its own, matched as a whole word."""
    return bool(_ACRONYM.fullmatch(term)) or term.isupper()


def _inside(term: str, longer: str) -> bool:
    words, outer = term.lower().split(), longer.lower().split()
    return any(outer[i:i + len(words)] == words for i in range(len(outer) - len(words) + 1))


def topic_of(text: str, language: str, knowledge: Path = NOTES) -> str:
    """The (first two) subjects a text names: not the setting of an example ("examples", "dataset")."""
    return ", ".join([t for t in named_terms(text, language, knowledge) if t.lower() not in _CONTEXT[language]][:2])


def request_kind(message: str, language: str) -> str | None:
    lowered = message.lower()
    return next((kind for kind, pattern in _REQUEST_PATTERNS[language].items() if re.search(pattern, lowered)), None)


def understand(conversation: Conversation, question: str, language: str | None = None,
               knowledge: Path = NOTES) -> Understood:
    """What `question` means after the conversation so far (the rules in the module's docstring)."""
    last = conversation.last
    if language is None:  # "А QLoRA?" is mostly Latin, and Ukrainian after a Ukrainian turn
        language = question_language(question)
        if last is not None and last.language == "uk" and re.search("[\u0400-\u04ff]", question):
            language = "uk"
    topic = topic_of(question, language, knowledge)
    if last is None:
        return Understood(question=question, kind="new", query=question, language=language, topic=topic)
    index = len(conversation.turns) - 1
    previous = last.topic if last.language == language else topic_of(last.query, language, knowledge)
    primary = previous.split(", ")[0]
    named = [t for t in named_terms(question, language, knowledge) if t.lower() not in _CONTEXT[language]]
    new_topic = bool(named) and not set(named) <= set(named_terms(previous, language, knowledge))
    lowered = question.lower()
    pronoun = re.search(_PRONOUNS[language], lowered)
    refers = bool(pronoun or re.search(_ELLIPSIS[language], lowered))
    short = len([w for w in _WORD.findall(lowered) if len(w) > 3]) <= 3

    def understood(kind: str, query: str, about: str, of: int | None = index) -> Understood:
        return Understood(question=question, kind=kind, query=query, language=language, topic=about, follow_up_of=of)

    kind = request_kind(question, language)
    if kind == "example" or (kind and not new_topic):  # "an example with my recipe dataset": still about the topic
        about = ", ".join(named) if new_topic else previous
        return understood(kind, f"{about} {question}".strip(), about)
    if new_topic:
        if pronoun and primary:  # the pronoun stands for the last topic: "what does QLoRA add to it?", "its rank"
            query = re.sub(_PRONOUNS[language], primary, question, count=1, flags=re.I)
            # The new term leads when it is a subject of its own (an acronym: QLoRA); else it is a detail of the
            # last topic ("its rank", "spot it in the loss curves"), which stays first.
            leads = any(is_acronym(term) for term in named)
            return understood("switch", query, ", ".join([*named, primary] if leads else [primary, *named]))
        if refers:  # "And DPO?": the new topic, beside the last one
            beside = f" ({primary})" if primary else ""
            return understood("switch", f"{', '.join(named)}{beside}: {question}", ", ".join(named))
        return understood("new", question, ", ".join(named), None)
    if (refers or short or not named) and previous:
        return understood("follow_up", f"{primary}: {question}", previous)
    return understood("new", question, topic or previous, None)
