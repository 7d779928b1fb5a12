"""Grounding of the local tutor's "In short" summary: technical terms must be spelled as the notes spell them."""

import pytest

from assistant.retrieval.grounding import (
    is_grounded,
    is_supported,
    technical_terms,
    unknown_terms,
)
from assistant.retrieval.knowledge import Passage
from training.base.settings import PROJECT_ROOT


def qlora_passage() -> Passage:
    """The QLoRA section of the notes, as retrieval hands it to the tutor."""
    notes = (PROJECT_ROOT / "knowledge" / "lora-qlora-peft.md").read_text(encoding="utf-8")
    heading = "## QLoRA: LoRA on a 4-bit quantised base model"
    section = notes.split(heading, 1)[1].split("\n## ", 1)[0].strip()
    assert section.startswith("QLoRA (Quantized LoRA) fine-tunes LoRA adapters on top of a frozen base model")
    return Passage("knowledge/lora-qlora-peft.md", heading.lstrip("# "), section)


# What SmolLM2 wrote as the summary of that section, and the tutor showed: LoRA misspelled, then truncated.
MISSPELLED = "QLoRA (Quantized LoRa) fine-tunes LoR adapters on top of a"


def test_a_misspelled_and_truncated_term_is_refused():
    passage = qlora_passage()
    assert unknown_terms(MISSPELLED, passage.text) == {"LoRa", "LoR"}
    assert not is_supported(MISSPELLED, passage.text)
    assert not is_grounded(MISSPELLED, [passage])


def test_the_same_sentence_spelled_as_the_notes_is_kept():
    passage = qlora_passage()
    sentence = "QLoRA (Quantized LoRA) fine-tunes LoRA adapters on top of a frozen base model stored in 4-bit precision."
    assert unknown_terms(sentence, passage.text) == set()
    assert is_grounded(sentence, [passage])


@pytest.mark.parametrize("sentence", [
    # Capitalised at the start of a sentence, lower case in the notes ("The LoRA adapters themselves...").
    "Adapters themselves are trained in higher precision, typically bfloat16.",
    # Capitalised names: only their first letter is a capital.
    "In Hugging Face this is configured with BitsAndBytesConfig and a paged optimiser.",
    # A plural of a term the notes spell exactly: GPUs for GPU.
    "Optimiser states can be paged between GPUs and CPU memory to survive memory spikes.",
])
def test_ordinary_capitalised_words_pass(sentence):
    assert is_supported(sentence, qlora_passage().text)


@pytest.mark.parametrize("text, terms", [
    ("QLoRA (Quantized LoRa) fine-tunes LoR adapters", {"QLoRA", "LoRa", "LoR"}),
    ("The PEFT library reads JSONL on a GPU.", {"PEFT", "JSONL", "GPU"}),
    ("A Quantized model, I think, is What Hugging Face ships.", set()),
    ("LoRA's rank and bnb_4bit_quant_type, on SmolLM2-135M.", {"LoRA", "SmolLM2", "135M"}),
])
def test_technical_terms(text, terms):
    assert technical_terms(text) == terms


@pytest.mark.parametrize("sentence, unknown", [
    ("LORA and QLORA adapters", {"LORA", "QLORA"}),  # upper case where the notes write LoRA
    ("QLoRA and LoRA adapters", set()),
    ("Lora and lora adapters", set()),  # no terms: ordinary words, left to the content-word check
])
def test_terms_are_compared_case_and_all(sentence, unknown):
    assert unknown_terms(sentence, "LoRA and QLoRA adapters, trained with PEFT") == unknown
