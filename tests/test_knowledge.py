"""Chunking, incremental indexing and retrieval over a real Chroma store with real embeddings."""

import json
import re
import subprocess
import sys
import textwrap

import pytest

import assistant.retrieval.embeddings
from assistant.retrieval.knowledge import MAX_CHUNK_CHARS, KnowledgeBase, chunk_markdown
from tests.conftest import make_settings

DOC = textwrap.dedent("""\
    # Training Tips

    Short intro to training.

    ## Learning rate

    The learning rate sets the step size.

    ### Warmup

    Warmup ramps the learning rate up.

    ## Epochs

    An epoch is one pass over the data.
    """)


def test_chunks_follow_headings_and_keep_their_path():
    passages = chunk_markdown(DOC, "knowledge/tips.md")
    headings = [p.heading for p in passages]
    assert headings == ["Training Tips", "Learning rate", "Learning rate › Warmup", "Epochs"]
    assert all(p.path == "knowledge/tips.md" and p.title == "Training Tips" for p in passages)
    assert passages[2].text == "Warmup ramps the learning rate up."
    assert "Training Tips › Learning rate › Warmup" in passages[2].embedded_text


def test_long_sections_are_capped():
    long_doc = "# T\n\n## Big\n\n" + "\n\n".join(f"Sentence number {i} about LoRA adapters." * 5 for i in range(60))
    passages = chunk_markdown(long_doc, "knowledge/big.md")
    assert len(passages) > 3
    assert all(len(p.text) <= MAX_CHUNK_CHARS and p.heading == "Big" for p in passages)


@pytest.fixture
def small_kb(tmp_path):
    folder = tmp_path / "knowledge"
    folder.mkdir()
    (folder / "tips.md").write_text(DOC)
    (folder / "data.md").write_text("# Data\n\n## JSONL\n\nEach line holds one chat example with messages.\n")
    settings = make_settings(tmp_path / "data", knowledge_dir=folder)
    return folder, settings


@pytest.fixture
def embed_calls(monkeypatch):
    """Counts the texts actually embedded, through the real encoder."""
    calls = []
    real = assistant.retrieval.embeddings.encode

    def counting(texts):
        calls.extend(texts)
        return real(texts)

    monkeypatch.setattr(assistant.retrieval.embeddings, "encode", counting)
    return calls


def test_sync_is_incremental(small_kb, embed_calls):
    folder, settings = small_kb
    first = KnowledgeBase(settings).sync()
    assert sorted(first.added) == ["knowledge/data.md", "knowledge/tips.md"]
    assert first.chunks_embedded == 5 == len(embed_calls)

    embed_calls.clear()
    again = KnowledgeBase(settings).sync()  # a restart with nothing changed
    assert not again.changed and again.chunks_embedded == 0 and embed_calls == []

    (folder / "data.md").write_text("# Data\n\n## JSONL\n\nEach line is a JSON object with a messages list.\n")
    edited = KnowledgeBase(settings).sync()
    assert edited.updated == ["knowledge/data.md"] and edited.unchanged == ["knowledge/tips.md"]
    assert edited.chunks_embedded == 1 and len(embed_calls) == 1

    (folder / "tips.md").unlink()
    removed = KnowledgeBase(settings).sync()
    kb = KnowledgeBase(settings)
    assert removed.removed == ["knowledge/tips.md"]
    assert kb.collection.count() == 1
    assert {p.path for p in kb.search("learning rate warmup", k=5)} == {"knowledge/data.md"}


def test_search_returns_passages_with_scores(small_kb):
    _, settings = small_kb
    kb = KnowledgeBase(settings)
    kb.sync()
    best, *rest = kb.search("how big is each optimiser step?", k=3)
    assert best.heading == "Learning rate" and best.text == "The learning rate sets the step size."
    assert best.score > rest[-1].score


def test_a_new_process_reopens_the_collection_by_its_registered_embedding_function(small_kb):
    _, settings = small_kb
    KnowledgeBase(settings).sync()
    script = textwrap.dedent(f"""
        import json, chromadb
        import assistant.retrieval.embeddings  # registers the embedding function by name
        client = chromadb.PersistentClient(path={str(settings.data_dir / 'chroma')!r})
        collection = client.get_collection("tutor-knowledge")  # no embedding function passed
        hits = collection.query(query_texts=["one pass over the training data"], n_results=1)
        print(json.dumps(hits["metadatas"][0][0]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["heading"] == "Epochs"


@pytest.mark.parametrize("question, expected_file, expected_words", [
    ("What is LoRA?", "lora-qlora-peft.md", ["low-rank"]),
    ("How many training examples do I need?", "what-you-need.md", ["examples"]),
    ("What does the chat JSONL format look like?", "chat-jsonl-format.md", ["messages"]),
    ("What is catastrophic forgetting?", "overfitting-and-forgetting.md", ["forgetting"]),
    ("Should I use RAG instead of fine-tuning?", ("when-to-fine-tune.md", "alternatives.md"), ["RAG"]),
])
def test_retrieval_on_the_real_knowledge_base(indexed_data_dir, question, expected_file, expected_words):
    kb = KnowledgeBase(make_settings(indexed_data_dir))
    best = kb.search(question)[0]
    files = expected_file if isinstance(expected_file, tuple) else (expected_file,)
    assert best.path in [f"knowledge/{name}" for name in files]
    assert all(re.search(rf"\b{re.escape(word)}\b", best.text, re.IGNORECASE) for word in expected_words), best.text


def test_the_knowledge_base_covers_the_required_topics(indexed_data_dir):
    kb = KnowledgeBase(make_settings(indexed_data_dir))
    assert len(kb.topics()) >= 12
