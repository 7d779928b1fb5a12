"""The tutor: input checks, grounding, sources, and both backends through the same code path."""

import pytest

from assistant.retrieval.grounding import is_grounded, is_supported
from assistant.retrieval.knowledge import KnowledgeBase, Passage
from assistant.tutor.answers import (
    MAX_QUESTION_CHARS,
    Tutor,
    clean_question,
    key_passage,
    mostly_non_latin,
)
from tests.conftest import make_settings
from training.base.errors import TutorError, redact

SOURCE = ("LoRA freezes the pre-trained weights and learns a low-rank update made of two small matrices. "
          "The rank r is typically between 4 and 64.")


def test_clean_question_strips_control_characters():
    assert clean_question("  What is\x00 LoRA?\x1b[31m\x07 ") == "What is LoRA?[31m"


@pytest.mark.parametrize("bad, expected", [
    ("", "Please type a question"), ("   \n\t ", "Please type a question"), ("\x00\x01\x02", "Please type a question"),
    ("x" * 100_000, "100,000 characters"),
])
def test_bad_input_gets_a_clear_reason(bad, expected):
    with pytest.raises(TutorError, match=expected):
        clean_question(bad)


def test_limit_is_inclusive():
    assert len(clean_question("a" * MAX_QUESTION_CHARS)) == MAX_QUESTION_CHARS


def test_language_detection():
    assert mostly_non_latin("Що таке LoRA?")
    assert not mostly_non_latin("What is LoRA?")
    assert not mostly_non_latin("1234 ???")


@pytest.mark.parametrize("sentence, supported", [
    ("LoRA learns a low-rank update made of two small matrices.", True),
    ("LoRA freezes the pre-trained weights.", True),
    ("LoRA is a wireless protocol for low-power radio networks.", False),  # invented
    ("The rank r is typically between 128 and 512.", False),  # numbers not in the source
    ("Yes.", False),  # too short to carry a claim
])
def test_is_supported(sentence, supported):
    assert is_supported(sentence, SOURCE) is supported


def test_is_grounded_rejects_recombined_source_words():
    passages = [Passage("knowledge/lora.md", "LoRA", SOURCE)]
    assert is_grounded("LoRA learns a low-rank update made of two small matrices.", passages)
    # Every content word occurs in the source, yet the claim is not there.
    assert not is_grounded("The small pre-trained matrices learn to freeze every rank update between weights.", passages)


def test_key_passage_cuts_at_a_paragraph_or_else_a_sentence():
    first = "LoRA trains small adapter matrices. " * 10
    with_paragraphs = Passage("p", "h", first + "\n\n" + "Second paragraph is long. " * 60)
    assert key_passage(with_paragraphs) == first.strip()
    one_block = Passage("p", "h", "A sentence that goes on. " * 60)
    lead = key_passage(one_block)
    assert lead.endswith("on.") and 233 < len(lead) <= 700
    assert key_passage(Passage("p", "h", "Just one line.")) == "Just one line."


@pytest.fixture
def tutor(tiny_settings):
    return Tutor(tiny_settings, KnowledgeBase(tiny_settings))


async def test_local_answer_leads_with_the_key_passage_and_lists_sources(tutor):
    result = await tutor.answer("What is LoRA?")
    best = result["sources"][0]
    assert best["path"] == "knowledge/lora-qlora-peft.md"
    assert key_passage(Passage(best["path"], best["heading"], best["text"])) in result["answer"]
    assert "low-rank" in result["answer"].lower()
    assert set(best) == {"path", "heading", "text"} and 1 < len(result["sources"]) <= tutor.settings.top_k


async def test_the_answer_streams_in_pieces(tutor):
    reply = await tutor.ask("How many training examples do I need?")
    pieces = [piece async for piece in reply]
    assert len(pieces) >= 2 and "".join(pieces) == reply.text


async def test_off_topic_or_gibberish_is_not_answered_by_guessing(tutor):
    for question in ("asdkj qwpoe zzzt", "How do I change a bicycle tyre?"):
        result = await tutor.answer(question)
        assert result["sources"] == []
        assert "couldn't find that in my notes" in result["answer"]
        assert "LoRA" in result["answer"]  # it lists what it can explain


async def test_a_ukrainian_question_is_answered_from_the_ukrainian_notes_and_labels(tutor):
    result = await tutor.answer("Як помітити перенавчання?")
    assert result["language"] == "uk" and result["sources"][0]["path"].startswith("knowledge/uk/")
    assert result["answer"].startswith(f"**{result['sources'][0]['heading']}** [1]")
    assert "перенавчання" in result["answer"].lower() and "In short" not in result["answer"]
    off_topic = await tutor.answer("Яка погода буде завтра в Києві?")
    assert off_topic["sources"] == [] and off_topic["answer"].startswith("Я не знайшов цього у своїх нотатках")
    assert "Перенавчання" in off_topic["answer"], "it lists the Ukrainian topics"


async def test_another_script_on_the_offline_model_says_how_to_get_its_language(tutor):
    result = await tutor.answer("什么是LoRA？请解释低秩适配。")  # it names a topic of the notes: answered, from them
    assert result["sources"] and result["sources"][0]["path"] == "knowledge/lora-qlora-peft.md"
    assert "writes English only" in result["answer"] and result["language"] == "en"


async def test_openai_answer_is_generated_from_numbered_notes(tmp_path, indexed_data_dir, fake_openai):
    settings = make_settings(indexed_data_dir, openai_api_key=fake_openai.api_key,
                             openai_base_url=fake_openai.base_url, openai_model=fake_openai.model)
    tutor = Tutor(settings, KnowledgeBase(settings))
    result = await tutor.answer("Що таке LoRA?")
    system, user = fake_openai.requests[-1]["messages"]
    assert user == {"role": "user", "content": "Що таке LoRA?"}
    assert "language the question is written in" in system["content"]
    assert result["sources"] and f"[1] {result['sources'][0]['heading']}" in system["content"]
    assert result["answer"] == f"According to the notes, see {result['sources'][0]['heading']} [1]."


async def test_choosing_openai_without_configuration_is_explained(tutor):
    with pytest.raises(TutorError, match="OPENAI_API_KEY"):
        await tutor.ask("What is LoRA?", backend="openai")


def test_log_records_are_redacted_whatever_the_logger(caplog):
    import logging

    from training.base.errors import install_secret_redaction

    install_secret_redaction("my-custom-secret-token")
    try:
        raise ValueError("bad key my-custom-secret-token")
    except ValueError:
        logging.getLogger("some.library").exception("call failed with %s", "my-custom-secret-token")
    assert "call failed with [redacted]" in caplog.text and "ValueError: bad key [redacted]" in caplog.text
    assert "my-custom-secret-token" not in caplog.text


def test_redact_removes_keys_and_masked_fragments():
    text = "key sk-live-abcdefghijkl and sk-wro***6789 and Bearer abc.def.ghi123"
    cleaned = redact(text, "sk-live-abcdefghijkl")
    assert "abcdefghijkl" not in cleaned and "wro***" not in cleaned and "abc.def" not in cleaned


async def test_a_summary_cut_mid_sentence_ends_at_its_last_whole_sentence(tutor):
    """The model's summary stops at its token budget wherever it is: the half sentence after the last whole one is
    not shown, even when its words are all in the notes (it passed the grounding check before)."""
    import time

    first = ("QLoRA (Quantized LoRA) fine-tunes LoRA adapters on top of a frozen base model stored in 4-bit precision, "
             "which cuts the memory for the base weights to about a quarter of 16-bit.")
    second = ("It was introduced in 2023 and showed that a 65-billion-parameter model could be fine-tuned on a single "
              "48 GB GPU with quality close to 16-bit fine-tuning.")
    passages = [Passage("knowledge/lora-qlora-peft.md", "QLoRA: LoRA on a 4-bit quantised base model", f"{first} {second}")]

    class CutByItsBudget:
        async def stream(self, messages, *, temperature, max_tokens):
            for piece in [first + " ", second.removesuffix(" close to 16-bit fine-tuning.")]:
                yield piece

    shown = "".join([piece async for piece in tutor._summary("What does QLoRA add?", "", passages, CutByItsBudget(),
                                                             0.0, time.monotonic() + 60)])
    assert shown == f"**In short:** {first}"
