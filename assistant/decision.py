"""The guided "Should I fine-tune?" check: questions, answers, and a recommendation with reasons.

Pure logic, shared by the chat (one button per option) and tests. Each option moves a score toward
or away from fine-tuning and carries the reason a learner will read; some options are blockers
(no baseline yet, a model you cannot fine-tune, fewer than 10 examples) that stop a "yes" outright.
The questions follow the course's decision path: use case, alternatives tried with a baseline,
costs (model availability, effort, compute, data), benefits.

    python -m assistant.decision format yes_short few_long not_needed available hundreds moderate cost
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    score: int
    reason: str
    blocker: bool = False


@dataclass(frozen=True)
class Question:
    key: str
    topic: str
    text: str
    options: tuple[Option, ...]

    def option(self, key: str) -> Option:
        for option in self.options:
            if option.key == key:
                return option
        raise KeyError(f"'{key}' is not an answer to '{self.key}'")


QUESTIONS: tuple[Question, ...] = (
    Question("use_case", "Use case", "What should the model do better?", (
        Option("format", "Follow a fixed output format or style", 2,
               "A consistent format or style is what fine-tuning teaches best."),
        Option("narrow", "One narrow task, many calls", 2,
               "A narrow, high-volume task pays back the cost of training."),
        Option("facts", "Know new or changing facts", -3,
               "New or changing facts belong in retrieval (RAG): fine-tuned facts go stale and are recalled unreliably."),
        Option("general", "Be better at everything", -2,
               "Broad, general improvement is the job of a bigger or newer base model, not a fine-tune."),
    )),
    Question("prompting", "Alternatives: prompt engineering", "Have you tried careful prompt engineering and measured a baseline?", (
        Option("yes_short", "Yes, with a baseline, and it falls short", 2,
               "You measured a prompt-engineering baseline and it falls short: there is something to beat."),
        Option("yes_good", "Yes, and it is good enough", -4,
               "Prompt engineering already meets your bar: fine-tuning would add cost without a clear gain."),
        Option("no", "Not yet", 0,
               "Try prompt engineering first and measure a baseline: without one you cannot tell whether fine-tuning helped.",
               blocker=True),
    )),
    Question("few_shot", "Alternatives: few-shot", "Did few-shot examples in the prompt help?", (
        Option("few_long", "Yes, but the prompts get long and costly", 2,
               "Few-shot works but every call pays for the examples' tokens: fine-tuning moves them into the weights."),
        Option("few_not_enough", "Not enough, even with many examples", 1,
               "Few-shot hit its limit (context window, consistency): fine-tuning can learn from far more examples."),
        Option("few_good", "Yes, and the cost is fine", -2,
               "Few-shot already works at an acceptable cost: keep it unless volume grows."),
        Option("few_untried", "Not tried", -1,
               "Few-shot prompting is cheap to try and often closes much of the gap: try it before training."),
    )),
    Question("rag", "Alternatives: RAG", "Does the task depend on knowledge from your documents?", (
        Option("not_needed", "No, it is about behaviour or format", 1,
               "The gap is behaviour, not knowledge, so retrieval alone will not close it."),
        Option("rag_helps", "Yes, and retrieval (RAG) solves it", -3,
               "Retrieval already supplies the knowledge: fine-tuning is not needed for that."),
        Option("rag_plus", "Yes, RAG supplies facts but format or tone is still off", 1,
               "RAG handles the facts; a fine-tune can fix format and tone on top of it (they combine well)."),
    )),
    Question("model", "Costs: model availability", "Can you fine-tune the model you want to use?", (
        Option("available", "Yes: open weights or a provider's fine-tuning API", 0,
               "A fine-tunable base model is available."),
        Option("unavailable", "No, the model I need cannot be fine-tuned", 0,
               "The model you need cannot be fine-tuned: choose a fine-tunable model first, and compare it to your baseline.",
               blocker=True),
    )),
    Question("data", "Costs: data", "How many good, reviewed examples of the task can you gather?", (
        Option("few", "Fewer than 10", 0,
               "Fewer than 10 examples is below the minimum any provider accepts: collect data first.", blocker=True),
        Option("tens", "10 to 100", 0,
               "10-100 examples is enough to see whether fine-tuning helps, often not for a production model."),
        Option("hundreds", "100 to 1,000", 1,
               "Hundreds of reviewed examples usually give a clear improvement on a narrow task."),
        Option("thousands", "More than 1,000", 2,
               "Thousands of examples give fine-tuning plenty to learn from."),
    )),
    Question("effort", "Costs: effort and compute", "What budget do you have for training, evaluation and hosting?", (
        Option("low", "Very little time or money", -2,
               "Fine-tuning costs engineering time, training compute and often pricier hosting; with little budget, stay with prompting."),
        Option("moderate", "Some: a few days and a modest compute bill", 0,
               "A modest budget covers a LoRA or hosted fine-tune of a small model and its evaluation."),
        Option("ample", "Enough for iterations and hosting", 1,
               "You can afford the train-evaluate-iterate loop that good fine-tunes need."),
    )),
    Question("benefit", "Benefits", "Which benefit matters most to you?", (
        Option("quality", "Quality and consistency", 1,
               "Quality and consistency on one task is a benefit fine-tuning reliably delivers."),
        Option("cost", "Lower cost or latency per call", 2,
               "Shorter prompts or a smaller fine-tuned model cut cost and latency per call."),
        Option("extensible", "Extensibility: teach a new skill or tone", 1,
               "Teaching a new skill or tone extends what the model does beyond prompting."),
        Option("unclear", "Not sure yet", -2,
               "Without a clear benefit to measure, a fine-tune is hard to justify or evaluate."),
    )),
)

_BY_KEY = {q.key: q for q in QUESTIONS}


@dataclass
class Recommendation:
    verdict: str
    summary: str
    score: int
    reasons: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)

    def as_markdown(self) -> str:
        lines = [f"## {self.verdict}", "", self.summary, ""]
        if self.blockers:
            lines += ["**First, fix these:**", *[f"- {b}" for b in self.blockers], ""]
        lines += ["**Why:**", *[f"- {r}" for r in self.reasons], "",
                  "Read more: knowledge/when-to-fine-tune.md, knowledge/alternatives.md, knowledge/deployment-and-cost.md."]
        return "\n".join(lines)


def next_question(answers: dict[str, str]) -> Question | None:
    return next((q for q in QUESTIONS if q.key not in answers), None)


def recommend(answers: dict[str, str]) -> Recommendation:
    """Turn a complete set of answers into a verdict with every reason behind it."""
    missing = [q.key for q in QUESTIONS if q.key not in answers]
    if missing:
        raise ValueError(f"unanswered: {', '.join(missing)}")
    chosen = [_BY_KEY[key].option(value) for key, value in answers.items() if key in _BY_KEY]
    score = sum(o.score for o in chosen)
    blockers = [o.reason for o in chosen if o.blocker]
    reasons = [o.reason for o in chosen if not o.blocker]
    if blockers:
        verdict, summary = "Not yet", "Fine-tuning may still be right, but something has to come first."
    elif score >= 5:
        verdict, summary = "Yes, fine-tune", ("Your answers fit fine-tuning: start small (LoRA or a hosted fine-tune "
                                              "on a few hundred examples), and keep your baseline to compare against.")
    elif score >= 1:
        verdict, summary = "Maybe: run a small experiment", ("The case is mixed. Fine-tune on a small dataset and "
                                                              "compare against your best prompt/RAG baseline before committing.")
    else:
        verdict, summary = "Probably not", "Your answers point to prompting, few-shot or RAG as the better investment now."
    return Recommendation(verdict, summary, score, reasons, blockers)


if __name__ == "__main__":
    import sys

    print(recommend(dict(zip((q.key for q in QUESTIONS), sys.argv[1:]))).as_markdown())
