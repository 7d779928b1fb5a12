"""The diagnosis rules against hand-made event logs: one log per diagnosis, with its text, citation and advice."""

import re
from pathlib import Path

import pytest

from training.evaluation.diagnosis import diagnose, next_settings

KNOWLEDGE = Path(__file__).resolve().parents[1]
CONFIG = {"epochs": 3, "learning_rate": 2e-4}


def steps(losses: list[float], per_epoch: int = 4) -> list[dict]:
    return [{"type": "step", "step": i, "loss": loss, "epoch": i / per_epoch} for i, loss in enumerate(losses, 1)]


def evals(pairs: list[tuple[int, float]]) -> list[dict]:
    return [{"type": "eval", "step": step, "val_loss": loss} for step, loss in pairs]


START = [{"type": "start", "total_steps": 12, "train_examples": 120}]


def test_overfitting_names_the_step_where_validation_loss_turned_and_advises_fewer_epochs():
    log = START + steps([2.0, 1.6, 1.3, 1.1, 0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1]) \
        + evals([(4, 1.20), (8, 1.30), (12, 1.45)])
    [finding] = diagnose(log, CONFIG)
    assert finding.kind == "overfitting"
    assert finding.message() == ("Validation loss was lowest at step 4 (1.200) and rose to 1.450 by step 12, while "
                               "training loss fell from 1.100 to 0.100: overfitting from step 4.")
    assert finding.cites == ("knowledge/overfitting-and-forgetting.md", "Spotting overfitting in loss curves")
    assert finding.change == {"epochs": 1}
    assert next_settings(CONFIG, [finding]) == {"epochs": 1, "learning_rate": 2e-4}


def test_underfitting_when_validation_loss_is_still_falling_at_the_end():
    log = START + steps([2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3]) + evals([(4, 1.80), (8, 1.50)])
    [finding] = diagnose(log, CONFIG)
    assert finding.kind == "underfitting" and finding.change == {"epochs": 4}
    assert "still falling at the end: 1.800 at step 4, 1.500 at step 8" in finding.message()


def test_a_loss_spike_means_the_learning_rate_is_too_high():
    log = START + steps([2.0, 1.8, 1.7, 1.6, 1.5, 1.45, 3.1, 1.4, 1.35, 1.3])
    [finding] = diagnose(log, CONFIG)
    assert finding.kind == "lr_too_high" and finding.change == {"learning_rate": 1e-4}
    assert finding.message() == ("The training loss spiked to 3.100 at step 7, 1.9x the 1.600 of the steps before "
                                 "it and above the 1.800 the run started at.")
    assert finding.cites == ("knowledge/hyperparameters.md", "Adjusting for underfitting or overfitting")
    # A default run's late steps: batches of harder recipes jump 1.5-2x over a low loss, still far under the start.
    noisy = START + steps([1.25, 1.14, 1.09, 0.98, 0.84, 0.62, 0.45, 0.31, 0.26, 0.24, 0.22, 0.45, 0.25, 0.20])
    assert [f.kind for f in diagnose(noisy, CONFIG)] != ["lr_too_high"], "a hard batch is not a step too large"


def test_divergence_and_a_non_finite_loss_are_learning_rates_too_high():
    rising = diagnose(START + steps([1.0, 1.05, 1.1, 1.2, 1.3, 1.35, 1.4, 1.5]), CONFIG)
    assert [f.kind for f in rising] == ["lr_too_high"] and "rose from 1.025 (first quarter" in rising[0].message()
    nan = diagnose(START + steps([1.0, float("nan")]), CONFIG)
    assert nan[0].kind == "lr_too_high" and "became nan at step 2" in nan[0].message()


def test_a_flat_loss_means_the_learning_rate_is_too_low():
    log = START + steps([2.00, 1.99, 1.98, 1.99, 1.97, 1.98, 1.96, 1.97]) + evals([(4, 1.99), (8, 1.985)])
    findings = diagnose(log, CONFIG)
    assert [f.kind for f in findings] == ["lr_too_low"]
    assert findings[0].change == {"learning_rate": 6e-4}
    assert "barely moved: 1.995 in the first quarter of the steps, 1.965 in the last" in findings[0].message()


def test_too_few_examples_and_the_evaluation_against_rag():
    log = [{"type": "start", "train_examples": 30}] + steps([2.0, 1.5, 1.2, 1.0, 0.9, 0.85, 0.8, 0.8]) \
        + evals([(4, 1.1), (8, 1.09)])
    summary = {"fine-tuned": {"n": 40, "f1": 0.746, "mean_prompt_tokens": 117},
               "rag": {"n": 40, "f1": 0.215, "mean_prompt_tokens": 472}}
    kinds = {f.kind: f for f in diagnose(log, CONFIG, summary)}
    assert set(kinds) == {"few_examples", "beats_baseline"}
    assert "trained on 30 examples" in kinds["few_examples"].message()
    assert "навчався на 30 прикладах;" in kinds["few_examples"].message("uk")  # its plural form, by count
    one = diagnose([{"type": "start", "train_examples": 21}] + steps([2.0, 1.0]), CONFIG)
    assert "навчався на 21 прикладі;" in one[-1].message("uk") and "on 21 examples" in one[-1].message()
    assert kinds["beats_baseline"].message() == ("On 40 held-out recipes the fine-tune beat the rag baseline: F1 0.746 "
                                               "against 0.215. It read 117 prompt tokens per answer against rag's 472.")
    trailing = diagnose(log, CONFIG, {"fine-tuned": {"f1": 0.1}, "rag": {"f1": 0.2}})
    assert any(f.kind == "trails_baseline" and "did not beat" in f.message() for f in trailing)


def test_a_healthy_run_gets_no_advice():
    log = START + steps([2.0, 1.2, 0.9, 0.8, 0.75, 0.72, 0.71, 0.70]) + evals([(4, 0.90), (8, 0.89)])
    assert diagnose(log, CONFIG) == []
    assert next_settings(CONFIG, []) == {}
    wobble = START + steps([2.0, 1.2, 0.9, 0.8, 0.75, 0.72, 0.71, 0.70, 0.69, 0.68, 0.67, 0.66]) \
        + evals([(4, 1.00), (8, 0.95), (12, 0.96)])
    assert diagnose(wobble, CONFIG) == [], "validation loss 1% over its lowest point is noise, not overfitting"


@pytest.mark.parametrize("log", [
    START + steps([2.0, 1.6, 1.3, 1.1, 0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1]) + evals([(4, 1.2), (8, 1.3), (12, 1.45)]),
    START + steps([2.0, 1.8, 1.7, 1.6, 1.5, 1.45, 3.1, 1.4]),
    [{"type": "start", "train_examples": 5}] + steps([2.0] * 8),
])
def test_every_number_shown_comes_from_the_run_and_every_citation_exists(log):
    for finding in diagnose(log, CONFIG, {"fine-tuned": {"f1": 0.5, "n": 9}, "rag": {"f1": 0.25}}):
        path, heading = finding.cites
        assert f"## {heading}\n" in (KNOWLEDGE / path).read_text(encoding="utf-8")
        run_numbers = {f"{v:.3f}" for e in log for v in (e.get("loss"), e.get("val_loss")) if v is not None}
        run_numbers |= {str(e.get("step")) for e in log} | {"5", "50", "100", "9", "0.500", "0.250"}
        shown = set(re.findall(r"\d+\.\d{3}|\b\d+\b", finding.message()))
        ratios = set(re.findall(r"\d+\.\dx", finding.message()))  # a ratio of two run numbers, computed
        assert shown - {r.rstrip("x") for r in ratios} <= run_numbers | {"1", "2", "0"}, finding.message()


def test_explain_quotes_the_cited_notes_in_the_readers_language_and_offers_the_next_run(tmp_path):
    import json

    from assistant.tutor.explain import explain
    from training.base.registry import Registry

    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    log = START + steps([2.0, 1.6, 1.3, 1.1, 0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1]) \
        + evals([(4, 1.20), (8, 1.30), (12, 1.45)])
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    registry = Registry(tmp_path / "registry.sqlite")
    run = registry.create_run("local", CONFIG, run_dir, status="succeeded", run_id="run-1")
    registry.add_evaluation("local", "run-1", {"fine-tuned": {"n": 20, "f1": 0.61}, "rag": {"n": 20, "f1": 0.24}},
                            tmp_path / "eval")

    english = explain(run, registry)
    assert english["curve"] == ("Training loss went from 2.000 at step 1 to 0.100 at step 12. Validation loss went "
                                "from 1.200 at step 4 to 1.450 at step 12, against the training loss's 0.100 there.")
    assert [f["kind"] for f in english["findings"]] == ["overfitting", "beats_baseline"]
    source = english["findings"][0]["source"]
    assert source["path"] == "knowledge/overfitting-and-forgetting.md"
    assert source["quote"].startswith("Overfitting shows up in the loss curves as validation loss rising")
    assert english["next_settings"] == {"epochs": 1, "learning_rate": 2e-4}

    ukrainian = explain(run, registry, language="uk")["findings"][0]
    assert ukrainian["source"]["path"] == "knowledge/uk/overfitting-and-forgetting.md"
    assert explain(run, registry, language="uk")["curve"].startswith("Втрати на навчанні змінилися з 2.000")
    assert ukrainian["message"] == ("Валідаційні втрати були найнижчими на кроці 4 (1.200) і зросли до 1.450 до кроку "
                                    "12, тоді як втрати на навчанні впали з 1.100 до 0.100: перенавчання з кроку 4.")
    assert ukrainian["source"]["heading"] != source["heading"] and "перенавчання" in ukrainian["source"]["quote"].lower()

    hosted = registry.create_run("openai", {"n_epochs": 3}, tmp_path / "run-2", status="succeeded", run_id="run-2")
    assert explain(hosted, registry) == {"run": "run-2", "status": "succeeded", "config": {"n_epochs": 3},
                                         "curve": None, "findings": [], "next_settings": {}}


def test_the_ukrainian_sentences_say_the_same_numbers():
    from string import Formatter

    from training.evaluation.diagnosis import SENTENCES

    def fields(template: str) -> set[tuple[str, str]]:
        return {(name, spec) for _, name, spec, _ in Formatter().parse(template) if name}

    english, ukrainian = SENTENCES["en"], SENTENCES["uk"]
    assert ukrainian.keys() == english.keys()
    for key, said in english.items():
        for translated in ukrainian[key].values() if isinstance(ukrainian[key], dict) else [ukrainian[key]]:
            assert fields(translated) == fields(said if isinstance(said, str) else said["other"]), key
            letters = [c for c in re.sub(r"\{[^}]*\}", "", translated) if c.isalpha()]
            assert sum("а" <= c.lower() <= "я" or c in "іїєґІЇЄҐ" for c in letters) > 0.7 * len(letters), key


async def test_a_capable_model_tells_the_findings_with_the_runs_numbers_only(tmp_path, fake_openai):
    import json

    from assistant.inference.backends import create_backend
    from assistant.tutor.explain import explain, phrased
    from tests.conftest import make_settings
    from training.base.registry import Registry

    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    log = START + steps([2.0, 1.8, 1.7, 1.6, 1.5, 1.45, 3.1, 1.4])
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    registry = Registry(tmp_path / "registry.sqlite")
    report = explain(registry.create_run("local", CONFIG, run_dir, run_id="run-1"), registry, language="uk")
    settings = make_settings(tmp_path / "data", openai_api_key=fake_openai.api_key,
                             openai_base_url=fake_openai.base_url, openai_model=fake_openai.model)
    chat = create_backend("openai", settings)

    told = await phrased(report, chat, "uk")
    assert told == "In short: " + report["findings"][0]["message"] + " [1]"
    request = fake_openai.requests[-1]["messages"]
    assert "in Ukrainian" in request[0]["content"] and "[1] knowledge/uk/hyperparameters.md" in request[0]["content"]
    assert "- Next run: learning_rate=0.0001" in request[1]["content"]

    fake_openai.replies = ["Your loss spiked to 3.1 at step 7, so halve the learning rate to 0.0001 [1]."]
    assert await phrased(report, chat, "uk") is not None  # 3.1 is the run's 3.100, said shorter: not new
    fake_openai.replies = ["Your loss spiked to 4.2 at step 7 [1]."]  # a number the run never had
    assert await phrased(report, chat, "uk") is None
    assert await phrased(report, create_backend("local", settings), "uk") is None  # offline: the rules' sentences
