"""`tutor` as a user runs it: a real subprocess, real index, real model files."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import run_tutor


def test_ask_json_on_the_embedded_model_returns_sources_about_low_rank_adapters(tmp_path, embedded_model_dir, indexed):
    result = run_tutor("ask", "What is LoRA?", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"answer", "sources", "language", "understood_as", "follow_up_of", "searched"}
    assert payload["language"] == "en" and payload["understood_as"] == "new" and payload["follow_up_of"] is None
    assert "low-rank" in payload["answer"].lower()
    assert payload["sources"][0]["path"] == "knowledge/lora-qlora-peft.md"
    assert all(set(s) == {"path", "heading", "text"} for s in payload["sources"])
    assert any("low-rank" in s["text"].lower() for s in payload["sources"])


def test_a_ukrainian_question_gets_a_ukrainian_answer_with_ukrainian_sources_offline(tmp_path, embedded_model_dir,
                                                                                    indexed):
    result = run_tutor("ask", "Що таке катастрофічне забування?", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    letters = [ch for ch in payload["answer"] if ch.isalpha()]
    assert sum("а" <= ch.lower() <= "я" or ch.lower() in "єіїґ" for ch in letters) / len(letters) > 0.8
    assert payload["language"] == "uk" and "Також у нотатках" in payload["answer"]
    assert payload["sources"][0]["path"] == "knowledge/uk/overfitting-and-forgetting.md"
    assert all(s["path"].startswith("knowledge/uk/") for s in payload["sources"])
    assert "English only" not in payload["answer"] and "In short" not in payload["answer"]


def test_ask_text_output_ends_with_sources_and_index_reports_nothing_to_do(tmp_path, embedded_model_dir, indexed):
    result = run_tutor("ask", "How many examples do I need?", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Sources (full passages)\n- [1] knowledge/" in result.stdout
    again = run_tutor("index", tmp_path=tmp_path)
    report = json.loads(again.stdout)
    assert report["chunks_embedded"] == 0 and len(report["unchanged"]) >= 12


@pytest.mark.parametrize("env_extra, expected", [
    ({"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": "9"}, "Can't reach the Chroma server at 127.0.0.1:9"),
    ({"TUTOR_TOP_K": "zero"}, "TUTOR_TOP_K"),
    ({"OPENAI_API_KEY": "sk-cli-secret-0123456789", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
     "Can't reach the model server"),
])
def test_failures_are_one_clear_line_without_traceback_or_key(tmp_path, env_extra, expected, indexed):
    result = run_tutor("ask", "What is LoRA?", "--json", env_extra=env_extra, tmp_path=tmp_path)
    assert result.returncode == 1
    assert expected in json.loads(result.stdout)["error"]
    assert "Traceback" not in result.stderr
    assert "sk-cli-secret" not in result.stdout + result.stderr


def test_settings_command_masks_the_key(tmp_path):
    result = run_tutor("settings", env_extra={"OPENAI_API_KEY": "sk-cli-secret-0123456789"}, tmp_path=tmp_path)
    shown = json.loads(result.stdout)
    assert shown["openai_api_key"] == "set (hidden)" and shown["effective_backend"] == "openai"
    assert "sk-cli-secret" not in result.stdout + result.stderr


def test_check_in_the_terminal_ends_in_a_recommendation(tmp_path):
    answers = "\n".join(["1", "1", "1", "9", "1", "1", "3", "2", "2"]) + "\n"  # 9 is out of range
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    result = subprocess.run([sys.executable, "-m", "assistant.cli.main", "check"], input=answers, capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Please type a number from 1 to 3" in result.stdout
    assert "## Yes, fine-tune" in result.stdout and "**Why:**" in result.stdout
