"""The app's own fixed texts in each language it speaks: English (the default) and Ukrainian.

    text("tutor.sources", "uk", panel="повні уривки")    # "**Джерела** (повні уривки)"
    language_of("uk-UA")                                 # "uk": Chainlit's browser language, to one of LANGUAGES
    text("tutor.not_covered", "uk", topics="LoRA; ...")  # fields filled with str.format

A text missing in a language falls back to English; a test keeps both catalogs complete.
"""

from __future__ import annotations

from training.base.phrases import Phrases

LANGUAGES = ("en", "uk")

CATALOG = Phrases(**{
    "en": {
        "app.welcome": """I teach LLM fine-tuning by explaining it and, step by step, by doing it.

- **Ask me anything about fine-tuning**: what it is, when it pays off, LoRA/PEFT, data, hyperparameters, evaluation, cost. \
Every answer is grounded in this project's notes and shows its **sources**.
- **Should I fine-tune?** A guided check of your use case, the alternatives you tried, costs and benefits, \
ending in a recommendation with reasons. Type `/check` or press the starter.
- **Prepare the recipe dataset** (`/prepare`): build train/validation/test chat JSONL from the bundled recipes \
or your RecipeNLG CSV, validated like OpenAI's data-prep checks, with token counts and a cost estimate. \
Attach a `.jsonl` to validate your own file.
- **Choose a base model** (`/models`): open models from the Hugging Face Hub with their size, license and what they \
need on this machine, downloaded when you pick one.
- **Fine-tune locally** (`/train`): LoRA on the embedded model, with live loss, a chart, cancel and resume. \
Or on **Azure OpenAI** (`/train azure`) or **OpenAI** (`/train openai`) when configured: upload, start, follow and \
cancel the job; an Azure fine-tune is deployed for you, or you name your deployment with `/deployed NAME`. \
Set hyperparameters in the settings next to the message box.
- **Compare** (`/compare`): your fine-tuned model against a RAG baseline (the base model with retrieved \
examples), side by side with tokens and latency, and a held-out evaluation in numbers.

Model: **{model}**. Change it and the temperature in the settings next to the message box.""",
        "tutor.not_covered": ("I couldn't find that in my notes, so I won't guess. I can explain these topics: "
                              "{topics}. Try asking, for example, “What is LoRA?”."),
        "tutor.nothing_yet": ("Ask me about a topic first, for example “What is LoRA?”; then I can say it more simply, "
                              "give an example, say why or go on."),
        "follow.rephrase": "In other words",
        "follow.why": "Why, in the notes' words",
        "follow.example_of": "A worked example from the notes, for {topic}:",
        "follow.next_section": "The notes go on in the next section:",
        "tutor.english_only": ("_The offline model writes English only. For answers in your language, set "
                               "OPENAI_API_KEY or OPENAI_BASE_URL (see the README)._"),
        "tutor.also_in_notes": "Also in the notes:",
        "tutor.sources": "**Sources** ({panel})",
        "tokens.button": "See what is trained",
        "tokens.previous": "◀ Previous example",
        "tokens.next": "Next example ▶",
        "tokens.not_yours": "That dataset is not among yours: prepare one with /prepare.",
        "tokens.intro": ("**Example {line} of `{name}`'s training file**, as the trainer sees it after the model's "
                         "chat template. The **highlighted** tokens count in the loss: the assistant's answer and "
                         "its end-of-turn mark, so the model learns to answer and to stop. The rest (system prompt, "
                         "user turn, template markup) is only read as context.\n\n"
                         "{total} tokens; max_length {max_length} keeps {kept}: **{trained} trained**, {context} "
                         "context. {cut}"),
        "tokens.cut": "**{cut} tokens are cut off** at max_length: training never sees them.",
        "tokens.nothing_cut": "Nothing is cut.",
        "tokens.legend.trained": "trained", "tokens.legend.context": "context only",
        "tokens.legend.cut": "cut at max_length",
        "tokens.nothing_trained": ("⚠️ Nothing in this example is trained: its last message must be the "
                                   "assistant's answer, and some of it must fit in max_length."),
        # --- app.py: commands, settings, fixed replies
        "app.command.check": "Should I fine-tune? A guided check",
        "app.command.prepare": "Prepare the recipe dataset (train/validation/test JSONL)",
        "app.command.train": "Fine-tune on a prepared dataset (locally with LoRA, `/train azure`, `/train openai`)",
        "app.command.deployed": "Name the deployment you made of a fine-tune: `/deployed NAME`",
        "app.command.compare": "A/B chat: a fine-tuned model vs the RAG baseline",
        "app.command.models": "Choose the base model to fine-tune: open models from the Hugging Face Hub",
        "app.command.quiz": "Check my understanding: a short quiz with hints (`/quiz TOPIC`, `/quiz progress`)",
        "models.title": "**Base models you can fine-tune here**, each with what it needs on this machine "
                        "(default settings on your latest dataset):",
        "models.offline": "_The Hugging Face Hub can't be reached from this server, so only the models already here "
                          "are offered._",
        "models.shared": "_On this shared server the instructor chose these models._",
        "models.type_any": "_Or type any Hub model: `/models OWNER/NAME`._",
        "models.no_dataset": "_Prepare a dataset (`/prepare`) to see how much memory and time each would need._",
        "models.parameters": "{billions:.2f} B parameters",
        "models.gated": "gated 🔒 (accept its license on the Hub, set HF_TOKEN)",
        "models.here": "downloaded ✓",
        "models.to_download": "{size:.1f} GB to download",
        "models.use": "Use {name}",
        "models.downloading": "Downloading `{model}`: {bar} ({done:,.0f} of {total:,.0f} MB)",
        "models.downloaded": "`{model}` is downloaded ✓",
        "models.cannot_download": "`{model}` is not on this server and the Hugging Face Hub can't be reached from it, "
                                  "so it can't be downloaded now.",
        "models.ready": "**`{model}`** is ready. Fine-tune it on one of your datasets:",
        "models.ready_no_dataset": "**`{model}`** is ready. Prepare a dataset (`/prepare`), then `/train base={model}`.",
        "models.finetune": "Fine-tune it on {name}",
        "app.not_configured": "not configured ({error})",
        "app.setting.backend": "Tutor model",
        "app.setting.backend_help": ("The offline model runs in this process; OpenAI-compatible needs OPENAI_API_KEY "
                                     "or OPENAI_BASE_URL."),
        "app.setting.temperature": "Temperature",
        "app.bad_backend": "⚠️ That model choice is not one this app offers.",
        "app.keep_model": "⚠️ {reason}\n\nI keep using the current model until then.",
        "app.back_to_tutor": "Back to the tutor: ask me anything about fine-tuning.",
        "app.failed": "⚠️ Something went wrong on my side (the details are in the server log). Please try again.",
        "app.passages": "full passages",
        "app.passages_of": "full passages {number}",
        # --- actions.py: refusals and failures of any button or command
        "actions.refused": "⚠️ That button's data was not what this app sent, so I did nothing.",
        "actions.unexpected": ("⚠️ Something went wrong on my side (the details are in the server log). Nothing was "
                               "lost."),
        "actions.io_error": ("⚠️ The server could not read or write a file ({reason}). Nothing was lost; try again, or "
                             "tell your instructor."),
        "actions.not_a_setting": "`{word}` is not a setting: write settings like `epochs=2`.",
        "actions.no_account": "Your account no longer exists on this server: ask your instructor.",
        # --- dataset_flow.py and uploads.py
        "prepare.unknown_setting": ("I don't know the setting `{name}`. You can set: train, validation (val), test, "
                                    "seed."),
        "prepare.bad_sizes": "Those sizes can't be used",
        "prepare.whole_numbers": "Sizes and seed are whole numbers.",
        "prepare.offer": ("**Prepare the recipe dataset** (the OpenAI cookbook's recipe assistant: extract the generic "
                          "ingredients of a recipe).\n\nSplits train / validation / test: **{sizes}**, seed "
                          "**{seed}**. Change them with `/prepare train=200 validation=50 test=50 seed=7`.\n\n"
                          "Use the bundled sample, or attach your own file with the paperclip: a RecipeNLG-format "
                          "`.csv` or a chat `.jsonl` to validate and split."),
        "prepare.sample_button": "Use the bundled sample ({count} recipes)",
        "prepare.hub_button": "Use the Hub dataset {name}",
        "prepare.hub_reading": "Reading the Hub dataset `{name}`: {rows:,} rows so far",
        "prepare.hub_done": "Read `{name}`: {rows:,} chat examples ({skipped:,} rows skipped: no user turn and answer).",
        "prepare.bad_source": ("`source` is `sample` (the bundled recipes) or a Hub dataset as `hub:OWNER/NAME`; attach "
                               "a file to use your own."),
        "prepare.not_your_upload": "That upload is not among your files: attach it again.",
        "prepare.preparing": "Preparing...",
        "prepare.failed": "Failed",
        "prepare.done": "Done",
        "prepare.task.read": "Read, clean and deduplicate recipes",
        "prepare.task.progress": "{title}: {rows:,} rows ({fraction:.0%})",
        "prepare.task.read_done": "Read {rows:,} rows",
        "prepare.task.check": "Validate and count tokens",
        "prepare.chart": "token lengths",
        "prepare.ready": ("### Dataset ready: `{name}`\n\n{report}\n\n### Training file check\n\n{validation}\n\n"
                          "Download the files below, or fine-tune on them now."),
        "prepare.split_button": "Split it into train / validation / test",
        "uploads.wrong_kind": "I can read RecipeNLG `.csv` files and chat `.jsonl` files; `{name}` is neither.",
        "uploads.too_big": ("`{name}` is {size:,.0f} MB; files up to {limit:,} MB can be attached here. Prepare bigger "
                            "ones on the server with `tutor prepare`."),
        # --- training_flow.py: starting, following and summarising a run
        "train.not_your_dataset": ("That dataset is not among yours (it may have been made in another account). "
                                   "Type `/train` to pick one of yours."),
        "train.no_dataset": "No prepared dataset yet. Type `/prepare` first, then come back with `/train`.",
        "train.intro": ("**{button}.** Settings: {settings}. Change them in the chat settings (⚙️), or type them, like "
                        "`{example}`. Pick a dataset:"),
        "train.dataset_button": "{name} ({count} examples)",
        "train.confirm": "**{button}**: {settings}.\n\n{estimate}{notice}\n\nStart?",
        "train.start": "Start",
        "train.bad_form": "⚠️ {error} The other {backend} settings stay as they were.",
        "train.run_left_alone": "That run is not among yours, so it was left alone.",
        "train.stopping": "Stopping `{run}`...",
        "train.picked_up": "picked up after a restart",
        "train.heading": "**Training `{run}`**: {what}.",
        "train.starting": "Starting...",
        "train.cancel": "Cancel",
        "train.chat_with_it": "Chat with it",
        "train.compare": "Compare with RAG baseline",
        "train.queued": ("status **queued**: position **{position} of {length}** ({ahead}); it starts when a trainer "
                         "is free"),
        "train.next": "next",
        "train.ahead": "{count} ahead",
        "train.status": "status **{status}**",
        "train.validation": "validation loss **{loss:.4f}** · token accuracy **{accuracy:.1%}** (step {step})",
        "train.checkpoints": "checkpoints: {count}, latest `{latest}`",
        "status.queued": "queued", "status.running": "running", "status.succeeded": "succeeded",
        "status.failed": "failed", "status.cancelled": "cancelled", "status.interrupted": "interrupted",
        "status.timed_out": "stopped at the time limit",
        "metric.fine_tuned_model": "fine-tuned model", "metric.deployment": "deployment",
        "metric.final_loss": "final training loss", "metric.val_loss": "validation loss",
        "metric.val_token_accuracy": "validation token accuracy", "metric.val_f1": "validation F1 (ingredient lists)",
        "metric.train_seconds": "time", "metric.tokens_trained": "tokens trained",
        "metric.trained_tokens": "trained tokens", "metric.seconds": "{:.0f} s",
        "summary.cancelled": "⏹️ `{run}` was cancelled. {note}",
        "summary.ended": "⚠️ `{run}` {status}.",
        "summary.ended_note": "⚠️ `{run}` {status}: {note}",
        "summary.title": "### ✅ Fine-tuned `{run}` with {label}",
        "summary.table": "| metric | value |",
        "explain.button": "Explain my run",
        "explain.title": "**What `{run}` shows**",
        "explain.sources": "The findings it tells, from the rules, with their notes:",
        "explain.nothing": "No rule found a problem in this run's curve or evaluation.",
        "explain.no_curve": ("_This app has no loss curve of this run (a hosted job's stays with its provider): only "
                             "its evaluation is read._"),
        "explain.next": "**Next run to try:** {settings}",
        "explain.start": "Start that run",
        "explain.no_next": "This run has no recommended next run any more.",
        "train.not_your_run": "That run is not among yours.",
        "deploy.usage": "Name the deployment: `/deployed NAME`, or `/deployed RUN NAME` for an older run.",
        "deploy.none_waiting": "I found no finished fine-tune of yours waiting for a deployment.",
        "deploy.recorded": "Recorded: `{run}` answers through the deployment `{name}`.",
        "chat.now": ("You are now chatting with the fine-tuned `{run}`, a recipe assistant. Send a recipe as it was "
                     "trained, e.g.\n\n`Title: Pancakes\n\nIngredients: [\"1 c. flour\", \"2 eggs\", \"1 c. milk\"]\n\n"
                     "Generic ingredients: `\n\nType `/tutor` to go back to the tutor."),
        # --- contenders.py and ab_flow.py: the A/B chat and its evaluation
        "contenders.too_long": ("That message is {length:,} characters; a recipe prompt is a few hundred and the "
                                "models read at most about {limit:,}. Send one recipe."),
        "contenders.unknown_run": "No run or model named '{run}' among yours. `tutor jobs list` shows them.",
        "contenders.not_callable": "Run '{run}' has no model to call yet. {step}",
        "contenders.no_model": "Run '{run}' has no model yet (it is {status}).",
        "contenders.unknown_baseline": "Unknown baseline '{kind}': choose rag or base.",
        "contenders.no_train_file": "The RAG baseline needs the run's training file, and this run does not record one.",
        "contenders.fine_tuned": "fine-tuned {run}",
        "contenders.base": "base {base}, no examples",
        "contenders.rag": "RAG baseline: base {base} + {k} retrieved examples",
        "ab.empty": "Send a recipe to compare the two models on, or press **{heldout}**.",
        "ab.not_a_recipe": ("This A/B chat compares the models on the recipe task: send a recipe with its ingredients, "
                            "like\n\n```\n{example}\n```\n\nor press **{heldout}**. Type `/tutor` to go back to the "
                            "tutor."),
        "ab.no_model": ("There is no fine-tuned model yet to compare. Prepare data (`/prepare`), fine-tune it "
                        "(`/train`), then come back with `/compare`."),
        "ab.pick_a": "**A/B chat.** Pick **A**, the fine-tuned model:",
        "ab.pick_b": "A is `{run}`. Pick **B**, the baseline:",
        "ab.rag_button": "RAG baseline (base model + 3 retrieved examples)",
        "ab.base_button": "Base model, no examples",
        "ab.indexing": "Indexing the training examples for retrieval",
        "ab.indexed": "Chroma collection `{name}`, k = {k}",
        "ab.heldout_button": "Try a held-out recipe",
        "ab.eval_button": "Evaluate on {n} held-out recipes",
        "ab.source": "{n} held-out recipes from `{file}`",
        "ab.no_heldout": "no held-out split found for this run",
        "ab.intro": ("**A/B chat**\n\n- **A**: {a}\n- **B**: {b}\n\nEach recipe you send goes to both; the answers "
                     "stream side by side with their token counts and latency ({source}). Type `/tutor` to go back to "
                     "the tutor."),
        "ab.start_first": "Start an A/B chat on a run with a held-out split first (`/compare`).",
        "ab.heldout_author": "held-out recipe",
        "ab.side_failed": "It failed unexpectedly (details in the server log).",
        "ab.which": "Which answer is better?",
        "ab.vote.a": "A is better", "ab.vote.b": "B is better", "ab.vote.tie": "Tie",
        "ab.voted": ("Vote recorded. For this pair so far: A better **{a}**, B better **{b}**, tie **{tie}** "
                     "({total} votes)."),
        "ab.eval_running": "An evaluation is already running in this chat; its table appears when it ends.",
        "ab.evaluating": "Evaluating A and B on {n} held-out recipes...",
        "ab.evaluating_progress": "Evaluating A and B on {n} held-out recipes: {done}/{total} answers",
        "ab.eval_stopped": "⚠️ The evaluation stopped: {error}",
        "ab.eval_failed": "⚠️ The evaluation failed unexpectedly (details in the server log).",
        "ab.chart": "evaluation",
    },
    "uk": {
        "app.welcome": """Я навчаю тонкого налаштування (fine-tuning) LLM: пояснюю його і крок за кроком проводжу вас через нього на практиці.

- **Питайте про тонке налаштування будь-що**: що це таке, коли воно окупається, LoRA/PEFT, дані, гіперпараметри, \
оцінювання, вартість. Кожна відповідь спирається на нотатки цього проєкту (`knowledge/uk/`) і показує **джерела**. \
Українською офлайн-відповідь складається з уривків нотаток, без підсумку моделі: вбудована модель пише лише англійською.
- **Чи варто мені донавчати модель?** Покрокова перевірка вашого випадку, альтернатив, які ви спробували, витрат і \
вигод, що завершується рекомендацією з обґрунтуванням. Введіть `/check` або натисніть кнопку-підказку.
- **Підготуйте набір даних рецептів** (`/prepare`): навчальна, валідаційна й тестова вибірки у форматі chat JSONL \
з доданих рецептів або вашого CSV RecipeNLG, перевірені як у перевірках підготовки даних OpenAI, з кількістю токенів \
і оцінкою вартості. Прикріпіть `.jsonl`, щоб перевірити власний файл.
- **Виберіть базову модель** (`/models`): відкриті моделі з Hugging Face Hub із розміром, ліцензією й тим, чого \
вони потребують на цій машині; завантажується, коли ви її виберете.
- **Тонке налаштування локально** (`/train`): LoRA на вбудованій моделі з живими втратами, графіком, скасуванням і \
відновленням. Або в **Azure OpenAI** (`/train azure`) чи **OpenAI** (`/train openai`), якщо їх налаштовано. Під \
кожним завершеним запуском кнопка **«Explain my run»** пояснює, що показує саме ваша крива, з посиланнями на нотатки.
- **Порівняйте** (`/compare`): вашу тонко налаштовану модель із базовим варіантом RAG (базова модель із знайденими \
прикладами), поруч, з токенами й затримкою, а також оцінювання на відкладеній вибірці в числах.

Модель: **{model}**. Змінити її та температуру можна в налаштуваннях біля поля повідомлення.""",
        "tutor.not_covered": ("Я не знайшов цього у своїх нотатках, тож не вгадуватиму. Я можу пояснити такі "
                              "теми: {topics}. Спробуйте запитати, наприклад: «Що таке LoRA?»."),
        "tutor.nothing_yet": ("Спершу спитайте про тему, наприклад «Що таке LoRA?»; тоді я поясню простіше, наведу "
                              "приклад, скажу чому або продовжу."),
        "follow.rephrase": "Іншими словами",
        "follow.why": "Чому — словами нотаток",
        "follow.example_of": "Розібраний приклад із нотаток до теми «{topic}»:",
        "follow.next_section": "Нотатки продовжуються в наступному розділі:",
        "tutor.english_only": ("_Офлайн-модель пише лише англійською. Щоб отримувати відповіді своєю мовою, "
                               "задайте OPENAI_API_KEY або OPENAI_BASE_URL (див. README)._"),
        "tutor.also_in_notes": "Також у нотатках:",
        "tutor.sources": "**Джерела** ({panel})",
        "tokens.button": "Що саме навчається",
        "tokens.previous": "◀ Попередній приклад",
        "tokens.next": "Наступний приклад ▶",
        "tokens.not_yours": "Цього набору даних немає серед ваших: підготуйте його командою /prepare.",
        "tokens.intro": ("**Приклад {line} навчального файлу `{name}`** таким, яким його бачить тренер після "
                         "шаблону чату моделі. **Виділені** токени входять у функцію втрат: відповідь асистента "
                         "та її позначка кінця репліки, тож модель вчиться відповідати й зупинятися. Решта "
                         "(системний промпт, репліка користувача, розмітка шаблону) лише читається як контекст.\n\n"
                         "Токенів: {total}; max_length {max_length} залишає {kept}: **{trained} навчаються**, "
                         "{context} — контекст. {cut}"),
        "tokens.cut": "**{cut} токенів відрізано** на max_length: навчання їх ніколи не бачить.",
        "tokens.nothing_cut": "Нічого не відрізано.",
        "tokens.legend.trained": "навчаються", "tokens.legend.context": "лише контекст",
        "tokens.legend.cut": "відрізано на max_length",
        "tokens.nothing_trained": ("⚠️ У цьому прикладі нічого не навчається: останнє повідомлення має бути "
                                   "відповіддю асистента, і бодай її частина має вміститися в max_length."),
        # --- app.py
        "app.command.check": "Чи варто застосовувати тонке налаштування? Покрокова перевірка",
        "app.command.prepare": "Підготувати набір даних рецептів (JSONL: навчальна, валідаційна й тестова вибірки)",
        "app.command.train": ("Тонке налаштування на підготовленому наборі даних (локально з LoRA, `/train azure`, "
                              "`/train openai`)"),
        "app.command.deployed": "Назвати розгортання, яке ви зробили для тонко налаштованої моделі: `/deployed NAME`",
        "app.command.compare": "A/B-чат: тонко налаштована модель проти базового варіанта RAG",
        "app.command.models": "Вибрати базову модель для налаштування: відкриті моделі з Hugging Face Hub",
        "app.command.quiz": "Перевірити своє розуміння: коротка вікторина з підказками (`/quiz ТЕМА`, `/quiz progress`)",
        "models.title": "**Базові моделі, які тут можна налаштувати**, і чого кожна потребує на цій машині "
                        "(типові налаштування на вашому останньому наборі даних):",
        "models.offline": "_Цей сервер не може зв'язатися з Hugging Face Hub, тож пропоную лише моделі, які вже є тут._",
        "models.shared": "_На цьому спільному сервері ці моделі вибрав викладач._",
        "models.type_any": "_Або введіть будь-яку модель з Hub: `/models ВЛАСНИК/НАЗВА`._",
        "models.no_dataset": "_Підготуйте набір даних (`/prepare`), щоб побачити, скільки пам'яті й часу потребує "
                             "кожна._",
        "models.parameters": "{billions:.2f} млрд параметрів",
        "models.gated": "доступ обмежено 🔒 (прийміть ліцензію на Hub, задайте HF_TOKEN)",
        "models.here": "завантажено ✓",
        "models.to_download": "завантажити {size:.1f} ГБ",
        "models.use": "Вибрати {name}",
        "models.downloading": "Завантажую `{model}`: {bar} ({done:,.0f} з {total:,.0f} МБ)",
        "models.downloaded": "`{model}` завантажено ✓",
        "models.cannot_download": "`{model}` немає на цьому сервері, а Hugging Face Hub звідси недоступний, тож "
                                  "завантажити її зараз не можна.",
        "models.ready": "**`{model}`** готова. Налаштуйте її на одному з ваших наборів даних:",
        "models.ready_no_dataset": "**`{model}`** готова. Підготуйте набір даних (`/prepare`), потім "
                                   "`/train base={model}`.",
        "models.finetune": "Налаштувати на {name}",
        "app.not_configured": "не налаштовано ({error})",
        "app.setting.backend": "Модель тьютора",
        "app.setting.backend_help": ("Офлайн-модель працює в цьому процесі; OpenAI-сумісній потрібен OPENAI_API_KEY "
                                     "або OPENAI_BASE_URL."),
        "app.setting.temperature": "Температура",
        "app.bad_backend": "⚠️ Такої моделі цей застосунок не пропонує.",
        "app.keep_model": "⚠️ {reason}\n\nДо того часу я працюю з поточною моделлю.",
        "app.back_to_tutor": "Повертаємося до тьютора: питайте мене будь-що про тонке налаштування.",
        "app.failed": "⚠️ У мене щось пішло не так (подробиці в журналі сервера). Спробуйте ще раз.",
        "app.passages": "повні уривки",
        "app.passages_of": "повні уривки {number}",
        # --- actions.py
        "actions.refused": "⚠️ Дані цієї кнопки не ті, що надіслав застосунок, тому я нічого не зробив.",
        "actions.unexpected": "⚠️ У мене щось пішло не так (подробиці в журналі сервера). Нічого не втрачено.",
        "actions.io_error": ("⚠️ Сервер не зміг прочитати чи записати файл ({reason}). Нічого не втрачено; спробуйте "
                             "ще раз або повідомте викладача."),
        "actions.not_a_setting": "`{word}` не є налаштуванням: пишіть налаштування так: `epochs=2`.",
        "actions.no_account": "Вашого облікового запису на цьому сервері більше немає: зверніться до викладача.",
        # --- dataset_flow.py and uploads.py
        "prepare.unknown_setting": ("Я не знаю налаштування `{name}`. Можна задати: train, validation (val), test, "
                                    "seed."),
        "prepare.bad_sizes": "Ці розміри не підходять",
        "prepare.whole_numbers": "Розміри й seed — цілі числа.",
        "prepare.offer": ("**Підготуймо набір даних рецептів** (асистент рецептів із кулінарної книги OpenAI: виділити "
                          "загальні інгредієнти рецепта).\n\nНавчальна / валідаційна / тестова вибірки: **{sizes}**, "
                          "seed **{seed}**. Змінити їх можна так: `/prepare train=200 validation=50 test=50 "
                          "seed=7`.\n\n"
                          "Скористайтеся доданим зразком або прикріпіть власний файл скріпкою: `.csv` у форматі "
                          "RecipeNLG чи chat `.jsonl`, щоб перевірити й розділити його."),
        "prepare.sample_button": "Взяти доданий зразок (рецептів: {count})",
        "prepare.hub_button": "Взяти набір даних з Hub {name}",
        "prepare.hub_reading": "Читаю набір даних з Hub `{name}`: прочитано рядків {rows:,}",
        "prepare.hub_done": "Прочитано `{name}`: прикладів чату {rows:,} (пропущено рядків без запиту й відповіді: "
                            "{skipped:,}).",
        "prepare.bad_source": ("`source` — це `sample` (доданий зразок рецептів) або набір даних з Hub як "
                               "`hub:ВЛАСНИК/НАЗВА`; щоб узяти власний файл, прикріпіть його."),
        "prepare.not_your_upload": "Цього файлу немає серед ваших: прикріпіть його ще раз.",
        "prepare.preparing": "Готую...",
        "prepare.failed": "Не вдалося",
        "prepare.done": "Готово",
        "prepare.task.read": "Прочитати, очистити й вилучити дублікати рецептів",
        "prepare.task.progress": "{title}: рядків {rows:,} ({fraction:.0%})",
        "prepare.task.read_done": "Прочитано рядків: {rows:,}",
        "prepare.task.check": "Перевірити й порахувати токени",
        "prepare.chart": "довжини в токенах",
        "prepare.ready": ("### Набір даних готовий: `{name}`\n\n{report}\n\n### Перевірка навчального файлу\n\n"
                          "{validation}\n\nЗавантажте файли нижче або запустіть на них тонке налаштування просто "
                          "зараз."),
        "prepare.split_button": "Розділити на навчальну / валідаційну / тестову вибірки",
        "uploads.wrong_kind": "Я читаю файли RecipeNLG `.csv` і chat `.jsonl`; `{name}` не є жодним із них.",
        "uploads.too_big": ("`{name}` має {size:,.0f} МБ; тут можна прикріпити файли до {limit:,} МБ. Більші готуйте "
                            "на сервері командою `tutor prepare`."),
        # --- training_flow.py
        "train.not_your_dataset": ("Цього набору даних немає серед ваших (можливо, його створено в іншому обліковому "
                                   "записі). Введіть `/train`, щоб вибрати один із ваших."),
        "train.no_dataset": ("Підготовленого набору даних ще немає. Спершу введіть `/prepare`, потім поверніться з "
                             "`/train`."),
        "train.intro": ("**{button}.** Налаштування: {settings}. Змініть їх у налаштуваннях чату (⚙️) або введіть, "
                        "наприклад: `{example}`. Виберіть набір даних:"),
        "train.dataset_button": "{name} (прикладів: {count})",
        "train.confirm": "**{button}**: {settings}.\n\n{estimate}{notice}\n\nПочати?",
        "train.start": "Почати",
        "train.bad_form": "⚠️ {error} Інші налаштування {backend} лишаються як були.",
        "train.run_left_alone": "Цього запуску немає серед ваших, тож його не зачеплено.",
        "train.stopping": "Зупиняю `{run}`...",
        "train.picked_up": "підхоплено після перезапуску",
        "train.heading": "**Навчання `{run}`**: {what}.",
        "train.starting": "Починаю...",
        "train.cancel": "Скасувати",
        "train.chat_with_it": "Поговорити з нею",
        "train.compare": "Порівняти з базовим варіантом RAG",
        "train.queued": ("стан **у черзі**: місце **{position} з {length}** ({ahead}); почнеться, щойно звільниться "
                         "тренер"),
        "train.next": "наступний",
        "train.ahead": "попереду {count}",
        "train.status": "стан **{status}**",
        "train.validation": "втрати валідації **{loss:.4f}** · точність токенів **{accuracy:.1%}** (крок {step})",
        "train.checkpoints": "контрольних точок: {count}, остання `{latest}`",
        "status.queued": "у черзі", "status.running": "триває", "status.succeeded": "завершено",
        "status.failed": "не вдалося", "status.cancelled": "скасовано", "status.interrupted": "перервано",
        "status.timed_out": "зупинено на межі часу",
        "metric.fine_tuned_model": "тонко налаштована модель", "metric.deployment": "розгортання",
        "metric.final_loss": "кінцеві втрати навчання", "metric.val_loss": "втрати валідації",
        "metric.val_token_accuracy": "точність токенів на валідації",
        "metric.val_f1": "F1 на валідації (списки інгредієнтів)",
        "metric.train_seconds": "час", "metric.tokens_trained": "навчено токенів",
        "metric.trained_tokens": "навчені токени", "metric.seconds": "{:.0f} с",
        "summary.cancelled": "⏹️ Запуск `{run}` скасовано. {note}",
        "summary.ended": "⚠️ `{run}`: {status}.",
        "summary.ended_note": "⚠️ `{run}`: {status}: {note}",
        "summary.title": "### ✅ Тонке налаштування `{run}` завершено ({label})",
        "summary.table": "| метрика | значення |",
        "explain.button": "Поясни мій запуск",
        "explain.title": "**Що показує `{run}`**",
        "explain.sources": "Висновки правил, які тут переказано, з їхніми нотатками:",
        "explain.nothing": "Жодне правило не знайшло проблеми в кривій чи оцінюванні цього запуску.",
        "explain.no_curve": ("_Кривої втрат цього запуску в застосунку немає (крива хостингового завдання лишається в "
                             "провайдера): прочитано лише його оцінювання._"),
        "explain.next": "**Наступний запуск, який варто спробувати:** {settings}",
        "explain.start": "Почати цей запуск",
        "explain.no_next": "Для цього запуску більше немає рекомендованого наступного запуску.",
        "train.not_your_run": "Цього запуску немає серед ваших.",
        "deploy.usage": "Назвіть розгортання: `/deployed NAME` або `/deployed RUN NAME` для давнішого запуску.",
        "deploy.none_waiting": ("Я не знайшов жодної вашої завершеної тонко налаштованої моделі, що чекає на "
                                "розгортання."),
        "deploy.recorded": "Записано: `{run}` відповідає через розгортання `{name}`.",
        "chat.now": ("Тепер ви спілкуєтеся з тонко налаштованою моделлю `{run}`, асистентом рецептів. Надішліть рецепт "
                     "так, як її навчали, наприклад:\n\n`Title: Pancakes\n\nIngredients: [\"1 c. flour\", \"2 eggs\", "
                     "\"1 c. milk\"]\n\nGeneric ingredients: `\n\nВведіть `/tutor`, щоб повернутися до тьютора."),
        # --- contenders.py and ab_flow.py
        "contenders.too_long": ("Це повідомлення має {length:,} символів; промпт рецепта — кілька сотень, а моделі "
                                "читають щонайбільше близько {limit:,}. Надішліть один рецепт."),
        "contenders.unknown_run": "Серед ваших немає запуску чи моделі '{run}'. Їх показує `tutor jobs list`.",
        "contenders.not_callable": "Запуск '{run}' ще не має моделі, яку можна викликати. {step}",
        "contenders.no_model": "Запуск '{run}' ще не має моделі (його стан: {status}).",
        "contenders.unknown_baseline": "Невідомий базовий варіант '{kind}': виберіть rag або base.",
        "contenders.no_train_file": ("Базовому варіанту RAG потрібен навчальний файл запуску, а цей запуск його не "
                                     "записав."),
        "contenders.fine_tuned": "тонко налаштована {run}",
        "contenders.base": "базова {base}, без прикладів",
        "contenders.rag": "базовий варіант RAG: базова {base} + знайдених прикладів: {k}",
        "ab.empty": "Надішліть рецепт, щоб порівняти на ньому дві моделі, або натисніть **{heldout}**.",
        "ab.not_a_recipe": ("Цей A/B-чат порівнює моделі на завданні з рецептами: надішліть рецепт з інгредієнтами, "
                            "наприклад\n\n```\n{example}\n```\n\nабо натисніть **{heldout}**. Введіть `/tutor`, щоб "
                            "повернутися до тьютора."),
        "ab.no_model": ("Ще немає тонко налаштованої моделі для порівняння. Підготуйте дані (`/prepare`), тонко "
                        "налаштуйте модель (`/train`), потім поверніться з `/compare`."),
        "ab.pick_a": "**A/B-чат.** Виберіть **A** — тонко налаштовану модель:",
        "ab.pick_b": "A — це `{run}`. Виберіть **B** — базовий варіант:",
        "ab.rag_button": "Базовий варіант RAG (базова модель + 3 знайдені приклади)",
        "ab.base_button": "Базова модель без прикладів",
        "ab.indexing": "Індексую навчальні приклади для пошуку",
        "ab.indexed": "Колекція Chroma `{name}`, k = {k}",
        "ab.heldout_button": "Спробувати відкладений рецепт",
        "ab.eval_button": "Оцінити на відкладених рецептах ({n})",
        "ab.source": "відкладених рецептів із `{file}`: {n}",
        "ab.no_heldout": "відкладеної вибірки для цього запуску не знайдено",
        "ab.intro": ("**A/B-чат**\n\n- **A**: {a}\n- **B**: {b}\n\nКожен рецепт, який ви надсилаєте, отримують обидві "
                     "моделі; відповіді йдуть поруч, з кількістю токенів і затримкою ({source}). Введіть `/tutor`, щоб "
                     "повернутися до тьютора."),
        "ab.start_first": "Спершу почніть A/B-чат для запуску з відкладеною вибіркою (`/compare`).",
        "ab.heldout_author": "відкладений рецепт",
        "ab.side_failed": "Несподівана помилка (подробиці в журналі сервера).",
        "ab.which": "Яка відповідь краща?",
        "ab.vote.a": "A краща", "ab.vote.b": "B краща", "ab.vote.tie": "Нічия",
        "ab.voted": ("Голос записано. Для цієї пари поки що: A краща **{a}**, B краща **{b}**, нічия **{tie}** "
                     "(голосів: {total})."),
        "ab.eval_running": "У цьому чаті вже триває оцінювання; його таблиця з'явиться, коли воно завершиться.",
        "ab.evaluating": "Оцінюю A і B на відкладених рецептах ({n})...",
        "ab.evaluating_progress": "Оцінюю A і B на відкладених рецептах ({n}): відповідей {done}/{total}",
        "ab.eval_stopped": "⚠️ Оцінювання зупинилося: {error}",
        "ab.eval_failed": "⚠️ Оцінювання несподівано завершилося помилкою (подробиці в журналі сервера).",
        "ab.chart": "оцінювання",
    },
})

STARTERS = {  # per language: (label, message, command)
    "en": [
        ("What is fine-tuning?", "What is fine-tuning, and how is it different from prompting?", None),
        ("What is LoRA?", "What is LoRA?", None),
        ("Should I fine-tune?", "Should I fine-tune?", "check"),
        ("Fine-tuning or RAG?", "When should I use RAG instead of fine-tuning?", None),
        ("Prepare recipe dataset", "/prepare", "prepare"),
    ],
    "uk": [
        ("Що таке тонке налаштування?", "Чим тонке налаштування відрізняється від попереднього навчання?", None),
        ("Що додає QLoRA?", "Що QLoRA додає до LoRA?", None),
        ("Чи варто донавчати?", "Should I fine-tune?", "check"),
        ("Тонке налаштування чи RAG?", "Коли варто використовувати RAG замість тонкого налаштування?", None),
        ("Підготувати набір рецептів", "/prepare", "prepare"),
    ],
}


def language_of(tag: str | None) -> str:
    """One of LANGUAGES for a browser's language tag ("uk-UA", "en-US"); English for any other."""
    primary = (tag or "").split("-")[0].split("_")[0].lower()
    return primary if primary in LANGUAGES else "en"


def text(key: str, language: str = "en", **fields) -> str:
    """The text for `key` in `language` (English where it has none), with `fields` filled in."""
    return CATALOG(key, language, **fields)


def session_language() -> str:
    """The language of the current Chainlit chat: its browser's (Accept-Language), English outside a chat."""
    from chainlit.context import context_var

    context = context_var.get(None)
    return language_of(getattr(context.session, "language", None) if context else None)
