"""What a run's own numbers say: testable rules over its events, its settings and its evaluation.

Each finding states what it saw with the run's numbers (never a number the run did not produce), names the
knowledge passage it rests on (file and heading, quoted by the tutor), and, where the rule implies one, the
settings to try next as a change to the run's TrainConfig. The rules, in order:
- LR too high: a loss spike (a step's loss over SPIKE x the median of the 5 before it, and over the run's
  starting loss: smaller jumps late in a run are harder batches, not a step too large) or divergence (the
  last quarter's mean loss above the first quarter's, or a non-finite loss);
- overfitting: validation loss rose SIGNIFICANT above its lowest point while training loss kept falling;
- LR too low: the training loss barely moved (the last quarter's mean over FLAT x the first quarter's);
- underfitting: validation loss (or training loss, with no validation set) still clearly falling at the end;
- too few examples: under FEW_EXAMPLES training examples;
- the evaluation: the fine-tune's F1 against its baseline's, and what each costs in prompt tokens.

    python -m training.evaluation.diagnosis RUN_DIR [EVALUATION_SUMMARY_JSON]
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.base.phrases import Phrases

SPIKE = 1.5  # a step's loss over this multiple of the recent median is a spike
SIGNIFICANT = 1.05  # validation loss this far over its lowest point has turned up, not wobbled
FLAT = 0.9  # the last quarter's loss at or over this share of the first quarter's: it barely moved
STILL_FALLING = 0.97  # the last evaluation this far under the one before: more training would still help
FEW_EXAMPLES = 50  # the knowledge base's (and OpenAI's) "clear improvements from 50 to 100 examples"

HYPERPARAMETERS = ("knowledge/hyperparameters.md", "Adjusting for underfitting or overfitting")
LEARNING_RATE = ("knowledge/hyperparameters.md", "Learning rate and learning_rate_multiplier")
SPOTTING_OVERFITTING = ("knowledge/overfitting-and-forgetting.md", "Spotting overfitting in loss curves")
EXAMPLES = ("knowledge/what-you-need.md", "How many examples you need")
BASELINES = ("knowledge/evaluation.md", "Comparing base, few-shot/RAG and fine-tuned models")


# Each finding's sentences in every language, filled with the run's numbers (the catalog's [diagnosis]).
SENTENCES = Phrases("diagnosis")


@dataclass
class Finding:
    kind: str  # lr_too_high, overfitting, lr_too_low, underfitting, few_examples, beats_baseline, trails_baseline
    says: tuple[str, ...]  # keys of SENTENCES, said in order
    facts: dict  # the run's numbers the sentences show; nothing else is shown
    cites: tuple[str, str]  # (knowledge file, heading) the advice rests on
    change: dict = field(default_factory=dict)  # TrainConfig fields for the next run; empty when none

    def message(self, language: str = "en") -> str:
        return " ".join(SENTENCES(key, language, **self.facts) for key in self.says)


def _quarters(losses: list[float]) -> tuple[float, float]:
    quarter = max(1, len(losses) // 4)
    return statistics.fmean(losses[:quarter]), statistics.fmean(losses[-quarter:])


def _learning_rate(steps: list[dict], config: dict) -> list[Finding]:
    losses = [step["loss"] for step in steps]
    lr = config.get("learning_rate")
    lower = {"learning_rate": float(f"{lr / 2:.2g}")} if lr else {}
    if bad := next((step for step in steps if not math.isfinite(step["loss"])), None):
        return [Finding("lr_too_high", ("non_finite",), {"loss": bad["loss"], "step": bad["step"]}, LEARNING_RATE,
                        lower)]
    start = statistics.median(losses[:3]) if losses else 0.0
    for i in range(5, len(steps)):
        recent = statistics.median(losses[i - 5:i])
        # Over the run's starting loss too: a jump that undoes the learning. Smaller ones late in a run are
        # batches of harder examples (length-grouped batches differ), not a step too large.
        if losses[i] > SPIKE * recent and losses[i] > start:
            return [Finding("lr_too_high", ("spike",), {"loss": losses[i], "step": steps[i]["step"],
                                                        "ratio": losses[i] / recent, "recent": recent,
                                                        "start": start}, HYPERPARAMETERS, lower)]
    if len(losses) >= 4:
        first, last = _quarters(losses)
        if last > first:
            return [Finding("lr_too_high", ("rising",), {"first": first, "last": last}, HYPERPARAMETERS, lower)]
        if last >= FLAT * first:
            higher = {"learning_rate": float(f"{lr * 3:.2g}")} if lr else {}
            return [Finding("lr_too_low", ("flat",), {"first": first, "last": last}, HYPERPARAMETERS, higher)]
    return []


def _fit(steps: list[dict], evals: list[dict], config: dict) -> list[Finding]:
    epochs = config.get("epochs")
    if len(evals) >= 2:
        lowest = min(evals, key=lambda e: e["val_loss"])
        last = evals[-1]
        train_then = next((s["loss"] for s in reversed(steps) if s["step"] <= lowest["step"]), None)
        if last["val_loss"] >= SIGNIFICANT * lowest["val_loss"] and train_then is not None \
                and steps[-1]["loss"] < train_then:
            epoch = next((s.get("epoch") for s in reversed(steps) if s["step"] <= lowest["step"]), None)
            change = {"epochs": max(1, math.ceil(epoch))} if epoch and epochs and math.ceil(epoch) < epochs else {}
            return [Finding("overfitting", ("overfitting",),
                            {"best_step": lowest["step"], "best": lowest["val_loss"], "last": last["val_loss"],
                             "last_step": last["step"], "train_then": train_then, "train_last": steps[-1]["loss"]},
                            SPOTTING_OVERFITTING, change)]
        if last["val_loss"] <= STILL_FALLING * evals[-2]["val_loss"]:
            return [Finding("underfitting", ("still_falling",),
                            {"before": evals[-2]["val_loss"], "before_step": evals[-2]["step"],
                             "last": last["val_loss"], "last_step": last["step"]},
                            HYPERPARAMETERS, {"epochs": epochs + 1} if epochs else {})]
    elif len(steps) >= 8:
        losses = [step["loss"] for step in steps]
        half = len(losses) // 2
        before, after = statistics.fmean(losses[half - half // 2:half]), statistics.fmean(losses[-(half // 2):])
        if after <= STILL_FALLING * before:
            return [Finding("underfitting", ("still_falling_train",), {"before": before, "after": after},
                            HYPERPARAMETERS, {"epochs": epochs + 1} if epochs else {})]
    return []


def _examples(start: dict | None) -> list[Finding]:
    count = (start or {}).get("train_examples")
    if count is not None and count < FEW_EXAMPLES:
        return [Finding("few_examples", ("few_examples",), {"count": count, "few": FEW_EXAMPLES}, EXAMPLES)]
    return []


def _evaluation(summary: dict | None) -> list[Finding]:
    """The fine-tune against the other system of an evaluation summary ({system: {f1, mean_prompt_tokens}})."""
    if not summary or "fine-tuned" not in summary or len(summary) < 2:
        return []
    tuned = summary["fine-tuned"]
    name, other = next((n, s) for n, s in summary.items() if n != "fine-tuned")
    kind = "beats_baseline" if tuned["f1"] > other["f1"] else "trails_baseline"
    facts = {"n": tuned.get("n", "?"), "baseline": name, "f1": tuned["f1"], "baseline_f1": other["f1"]}
    if tuned.get("mean_prompt_tokens") and other.get("mean_prompt_tokens"):
        facts.update(tokens=tuned["mean_prompt_tokens"], baseline_tokens=other["mean_prompt_tokens"])
    return [Finding(kind, (kind, "prompt_tokens") if "tokens" in facts else (kind,), facts, BASELINES)]


def diagnose(events: list[dict], config: dict, evaluation: dict | None = None) -> list[Finding]:
    """Every finding the rules make of a run's events, settings and latest evaluation summary, most urgent first."""
    steps = [e for e in events if e.get("type") == "step" and "loss" in e]
    evals = [e for e in events if e.get("type") == "eval" and "val_loss" in e]
    start = next((e for e in events if e.get("type") == "start"), None)
    findings = _learning_rate(steps, config)
    if not findings or findings[0].kind == "lr_too_low":
        findings += _fit(steps, evals, config)
    return findings + _examples(start) + _evaluation(evaluation)


def curve(events: list[dict]) -> Finding | None:
    """What the curve shows before any rule: training loss first to last, validation loss first to last beside
    the training loss at that step (the gap), token accuracy; None for a run with no steps here."""
    steps = [e for e in events if e.get("type") == "step" and "loss" in e]
    evals = [e for e in events if e.get("type") == "eval" and "val_loss" in e]
    if not steps:
        return None
    says, facts = ["curve"], {"train_first": steps[0]["loss"], "first_step": steps[0]["step"],
                              "train_last": steps[-1]["loss"], "last_step": steps[-1]["step"]}
    if evals:
        then = next((s["loss"] for s in reversed(steps) if s["step"] <= evals[-1]["step"]), steps[-1]["loss"])
        says.append("validation")
        facts.update(val_first=evals[0]["val_loss"], val_first_step=evals[0]["step"], val_last=evals[-1]["val_loss"],
                     val_last_step=evals[-1]["step"], train_then=then)
        if "val_token_accuracy" in evals[-1]:
            says.append("accuracy")
            facts["accuracy"] = evals[-1]["val_token_accuracy"]
    return Finding("curve", tuple(says), facts, SPOTTING_OVERFITTING)


def next_settings(config: dict, findings: list[Finding]) -> dict:
    """The run's settings with the most urgent finding's change applied; {} when no finding asks for one."""
    change = next((f.change for f in findings if f.change), {})
    return {**config, **change} if change else {}


if __name__ == "__main__":
    import sys

    from training.jobs.events import read

    run_dir = Path(sys.argv[1])
    summary = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else None
    findings = diagnose(read(run_dir)[0], json.loads((run_dir / "config.json").read_text()), summary)
    print(json.dumps([{**asdict(f), "message": f.message()} for f in findings], indent=2, ensure_ascii=False))
