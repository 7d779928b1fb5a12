"""The tutor's knowledge base: knowledge/*.md, chunked by heading, embedded into Chroma.

Two languages: English in knowledge/*.md, Ukrainian in knowledge/uk/*.md (the same topics and headings; a test
keeps them in step). A question is answered from the passages of its own language (`question_language`):
English by the embeddings in Chroma; Ukrainian, which the English-only MiniLM reads poorly, by character n-gram
TF-IDF (assistant/retrieval/lexical.py) over the Ukrainian files, chunked the same way and held in memory (no embeddings,
so no Chroma). benchmarks/retrieval_uk.py measured the choice: on 16 Ukrainian questions the right
topic came among the 3 passages shown for 88% with n-grams, 50% with MiniLM, and 69% with both fused by rank.

Chunks follow the markdown structure (LangChain's MarkdownHeaderTextSplitter, then a size cap), so
every passage carries its file and heading path ("LoRA, QLoRA and PEFT › LoRA") as its source.
`sync()` is incremental: each chunk records the sha256 of its file; only new or changed files are
re-embedded and deleted files are dropped, so a start-up with nothing changed embeds nothing.

    python -m assistant.retrieval.knowledge sync          # index (incrementally) and print what changed
    python -m assistant.retrieval.knowledge search "what is LoRA"
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from assistant.retrieval.lexical import LexicalIndex
from assistant.retrieval.vectorstore import chroma_client, langchain_store
from training.base.settings import Settings

log = logging.getLogger(__name__)

COLLECTION = "tutor-knowledge"
HEADING_SEPARATOR = " › "
MAX_CHUNK_CHARS = 1500
# Part of every file's hash: bump it when chunking changes, so the next sync re-chunks everything.
CHUNKING_VERSION = "4"
LANGUAGES = ("en", "uk")  # English at knowledge/, the others in a folder of their own: knowledge/uk/
_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


@dataclass(frozen=True)
class Passage:
    """A chunk of the knowledge base, as stored and as shown to the learner as a source."""

    path: str
    heading: str
    text: str
    score: float = 0.0
    title: str = ""

    @property
    def embedded_text(self) -> str:
        """What gets embedded: the text in the context of its file title and heading (a file's opening overview,
        headed by the title itself, names it once: twice, its words outweighed the sections' in n-gram search)."""
        head = self.title if self.heading == self.title else f"{self.title} › {self.heading}"
        return f"{head}\n\n{self.text}"

    def as_source(self) -> dict:
        return {"path": self.path, "heading": self.heading, "text": self.text}


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks_embedded: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def passage_language(path: str) -> str:
    """'uk' for knowledge/uk/..., else 'en'."""
    parts = Path(path).parts
    return parts[1] if len(parts) > 2 and parts[1] in LANGUAGES else "en"


def question_language(text: str) -> str:
    """'uk' when at least 30% of the question's letters are Cyrillic (a Ukrainian question names LoRA, QLoRA or
    JSONL in Latin letters: "Що QLoRA додає до LoRA?" is half Latin), else 'en': the default, and the language
    of every other script the notes do not cover."""
    letters = [ch for ch in text if ch.isalpha()]
    cyrillic = sum("\u0400" <= ch <= "\u04ff" for ch in letters)
    return "uk" if letters and cyrillic / len(letters) >= 0.3 else "en"


def file_hash(text: str) -> str:
    return hashlib.sha256(f"{CHUNKING_VERSION}\n{text}".encode("utf-8")).hexdigest()


def chunk_markdown(text: str, path: str) -> list[Passage]:
    """Split one markdown file into heading-scoped passages of at most MAX_CHUNK_CHARS."""
    sections = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True).split_text(text)
    splitter = RecursiveCharacterTextSplitter(chunk_size=MAX_CHUNK_CHARS, chunk_overlap=150)
    title = Path(path).stem.replace("-", " ").capitalize()
    passages = []
    for section in sections:
        levels = [section.metadata[key] for _, key in _HEADERS if key in section.metadata]
        # The file's own title is implied by its path; keep the section path below it.
        heading = HEADING_SEPARATOR.join(levels[1:] if len(levels) > 1 else levels) or title
        for piece in splitter.split_text(section.page_content):
            if piece.strip():
                passages.append(Passage(path=path, heading=heading, text=piece.strip(), title=levels[0] if levels else title))
    return passages


class KnowledgeBase:
    """Chunks of knowledge/ in a Chroma collection, searchable through LangChain."""

    def __init__(self, settings: Settings, client=None):
        self.settings = settings
        self.root = settings.knowledge_dir
        self.client = client or chroma_client(settings)
        self.store = langchain_store(self.client, COLLECTION)
        self.collection = self.store._collection
        self._lexical_cache: tuple[tuple | None, tuple[list[Passage], LexicalIndex] | None] = (None, None)

    def _files(self, language: str) -> dict[str, str]:
        """{relative path: text} of the language's markdown files, keyed as 'knowledge/<name>.md' in English and
        'knowledge/uk/<name>.md' in Ukrainian."""
        files = {}
        for file in sorted(self.root.rglob("*.md")):
            key = f"{self.root.name}/{file.relative_to(self.root).as_posix()}"
            if passage_language(key) == language:
                files[key] = file.read_text(encoding="utf-8", errors="replace")
        return files

    def _indexed_hashes(self) -> dict[str, str]:
        stored = self.collection.get(include=["metadatas"])
        return {meta["path"]: meta["file_hash"] for meta in stored["metadatas"] or []}

    def sync(self) -> SyncReport:
        """Bring the index in line with knowledge/, embedding only what changed."""
        report = SyncReport()
        files = self._files("en")
        indexed = self._indexed_hashes()
        for path in sorted(set(indexed) - set(files)):
            self.collection.delete(where={"path": path})
            report.removed.append(path)
        for path, text in files.items():
            digest = file_hash(text)
            if indexed.get(path) == digest:
                report.unchanged.append(path)
                continue
            if path in indexed:
                self.collection.delete(where={"path": path})
                report.updated.append(path)
            else:
                report.added.append(path)
            passages = chunk_markdown(text, path)
            self.store.add_documents(
                [Document(page_content=p.embedded_text,
                          metadata={"path": p.path, "heading": p.heading, "title": p.title,
                                    "file_hash": digest, "position": i})
                 for i, p in enumerate(passages)],
                ids=[f"{path}#{i}" for i in range(len(passages))],
            )
            report.chunks_embedded += len(passages)
        if report.changed:
            log.info("Knowledge index: %d added, %d updated, %d removed, %d chunks embedded",
                     len(report.added), len(report.updated), len(report.removed), report.chunks_embedded)
        return report

    def search(self, query: str, k: int | None = None, language: str | None = None,
               paths: list[str] | None = None) -> list[Passage]:
        """The k passages of the query's language (or `language`) closest to it, best first, from every file or
        from `paths` only. Score: the cosine similarity of the embeddings in English, of the character n-grams in
        Ukrainian."""
        k = k or self.settings.top_k
        language = language or question_language(query)
        if language != "en":
            return self._lexical_search(query, k, language, paths)
        if self.collection.count() == 0:
            return []
        where = {"path": {"$in": paths}} if paths else None
        hits = self.store.similarity_search_with_score(query, k=k, filter=where)
        passages = []
        for doc, distance in hits:
            meta = doc.metadata
            prefix = Passage(meta["path"], meta["heading"], "", title=meta["title"]).embedded_text
            passages.append(Passage(path=meta["path"], heading=meta["heading"], title=meta["title"],
                                    text=doc.page_content.removeprefix(prefix), score=1.0 - distance))
        return passages

    def _lexical_search(self, query: str, k: int, language: str, paths: list[str] | None = None) -> list[Passage]:
        """The k passages of the language whose character n-grams are closest to the query's."""
        passages, index = self._lexical(language)
        scores = index.scores(query) if passages else []
        chosen = [i for i in range(len(scores)) if not paths or passages[i].path in paths]
        best = sorted(chosen, key=scores.__getitem__, reverse=True)[:k]
        return [replace(passages[i], score=scores[i]) for i in best]

    def _lexical(self, language: str) -> tuple[list[Passage], LexicalIndex]:
        """The language's passages and their n-gram index, built again only when its files changed."""
        files = self._files(language)
        key = tuple((path, file_hash(text)) for path, text in files.items())
        if self._lexical_cache[0] != key:
            passages = [p for path, text in files.items() for p in chunk_markdown(text, path)]
            self._lexical_cache = (key, (passages, LexicalIndex([p.embedded_text for p in passages])))
        return self._lexical_cache[1]

    def file_passages(self, path: str) -> list[Passage]:
        """The passages of one file of the notes ('knowledge/x.md', 'knowledge/uk/x.md'), in order; [] if none."""
        parts = Path(path).parts
        file = self.root.joinpath(*parts[1:]).resolve()
        if parts[:1] != (self.root.name,) or not file.is_relative_to(self.root.resolve()) or file.suffix != ".md" \
                or not file.is_file():
            return []
        return chunk_markdown(file.read_text(encoding="utf-8", errors="replace"), path)

    def topics(self, language: str = "en") -> list[str]:
        """The titles of the knowledge files in a language, for 'here is what I can explain'."""
        titles = []
        for path, text in self._files(language).items():
            first = next((line for line in text.splitlines() if line.startswith("# ")), None)
            titles.append(first[2:].strip() if first else Path(path).stem)
        return titles


if __name__ == "__main__":
    import json
    import sys

    from training.base.common import configure_process
    from training.base.settings import get_settings

    configure_process()
    kb = KnowledgeBase(get_settings())
    if sys.argv[1:2] == ["search"]:
        for passage in kb.search(" ".join(sys.argv[2:])):
            print(f"{passage.score:.3f}  {passage.path} › {passage.heading}")
    else:
        print(json.dumps(asdict(kb.sync()), indent=2))
