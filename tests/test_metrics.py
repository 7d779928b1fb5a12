"""Scores of extracted ingredient lists against hand-computed cases."""

import pytest

from training.evaluation.metrics import (
    named_items,
    normalize,
    parse_list,
    percentile,
    score_answer,
    set_scores,
    summarize,
)


@pytest.mark.parametrize("item, expected", [
    ("  Brown   Sugar ", "brown sugar"), ("eggs", "egg"), ("Tomatoes", "tomato"), ("berries", "berry"),
    ("green onions", "green onion"), ("glass", "glass"), ("hummus", "hummus"), ("oats", "oat"), ("gas", "gas"),
])
def test_normalize_folds_case_whitespace_and_plural_s(item, expected):
    assert normalize(item) == expected


def test_set_scores_by_hand():
    # predicted {flour, sugar, salt} vs gold {flour, sugar, egg, milk}: 2 hits, P=2/3, R=2/4, F1=4/7
    precision, recall, f1 = set_scores(["Flour", "sugars", "salt"], ["flour", "sugar", "eggs", "milk"])
    assert (precision, recall) == pytest.approx((2 / 3, 1 / 2)) and f1 == pytest.approx(4 / 7)
    assert set_scores(None, ["flour"]) == (0.0, 0.0, 0.0)
    assert set_scores(["salt"], ["flour"]) == (0.0, 0.0, 0.0)


def test_score_answer_counts_valid_json_and_exact_match():
    assert score_answer('Sure: ["Eggs", "milk"]', ["egg", "Milk"]) == {
        "valid_json": True, "precision": 1.0, "recall": 1.0, "f1": 1.0, "exact_match": True}
    partial = score_answer('["eggs"]', ["egg", "milk"])
    assert partial["exact_match"] is False and partial["f1"] == pytest.approx(2 / 3)
    broken = score_answer("eggs and milk", ["egg"])
    assert broken == {"valid_json": False, "precision": 0.0, "recall": 0.0, "f1": 0.0, "exact_match": False}
    assert parse_list('["a", 1]') == ["a", "1"] and parse_list("[not json]") is None


def test_a_list_cut_off_before_its_bracket_is_scored_on_its_finished_items():
    # A real RAG answer stopped at its repetition (100-recipe run, 2026-11-30): before, it scored 0.
    cut = '["baking powder", "baking soda", "baking soda", "baking soda'
    assert named_items(cut) == ["baking powder", "baking soda", "baking soda"]
    scores = score_answer(cut, ["egg", "flour", "baking powder", "salt"])
    assert scores["valid_json"] is False and scores["exact_match"] is False
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (1 / 4) / (1 / 2 + 1 / 4))  # P 1/2 (set of 2), R 1/4
    assert named_items('Sure: ["a\\"b", "c", "d') == ['a"b', "c"]  # escapes read; the unfinished "d left out
    assert named_items('["a", "\\x", "b') == ["a"]  # an escape JSON does not know is no finished item
    assert named_items("eggs and milk") is None and named_items("[") is None
    assert named_items('["a"] and then ["b') == ["a"], "a closed list comes first"


def test_percentiles_and_summary_by_hand():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    rows = [{"precision": 1, "recall": 1, "f1": 1, "exact_match": True, "valid_json": True, "prompt_tokens": 100,
             "completion_tokens": 10, "latency_s": 1.0},
            {"precision": 0, "recall": 0, "f1": 0, "exact_match": False, "valid_json": False, "prompt_tokens": 300,
             "completion_tokens": 20, "latency_s": 3.0}]
    summary = summarize(rows)
    assert summary == {"n": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5, "exact_match": 0.5, "valid_json_rate": 0.5,
                       "mean_prompt_tokens": 200.0, "mean_completion_tokens": 15.0, "p50_latency_s": 2.0,
                       "p95_latency_s": pytest.approx(2.9), "stops": {"unknown": 2}}
