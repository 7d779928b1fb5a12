"""The guided "Should I fine-tune?" check: questions, answers, and a recommendation with reasons.

Pure logic, shared by the chat (one button per option), the CLI and tests. Each option moves a score toward
or away from fine-tuning and carries the reason a learner will read; some options are blockers
(no baseline yet, a model you cannot fine-tune, fewer than 10 examples) that stop a "yes" outright.
The questions follow the course's decision path: use case, alternatives tried with a baseline,
costs (model availability, effort, compute, data), benefits.

Each text exists once per language: English in QUESTIONS and PHRASES["en"], Ukrainian in UKRAINIAN (keyed by
"question" and "question.option") and PHRASES["uk"]. Keys, scores and blockers exist only in QUESTIONS, so
every language gets the same verdict for the same answers:

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

    def in_language(self, language: str) -> Question:
        """This question with its topic, text, labels and reasons in `language` (English where one is missing);
        keys, scores and blockers stay as they are."""
        words = TRANSLATIONS.get(language, {})
        topic, text = words.get(self.key, (self.topic, self.text))
        options = []
        for option in self.options:
            label, reason = words.get(f"{self.key}.{option.key}", (option.label, option.reason))
            options.append(replace(option, label=label, reason=reason))
        return replace(self, topic=topic, text=text, options=tuple(options))


QUESTIONS: tuple[Question, ...] = (
    Question("use_case", "Use case", "What should the model do better?", (
        Option("format", "Follow a fixed output format or style", 2,
               "A consistent format or style is what fine-tuning teaches best."),
        Option("narrow", "One narrow task, many calls", 2,
               "A narrow, high-volume task pays back the cost of training."),
        Option("facts", "Know new or changing facts", -3,
               "New or changing facts belong in retrieval (RAG): fine-tuned facts go stale and are recalled "
               "unreliably."),
        Option("general", "Be better at everything", -2,
               "Broad, general improvement is the job of a bigger or newer base model, not a fine-tune."),
    )),
    Question("prompting", "Alternatives: prompt engineering",
             "Have you tried careful prompt engineering and measured a baseline?", (
        Option("yes_short", "Yes, with a baseline, and it falls short", 2,
               "You measured a prompt-engineering baseline and it falls short: there is something to beat."),
        Option("yes_good", "Yes, and it is good enough", -4,
               "Prompt engineering already meets your bar: fine-tuning would add cost without a clear gain."),
        Option("no", "Not yet", 0,
               "Try prompt engineering first and measure a baseline: without one you cannot tell whether "
               "fine-tuning helped.", blocker=True),
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
               "The model you need cannot be fine-tuned: choose a fine-tunable model first, and compare it to your "
               "baseline.", blocker=True),
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
               "Fine-tuning costs engineering time, training compute and often pricier hosting; with little budget, "
               "stay with prompting."),
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

# The Ukrainian of every question ("question": topic, text) and option ("question.option": label, reason).
UKRAINIAN: dict[str, tuple[str, str]] = {
    "use_case": ("Сценарій використання", "Що модель має робити краще?"),
    "use_case.format": ("Дотримуватися фіксованого формату чи стилю відповіді",
                        "Тонке налаштування найкраще навчає саме сталого формату чи стилю."),
    "use_case.narrow": ("Одне вузьке завдання, багато викликів",
                        "Вузьке завдання з великою кількістю викликів окупає вартість навчання."),
    "use_case.facts": ("Знати нові факти або факти, що змінюються",
                       "Нові факти чи факти, що змінюються, — справа пошуку (RAG): вивчені під час тонкого "
                       "налаштування факти застарівають, і модель відтворює їх ненадійно."),
    "use_case.general": ("Бути кращою в усьому",
                         "Загальне покращення в усьому — завдання більшої чи новішої базової моделі, а не тонкого "
                         "налаштування."),
    "prompting": ("Альтернативи: промпт-інжиніринг",
                  "Чи пробували ви ретельний промпт-інжиніринг і чи виміряли базовий рівень (baseline)?"),
    "prompting.yes_short": ("Так, базовий рівень виміряно, і його замало",
                            "Ви виміряли базовий рівень промпт-інжинірингу, і його недостатньо: є що перевершувати."),
    "prompting.yes_good": ("Так, і цього достатньо",
                           "Промпт-інжиніринг уже відповідає вашим вимогам: тонке налаштування додало б витрат без "
                           "очевидного виграшу."),
    "prompting.no": ("Ще ні",
                     "Спершу спробуйте промпт-інжиніринг і виміряйте базовий рівень: без нього ви не дізнаєтеся, "
                     "чи допомогло тонке налаштування."),
    "few_shot": ("Альтернативи: few-shot приклади", "Чи допомогли few-shot приклади в промпті?"),
    "few_shot.few_long": ("Так, але промпти стають довгими й дорогими",
                          "Few-shot приклади працюють, але кожен виклик оплачує їхні токени: тонке налаштування "
                          "переносить їх у ваги моделі."),
    "few_shot.few_not_enough": ("Недостатньо, навіть із багатьма прикладами",
                                "Few-shot приклади досягли своєї межі (контекстне вікно, послідовність): тонке "
                                "налаштування може навчитися на значно більшій кількості прикладів."),
    "few_shot.few_good": ("Так, і вартість прийнятна",
                          "Few-shot приклади вже працюють за прийнятну вартість: залиште їх, доки не зросте кількість "
                          "викликів."),
    "few_shot.few_untried": ("Не пробували",
                             "Few-shot приклади дешево спробувати, і часто вони закривають більшу частину розриву: "
                             "спробуйте їх, перш ніж навчати модель."),
    "rag": ("Альтернативи: RAG", "Чи залежить завдання від знань із ваших документів?"),
    "rag.not_needed": ("Ні, ідеться про поведінку чи формат",
                       "Розрив стосується поведінки, а не знань, тож сам лише пошук його не закриє."),
    "rag.rag_helps": ("Так, і пошук (RAG) це розв'язує",
                      "Пошук уже постачає потрібні знання: тонке налаштування для цього не потрібне."),
    "rag.rag_plus": ("Так, RAG дає факти, але формат чи тон досі не ті",
                     "RAG відповідає за факти, а тонке налаштування може виправити формат і тон поверх нього (вони "
                     "добре поєднуються)."),
    "model": ("Витрати: доступність моделі", "Чи можна тонко налаштувати модель, яку ви хочете використовувати?"),
    "model.available": ("Так: відкриті ваги або API тонкого налаштування в провайдера",
                        "Є базова модель, яку можна тонко налаштувати."),
    "model.unavailable": ("Ні, потрібну мені модель не можна тонко налаштувати",
                          "Потрібну вам модель не можна тонко налаштувати: спершу виберіть модель, яка це дозволяє, і "
                          "порівняйте її з вашим базовим рівнем."),
    "data": ("Витрати: дані", "Скільки якісних, перевірених прикладів завдання ви можете зібрати?"),
    "data.few": ("Менше 10",
                 "Менше 10 прикладів — це нижче за мінімум, який приймає будь-який провайдер: спершу зберіть дані."),
    "data.tens": ("Від 10 до 100",
                  "10–100 прикладів вистачить, щоб побачити, чи допомагає тонке налаштування, але для робочої "
                  "моделі цього часто замало."),
    "data.hundreds": ("Від 100 до 1 000",
                      "Сотні перевірених прикладів зазвичай дають чітке покращення на вузькому завданні."),
    "data.thousands": ("Понад 1 000", "Тисячі прикладів дають тонкому налаштуванню вдосталь матеріалу для навчання."),
    "effort": ("Витрати: зусилля та обчислення", "Який бюджет у вас є на навчання, оцінювання та хостинг?"),
    "effort.low": ("Дуже мало часу чи грошей",
                   "Тонке налаштування коштує інженерного часу, обчислень для навчання і часто дорожчого хостингу; "
                   "з малим бюджетом залишайтеся з промптингом."),
    "effort.moderate": ("Певний: кілька днів і помірний рахунок за обчислення",
                        "Помірного бюджету вистачить на LoRA або хостингове тонке налаштування невеликої моделі та "
                        "на її оцінювання."),
    "effort.ample": ("Достатній для кількох ітерацій і хостингу",
                     "Ви можете дозволити собі цикл «навчити — оцінити — повторити», якого потребує добре тонке "
                     "налаштування."),
    "benefit": ("Вигоди", "Яка вигода для вас найважливіша?"),
    "benefit.quality": ("Якість і послідовність",
                        "Якість і послідовність на одному завданні — вигода, яку тонке налаштування дає надійно."),
    "benefit.cost": ("Нижча вартість чи затримка кожного виклику",
                     "Коротші промпти або менша тонко налаштована модель знижують вартість і затримку кожного "
                     "виклику."),
    "benefit.extensible": ("Розширюваність: навчити нової навички чи тону",
                           "Нова навичка чи тон розширюють можливості моделі за межі того, чого досягає промптинг."),
    "benefit.unclear": ("Поки не знаю",
                        "Без чіткої вигоди, яку можна виміряти, тонке налаштування важко обґрунтувати чи оцінити."),
}

TRANSLATIONS: dict[str, dict[str, tuple[str, str]]] = {"uk": UKRAINIAN}  # English lives in QUESTIONS

# The check's fixed sentences: verdicts and summaries (by Recommendation.outcome), headings, chat and CLI texts.
PHRASES = Phrases(**{
    "en": {
        "verdict.not_yet": "Not yet",
        "summary.not_yet": "Fine-tuning may still be right, but something has to come first.",
        "verdict.yes": "Yes, fine-tune",
        "summary.yes": ("Your answers fit fine-tuning: start small (LoRA or a hosted fine-tune on a few hundred "
                        "examples), and keep your baseline to compare against."),
        "verdict.maybe": "Maybe: run a small experiment",
        "summary.maybe": ("The case is mixed. Fine-tune on a small dataset and compare against your best prompt/RAG "
                          "baseline before committing."),
        "verdict.no": "Probably not",
        "summary.no": "Your answers point to prompting, few-shot or RAG as the better investment now.",
        "heading.blockers": "**First, fix these:**",
        "heading.reasons": "**Why:**",
        "read_more": ("Read more: knowledge/when-to-fine-tune.md, knowledge/alternatives.md, "
                      "knowledge/deployment-and-cost.md."),
        "check.intro": ("**Should I fine-tune?** Eight quick questions about your use case, the alternatives you "
                        "tried, the costs and the benefits. Press the answer that fits best."),
        "check.stale": "That check was started in an earlier session. Type `/check` to start again.",
        "check.not_an_answer": "That is not one of this question's answers; press one of its buttons.",
        "cli.answer": "Your answer",
        "cli.number": "Please type a number from 1 to {count}",
    },
    "uk": {
        "verdict.not_yet": "Ще ні",
        "summary.not_yet": "Тонке налаштування ще може виявитися слушним, але спершу треба дещо зробити.",
        "verdict.yes": "Так, застосовуйте тонке налаштування",
        "summary.yes": ("Ваш випадок підходить для тонкого налаштування: почніть з малого (LoRA або хостингове тонке "
                        "налаштування на кількох сотнях прикладів) і збережіть базовий рівень для порівняння."),
        "verdict.maybe": "Можливо: проведіть невеликий експеримент",
        "summary.maybe": ("Картина неоднозначна. Спробуйте тонке налаштування на невеликому наборі даних і порівняйте "
                          "його з вашим найкращим базовим рівнем (промпт чи RAG), перш ніж вкладатися всерйоз."),
        "verdict.no": "Імовірно, ні",
        "summary.no": ("Ваші відповіді свідчать, що зараз краще вкласти зусилля в промптинг, few-shot приклади "
                       "чи RAG."),
        "heading.blockers": "**Спершу розв'яжіть це:**",
        "heading.reasons": "**Чому:**",
        "read_more": ("Докладніше: knowledge/uk/when-to-fine-tune.md, knowledge/uk/alternatives.md, "
                      "knowledge/uk/deployment-and-cost.md."),
        "check.intro": ("**Чи варто застосовувати тонке налаштування?** Вісім коротких запитань про ваш сценарій "
                        "використання, альтернативи, які ви вже спробували, витрати й вигоди. Натисніть відповідь, "
                        "яка підходить найкраще."),
        "check.stale": "Цю перевірку розпочато в попередньому сеансі. Введіть `/check`, щоб почати знову.",
        "check.not_an_answer": "Це не одна з відповідей на це запитання; натисніть одну з його кнопок.",
        "cli.answer": "Ваша відповідь",
        "cli.number": "Введіть число від 1 до {count}",
    },
})

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
