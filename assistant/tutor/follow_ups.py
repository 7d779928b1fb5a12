"""Answers to requests about the last answer: simpler, an example, why, more, shorter, in other words.

Offline, each is built from the last answer's passages or their neighbours in the notes, so a request about the
last answer is never "not in my notes":
- simpler: the glossary's definition of the topic, then the shortest whole sentences of the key passage;
- example: the nearest worked example to the topic (a section named as one, or the recipe walkthrough);
- why: the sentences of the last passages that give reasons ("because", "so that", "щоб"...), closest first;
- more: the next passage of the same section, or else the section after it;
- shorter: the key passage's first sentence or two;
- rephrase: the glossary's definition and the sentence of each other passage closest to the topic.

    sources, text = answer_request(knowledge, understood, conversation.last)   # blocking: run it in a thread

Every sentence shown is the notes' own, and the sources say where each came from.
"""

from __future__ import annotations

import re

from assistant.i18n import text
from assistant.retrieval.grounding import best_sentence, sentences
from assistant.retrieval.knowledge import KnowledgeBase, Passage
from assistant.retrieval.lexical import LexicalIndex
from assistant.tutor.conversation import Turn, Understood, named_terms

EXAMPLE_WORD = {"en": "example", "uk": "приклад"}
SAME_FILE = 1.5  # an example in the notes the last answer came from is the one it asks for
_REASONS = {
    "en": r"\b(because|so that|so the|since|which means|this is why|that is why|to avoid|to keep|to reduce|to save|"
          r"in order to|otherwise|therefore|thus|reason|saves|cuts|lets|allows|helps|prevents)\b",
    "uk": r"(?<!\w)(бо|тому що|оскільки|щоб|тому|адже|через те|завдяки|дозволяє|зменшує|економить|заощаджує|"
          r"інакше|запобігає|допомагає|причина)(?!\w)",
}
_DEFINITION = re.compile(r"^\*\*(.+?)\.\*\*\s*(.+)$", re.M)


def answer_request(knowledge: KnowledgeBase, understood: Understood, last: Turn) -> tuple[list[Passage], str]:
    """The sources and the markdown answer to a request about `last` (its kind in `understood.kind`)."""
    language, key = understood.language, last.sources[0]
    kind = understood.kind
    if kind == "example":
        return _example(knowledge, understood, key)
    if kind == "more":
        return _more(knowledge, key, language)
    if kind == "why":
        return _why(understood, last.sources, language)
    if kind == "shorter":
        return [key], _titled(key, " ".join(_whole(key.text)[:2]))
    definition = _definition(knowledge, understood.topic, language)
    if kind == "simpler":
        shortest = sorted(_whole(key.text), key=len)[:2]
        body = " ".join(s for s in _whole(key.text) if s in shortest)  # in the passage's order
        parts = [f"> {definition[1]}"] if definition else []
        sources = [key, definition[0]] if definition else [key]
        return sources, _titled(key, "\n\n".join([*parts, body]))
    others = [p for p in last.sources[1:] if p.heading != key.heading]
    lines = [f"- {best_sentence(understood.topic or understood.question, p, language)} [{i}]"
             for i, p in enumerate(others, 2)]
    head = f"> {definition[1]} [{len(others) + 2}]" if definition else " ".join(_whole(key.text)[:1]) + " [1]"
    sources = [key, *others, *([definition[0]] if definition else [])]
    return sources, f"**{text('follow.rephrase', language)}** [1]\n\n" + "\n".join([head, *lines])


def _titled(passage: Passage, body: str) -> str:
    return f"**{passage.heading}** [1]\n\n{body.strip()}"


def _whole(passage_text: str) -> list[str]:
    """The passage's whole sentences of some length (no headings, list stubs or table rows)."""
    return [s for s in sentences(passage_text) if len(s.split()) >= 6 and not s.startswith(("|", "#"))]


def _definition(knowledge: KnowledgeBase, topic: str, language: str) -> tuple[Passage, str] | None:
    """The glossary's definition of the topic's first term: (its passage, "**Term.** definition")."""
    folder = "knowledge/uk/" if language == "uk" else "knowledge/"
    wanted = {t.lower() for t in named_terms(topic, language, knowledge.root)}
    for passage in knowledge.file_passages(f"{folder}glossary.md"):
        for term, definition in _DEFINITION.findall(passage.text):
            names = {part.strip(" )").lower() for part in term.split("(")}
            if names & wanted or any(t in n.split() for t in wanted for n in names):
                return passage, f"**{term}.** {definition}"
    return None


def _examples(knowledge: KnowledgeBase, language: str) -> list[Passage]:
    """The notes' worked examples: every section named as one ("An example training line", "An example recipe
    and training line" in the recipe walkthrough, "Worked cost example")."""
    folder = "knowledge/uk/" if language == "uk" else "knowledge/"
    found = []
    for path in sorted(knowledge.root.glob("uk/*.md" if language == "uk" else "*.md")):
        passages = knowledge.file_passages(folder + path.name)
        found += [p for p in passages if EXAMPLE_WORD[language] in p.heading.lower()]
    return found


def _example(knowledge: KnowledgeBase, understood: Understood, key: Passage) -> tuple[list[Passage], str]:
    """The worked example closest to the topic and the request, in the learner's language."""
    from assistant.retrieval.grounding import similarities

    candidates = _examples(knowledge, understood.language) or [key]
    query = f"{understood.topic or key.heading}: {understood.question}"
    texts = [p.embedded_text for p in candidates]
    scores = similarities(query, texts) if understood.language == "en" else LexicalIndex(texts).scores(query)
    scores = [score * (SAME_FILE if p.path == key.path else 1) for score, p in zip(scores, candidates)]
    example = candidates[scores.index(max(scores))]
    lead = "\n\n".join(example.text.split("\n\n")[:3])
    note = text("follow.example_of", understood.language, topic=understood.topic or key.heading)
    return [example, key], f"**{example.heading}** [1]\n\n_{note}_ [2]\n\n{lead}"


def _more(knowledge: KnowledgeBase, key: Passage, language: str) -> tuple[list[Passage], str]:
    """The passage after the key one in its file: the rest of its section, or else the next section."""
    passages = knowledge.file_passages(key.path)
    here = next((i for i, p in enumerate(passages) if p.text == key.text), None)
    following = passages[here + 1] if here is not None and here + 1 < len(passages) else None
    if following is None:
        return [key], _titled(key, " ".join(_whole(key.text)[2:6]) or key.text)
    note = "" if following.heading == key.heading else f"_{text('follow.next_section', language)}_\n\n"
    return [following, key], f"**{following.heading}** [1]\n\n{note}{following.text.strip()}"


def _why(understood: Understood, passages: list[Passage], language: str) -> tuple[list[Passage], str]:
    """The reasons the last passages give, the ones closest to the question first (at most three)."""
    from assistant.retrieval.grounding import similarities

    found = [(i, s) for i, p in enumerate(passages, 1) for s in _whole(p.text)
             if re.search(_REASONS[language], s.lower())]
    found = found or [(1, s) for s in _whole(passages[0].text)[:3]]
    texts = [s for _, s in found]
    question = f"{understood.topic} {understood.question}"
    scores = similarities(question, texts) if language == "en" else LexicalIndex(texts).scores(question)
    ranked = sorted(zip(scores, found), key=lambda pair: pair[0], reverse=True)[:3]
    lines = [f"- {sentence} [{i}]" for _, (i, sentence) in sorted(ranked, key=lambda pair: pair[1][0])]
    return passages, f"**{text('follow.why', language)}** [1]\n\n" + "\n".join(lines)
