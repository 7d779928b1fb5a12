"""The A/B chat: a fine-tuned model and a baseline answer each recipe side by side, with their costs.

`/compare` (or "Compare with RAG baseline" under a finished run) picks A, a model from the registry,
and B, the RAG baseline or the bare base model. Each message then goes to both; the ABCompare element
(public/elements/ABCompare.jsx) shows the two answers growing a few times a second, and under each the
prompt and completion tokens, time to first token, latency and, for a held-out recipe, F1 against its
gold list. A vote per comparison goes to the registry. "Evaluate" runs both on the held-out split.
The handlers only orchestrate; the systems are assistant/tutor/contenders.py, the scores training/evaluation/metrics.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import chainlit as cl

from assistant.chat.actions import BaselineChoice, NoPayload, RunRef, VoteRequest, action, current_learner
from assistant.chat.refresh import refreshing
from assistant.chat.run_view import explain_action
from assistant.i18n import session_language, text
from assistant.inference.engine import Usage
from assistant.tutor.contenders import Contender, model_for_run, pair_for_run, too_long
from assistant.web.accounts import Learner
from training.base.errors import TutorError
from training.base.records import Run
from training.base.registry import new_id, registry_for
from training.base.settings import get_settings
from training.data.recipes import user_message
from training.evaluation.charts import eval_chart
from training.evaluation.held_out import Case, evaluate, load_cases, markdown_table, write_results
from training.evaluation.metrics import score_answer

log = logging.getLogger(__name__)

UPDATE_EVERY = 0.25  # seconds between element updates: smooth, without a websocket message per token
EVAL_LIMIT = 20
EXAMPLE = user_message("Pancakes", ["1 c. flour", "2 eggs", "1 c. milk", "2 Tbsp. sugar"])


def heldout_file(run: Run) -> Path | None:
    """The run's test split (prepared beside its training file), else its validation file."""
    config = run.config or {}
    train = Path(config.get("train_file") or "")
    for candidate in (train.with_name("test.jsonl"), Path(config.get("validation_file") or "")):
        if candidate.name and candidate.is_file():
            return candidate
    return None


def check_prompt(prompt: str, language: str = "en") -> tuple[str | None, str]:
    """(problem for the learner, in `language`, or None; the prompt as the models were trained to see it)."""
    prompt = prompt.strip()
    heldout = text("ab.heldout_button", language)
    if not prompt:
        return text("ab.empty", language, heldout=heldout), prompt
    if problem := too_long(prompt, language):
        return problem, prompt
    if "ingredient" not in prompt.lower():
        return text("ab.not_a_recipe", language, example=EXAMPLE, heldout=heldout), prompt
    if not prompt.rstrip().lower().endswith("generic ingredients:"):
        prompt += "\n\nGeneric ingredients: "  # the cue the fine-tune was trained on
    return None, prompt


# --- choosing A and B ---------------------------------------------------------------------------

async def offer_compare() -> None:
    learner = await current_learner()
    language = session_language()
    models = (await asyncio.to_thread(registry_for(get_settings()).models, learner.scope))[:6]
    if not models:
        await cl.Message(content=text("ab.no_model", language)).send()
        return
    await cl.Message(content=text("ab.pick_a", language), actions=[
        cl.Action(name="ab_pick", payload={"run_id": m.run_id}, label=f"{m.run_id} ({m.kind})")
        for m in models]).send()


@action("ab_pick", RunRef)
async def on_pick(request: RunRef, learner: Learner, _sent):
    language = session_language()
    await asyncio.to_thread(model_for_run, registry_for(get_settings()), request.run_id, learner.scope, language)
    await cl.Message(content=text("ab.pick_b", language, run=request.run_id), actions=[
        cl.Action(name="ab_start", payload={"run_id": request.run_id, "baseline": "rag"},
                  label=text("ab.rag_button", language)),
        cl.Action(name="ab_start", payload={"run_id": request.run_id, "baseline": "base"},
                  label=text("ab.base_button", language)),
    ]).send()


@action("ab_start", BaselineChoice)
async def on_start(request: BaselineChoice, learner: Learner, _sent):
    await start_compare(request.run_id, request.baseline, learner)


@action("compare_model", RunRef)
async def on_compare_model(request: RunRef, learner: Learner, _sent):
    await start_compare(request.run_id, "rag", learner)


async def start_compare(run_id: str, baseline_kind: str, learner: Learner) -> None:
    settings = get_settings()
    registry = registry_for(settings)
    language = session_language()
    a, b = await asyncio.to_thread(pair_for_run, registry, settings, run_id, baseline_kind, 3, learner.scope, language)
    if b.index is not None:
        async with cl.Step(name=text("ab.indexing", language)) as step:
            await asyncio.to_thread(b.index.build)
            step.output = text("ab.indexed", language, name=b.index.name, k=b.index.k)
    run = await asyncio.to_thread(lambda: registry.run(model_for_run(registry, run_id, learner.scope,
                                                                     language).run_id))
    heldout = heldout_file(run or {})
    cases = await asyncio.to_thread(load_cases, heldout) if heldout else []
    cl.user_session.set("chat_model", None)
    cl.user_session.set("ab", {"a": a, "b": b, "cases": cases, "heldout": str(heldout) if heldout else None,
                               "run_id": run.id})
    actions = [cl.Action(name="ab_heldout", payload={}, label=text("ab.heldout_button", language)),
               cl.Action(name="ab_eval", payload={}, label=text("ab.eval_button", language, n=EVAL_LIMIT))
               ] if cases else []
    source = (text("ab.source", language, n=len(cases), file=heldout.name) if cases
              else text("ab.no_heldout", language))
    await cl.Message(content=text("ab.intro", language, a=a.label, b=b.label, source=source), actions=actions).send()


# --- one comparison ------------------------------------------------------------------------------

async def open_comparison() -> dict | None:
    """This chat's A/B session when it has held-out recipes; else says how to start one."""
    ab = cl.user_session.get("ab")
    if not ab or not ab["cases"]:
        await cl.Message(content=text("ab.start_first", session_language())).send()
        return None
    return ab


@action("ab_heldout", NoPayload)
async def on_heldout(_request, _learner, _sent):
    if (ab := await open_comparison()) is None:
        return
    case = random.choice(ab["cases"])
    await cl.Message(content=case.prompt, author=text("ab.heldout_author", session_language()),
                     type="user_message").send()
    await compare(case.prompt, gold=case.gold)


def _side_props(contender: Contender, state: dict) -> dict:
    return {"label": contender.label, "kind": contender.kind, **state}


async def compare(message_text: str, gold: list[str] | None = None) -> None:
    ab = cl.user_session.get("ab")
    language = session_language()
    problem, prompt = check_prompt(message_text, language)
    if problem:
        await cl.Message(content=problem).send()
        return
    if gold is None:  # a held-out recipe typed or pasted in still gets its F1
        gold = next((c.gold for c in ab["cases"] if c.prompt.strip() == prompt.strip()), None)
    case = Case(prompt=prompt, gold=gold or [])
    sides = {"a": ab["a"], "b": ab["b"]}
    states = {name: {"text": "", "done": False, "error": None, "stats": None} for name in sides}
    element = cl.CustomElement(name="ABCompare", display="inline",
                               props={"sides": {n: _side_props(c, states[n]) for n, c in sides.items()}})
    message = cl.Message(content="", elements=[element])
    await message.send()

    async def answer(name: str, contender: Contender) -> None:
        usage, state = Usage(), states[name]
        try:
            async for piece in contender.stream(case, usage):
                state["text"] += piece
        except TutorError as exc:
            state["error"] = str(exc)
        except Exception:  # one side failing must not leave the other hanging or a trace in chat
            log.exception("%s failed to answer", contender.label)
            state["error"] = text("ab.side_failed", language)
        stats = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                 "ttft_s": usage.ttft_s, "latency_s": usage.latency_s}
        if gold:
            stats["f1"] = score_answer(state["text"], gold)["f1"]
        state.update(stats=stats, done=True)

    tasks = [asyncio.create_task(answer(name, c)) for name, c in sides.items()]
    shown = None
    while True:
        finished, _ = await asyncio.wait(tasks, timeout=UPDATE_EVERY)
        snapshot = {n: _side_props(c, dict(states[n])) for n, c in sides.items()}
        if snapshot != shown:
            element.props = {"sides": snapshot}
            await element.update()
            shown = snapshot
        if len(finished) == len(tasks):
            break
    registry = registry_for(get_settings())
    learner = await current_learner()
    comparison_id = await asyncio.to_thread(
        registry.add_comparison, sides["a"].label, sides["b"].label, prompt, states["a"]["text"], states["b"]["text"],
        {n: states[n]["stats"] for n in sides}, learner.id)
    await cl.Message(content=text("ab.which", language), actions=[
        cl.Action(name="ab_vote", payload={"id": comparison_id, "vote": vote}, label=text(f"ab.vote.{vote}", language))
        for vote in ("a", "b", "tie")]).send()


@action("ab_vote", VoteRequest)
async def on_vote(request: VoteRequest, learner: Learner, sent: cl.Action):
    # Only the learner's own comparisons: ValueError (shown) for anyone else's or an unknown id.
    tally = await asyncio.to_thread(registry_for(get_settings()).vote, request.id, request.vote, learner.scope)
    await sent.remove()
    await cl.Message(content=text("ab.voted", session_language(), a=tally["a"], b=tally["b"], tie=tally["tie"],
                                  total=sum(tally.values()))).send()


# --- held-out evaluation ---------------------------------------------------------------------------

@action("ab_eval", NoPayload)
async def on_eval(_request, learner: Learner, _sent):
    if (ab := await open_comparison()) is None:
        return
    running = cl.user_session.get("eval_job")
    language = session_language()
    if running is not None and not running.done():
        await cl.Message(content=text("ab.eval_running", language)).send()
        return
    # An action callback must return (the evaluation takes minutes); the task is kept in the session.
    cl.user_session.set("eval_job", asyncio.create_task(run_eval(ab, learner, language)))


async def run_eval(ab: dict, learner: Learner, language: str = "en") -> None:
    cases = random.Random(0).sample(ab["cases"], min(EVAL_LIMIT, len(ab["cases"])))
    systems = {"A": ab["a"], "B": ab["b"]}
    progress = cl.Message(content=text("ab.evaluating", language, n=len(cases)))
    await progress.send()
    done = {"n": 0, "total": len(cases) * len(systems)}

    async def show_progress():
        progress.content = text("ab.evaluating_progress", language, n=len(cases), done=done["n"], total=done["total"])
        await progress.update()

    try:
        async with refreshing(1.0, show_progress):
            summary, rows = await evaluate({name: c.answer for name, c in systems.items()}, cases,
                                           lambda n, total: done.update(n=n))
        out_dir = await asyncio.to_thread(write_results, get_settings().data_dir / "evals" / new_id("eval"), summary,
                                          rows, {"A": systems["A"].label, "B": systems["B"].label,
                                                 "data": Path(ab["heldout"]).name})
        # Recorded by what each side is (fine-tuned, rag, base), as `tutor eval` records it: "Explain my run" reads it.
        kinds = {name: contender.kind for name, contender in systems.items()}
        recorded = {kinds[name]: figures for name, figures in summary.items()} if len(set(kinds.values())) == 2 \
            else summary
        await asyncio.to_thread(registry_for(get_settings()).add_evaluation, learner.id, ab["run_id"], recorded,
                                out_dir)
    except (TutorError, OSError) as exc:  # an OSError's own text would name server paths
        progress.content = text("ab.eval_stopped", language,
                                error=exc.strerror if isinstance(exc, OSError) else exc)
        await progress.update()
        return
    except Exception:  # a background task: nobody else would report it
        log.exception("The evaluation failed")
        progress.content = text("ab.eval_failed", language)
        await progress.update()
        return
    progress.content = markdown_table(summary, {n: c.label for n, c in systems.items()}, language)
    progress.elements = [cl.Plotly(name=text("ab.chart", language), figure=eval_chart(summary, language),
                                   display="inline"),
                         cl.File(name="results.jsonl", path=str(out_dir / "results.jsonl")),
                         cl.File(name="summary.json", path=str(out_dir / "summary.json"))]
    await progress.update()
    await explain_action(ab["run_id"], language).send(for_id=progress.id)  # the evaluation is now in its findings
