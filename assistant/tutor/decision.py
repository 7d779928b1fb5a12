"""The guided "Should I fine-tune?" check: questions, answers, and a recommendation with reasons.

Pure logic, shared by the chat (one button per option), the CLI and tests. Each option moves a score toward
or away from fine-tuning and carries the reason a learner will read; some options are blockers
(no baseline yet, a model you cannot fine-tune, fewer than 10 examples) that stop a "yes" outright.
The questions follow the course's decision path: use case, alternatives tried with a baseline,
costs (model availability, effort, compute, data), benefits.

Keys, scores and blockers exist only in QUESTIONS, so every language gets the same verdict for the same
answers; the texts are the catalog's (training/base/texts/<language>.toml): the questions' and options' in
[questions], the check's fixed sentences in [decision]:

    question.in_language("uk")              # the same question (keys, scores), its texts in Ukrainian
    recommend(answers, language="uk")       # the same verdict, with its reasons and headings in Ukrainian

    python -m assistant.tutor.decision format yes_short few_long not_needed available hundreds moderate cost
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from training.base.phrases import Phrases


@dataclass(frozen=True)
class Option:
    key: str
    score: int
    blocker: bool = False
    label: str = ""  # its texts, in_language()'s
    reason: str = ""


@dataclass(frozen=True)
class Question:
    key: str
    options: tuple[Option, ...]
    topic: str = ""  # its texts, in_language()'s
    text: str = ""

    def option(self, key: str) -> Option:
        for option in self.options:
            if option.key == key:
                return option
        raise KeyError(f"'{key}' is not an answer to '{self.key}'")

    def in_language(self, language: str) -> Question:
        """This question with its topic, text, labels and reasons in `language` (English where one is missing);
        keys, scores and blockers stay as they are."""
        options = tuple(replace(o, label=WORDS(f"{self.key}.{o.key}.label", language),
                                reason=WORDS(f"{self.key}.{o.key}.reason", language)) for o in self.options)
        return replace(self, topic=WORDS(f"{self.key}.topic", language), text=WORDS(f"{self.key}.text", language),
                       options=options)


WORDS = Phrases("questions")  # "question.topic", "question.text", "question.option.label", "question.option.reason"
QUESTIONS: tuple[Question, ...] = tuple(question.in_language("en") for question in (
    Question("use_case", (Option("format", 2), Option("narrow", 2), Option("facts", -3), Option("general", -2))),
    Question("prompting", (Option("yes_short", 2), Option("yes_good", -4), Option("no", 0, blocker=True))),
    Question("few_shot", (Option("few_long", 2), Option("few_not_enough", 1), Option("few_good", -2),
                          Option("few_untried", -1))),
    Question("rag", (Option("not_needed", 1), Option("rag_helps", -3), Option("rag_plus", 1))),
    Question("model", (Option("available", 0), Option("unavailable", 0, blocker=True))),
    Question("data", (Option("few", 0, blocker=True), Option("tens", 0), Option("hundreds", 1),
                      Option("thousands", 2))),
    Question("effort", (Option("low", -2), Option("moderate", 0), Option("ample", 1))),
    Question("benefit", (Option("quality", 1), Option("cost", 2), Option("extensible", 1), Option("unclear", -2))),
))

# The check's fixed sentences: verdicts and summaries (by Recommendation.outcome), headings, chat and CLI texts.
PHRASES = Phrases("decision")

_BY_KEY = {q.key: q for q in QUESTIONS}


def phrase(key: str, language: str = "en", **fields) -> str:
    """One of the check's fixed sentences in `language` (English where it has none), with `fields` filled in."""
    return PHRASES(key, language, **fields)


@dataclass
class Recommendation:
    outcome: str  # the decision itself, in no language: "yes", "maybe", "no" or "not_yet"
    score: int
    reasons: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    language: str = "en"

    @property
    def verdict(self) -> str:
        return phrase(f"verdict.{self.outcome}", self.language)

    @property
    def summary(self) -> str:
        return phrase(f"summary.{self.outcome}", self.language)

    def as_markdown(self) -> str:
        lines = [f"## {self.verdict}", "", self.summary, ""]
        if self.blockers:
            lines += [phrase("heading.blockers", self.language), *[f"- {b}" for b in self.blockers], ""]
        lines += [phrase("heading.reasons", self.language), *[f"- {r}" for r in self.reasons], "",
                  phrase("read_more", self.language)]
        return "\n".join(lines)


def next_question(answers: dict[str, str]) -> Question | None:
    return next((q for q in QUESTIONS if q.key not in answers), None)


def recommend(answers: dict[str, str], language: str = "en") -> Recommendation:
    """Turn a complete set of answers into a verdict with every reason behind it, its texts in `language`."""
    missing = [q.key for q in QUESTIONS if q.key not in answers]
    if missing:
        raise ValueError(f"unanswered: {', '.join(missing)}")
    chosen = [_BY_KEY[key].in_language(language).option(value) for key, value in answers.items() if key in _BY_KEY]
    score = sum(o.score for o in chosen)
    blockers = [o.reason for o in chosen if o.blocker]
    reasons = [o.reason for o in chosen if not o.blocker]
    if blockers:
        outcome = "not_yet"
    elif score >= 5:
        outcome = "yes"
    elif score >= 1:
        outcome = "maybe"
    else:
        outcome = "no"
    return Recommendation(outcome, score, reasons, blockers, language)


if __name__ == "__main__":
    import sys

    print(recommend(dict(zip((q.key for q in QUESTIONS), sys.argv[1:]))).as_markdown())
