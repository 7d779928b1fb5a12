"""The tutor's knowledge base: knowledge/*.md, chunked by heading, embedded into Chroma.

Chunks follow the markdown structure (LangChain's MarkdownHeaderTextSplitter, then a size cap), so
every passage carries its file and heading path ("LoRA, QLoRA and PEFT › LoRA") as its source.
`sync()` is incremental: each chunk records the sha256 of its file; only new or changed files are
re-embedded and deleted files are dropped, so a start-up with nothing changed embeds nothing.

    python -m assistant.knowledge sync          # index (incrementally) and print what changed
    python -m assistant.knowledge search "what is LoRA"
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from assistant.vectorstore import chroma_client, langchain_store
from training.settings import Settings

log = logging.getLogger(__name__)

COLLECTION = "tutor-knowledge"
HEADING_SEPARATOR = " › "
MAX_CHUNK_CHARS = 1500
# Part of every file's hash: bump it when chunking changes, so the next sync re-chunks everything.
CHUNKING_VERSION = "3"
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
        """What gets embedded: the text in the context of its file title and heading."""
        return f"{self.title} › {self.heading}\n\n{self.text}"

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

    def _files(self) -> dict[str, str]:
        """{relative path: text} of every markdown file, keyed as 'knowledge/<name>.md'."""
        files = {}
        for file in sorted(self.root.rglob("*.md")):
            key = f"{self.root.name}/{file.relative_to(self.root).as_posix()}"
            files[key] = file.read_text(encoding="utf-8", errors="replace")
        return files

    def _indexed_hashes(self) -> dict[str, str]:
        stored = self.collection.get(include=["metadatas"])
        return {meta["path"]: meta["file_hash"] for meta in stored["metadatas"] or []}

    def sync(self) -> SyncReport:
        """Bring the index in line with knowledge/, embedding only what changed."""
        report = SyncReport()
        files = self._files()
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

    def search(self, query: str, k: int | None = None) -> list[Passage]:
        """The k passages closest to the query, best first, with cosine similarity as score."""
        k = k or self.settings.top_k
        if self.collection.count() == 0:
            return []
        hits = self.store.similarity_search_with_score(query, k=k)
        passages = []
        for doc, distance in hits:
            meta = doc.metadata
            prefix = Passage(meta["path"], meta["heading"], "", title=meta["title"]).embedded_text
            passages.append(Passage(path=meta["path"], heading=meta["heading"], title=meta["title"],
                                    text=doc.page_content.removeprefix(prefix), score=1.0 - distance))
        return passages

    def topics(self) -> list[str]:
        """The titles of the knowledge files, for 'here is what I can explain'."""
        titles = []
        for path, text in self._files().items():
            first = next((line for line in text.splitlines() if line.startswith("# ")), None)
            titles.append(first[2:].strip() if first else Path(path).stem)
        return titles


if __name__ == "__main__":
    import json
    import sys

    from training.common import configure_process
    from training.settings import get_settings

    configure_process()
    kb = KnowledgeBase(get_settings())
    if sys.argv[1:2] == ["search"]:
        for passage in kb.search(" ".join(sys.argv[2:])):
            print(f"{passage.score:.3f}  {passage.path} › {passage.heading}")
    else:
        print(json.dumps(asdict(kb.sync()), indent=2))
