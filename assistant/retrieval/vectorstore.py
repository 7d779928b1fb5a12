"""Chroma, embedded or as a server, behind one function.

`open_collection(settings, name)` returns a chromadb collection that records the registered MiniLM
embedding function and cosine space; `langchain_store` wraps it in LangChain's Chroma vector store.
With CHROMA_HOST set the same code talks to a Chroma server (`chroma run --path DIR --port 8000`);
otherwise it uses a PersistentClient under data_dir/chroma.
"""

from __future__ import annotations

import logging

import chromadb
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma

from assistant.retrieval.embeddings import MiniLMEmbeddingFunction, MiniLMEmbeddings
from training.base.errors import TutorError
from training.base.settings import Settings

log = logging.getLogger(__name__)


def chroma_client(settings: Settings):
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        try:
            client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:
            raise TutorError(
                f"Can't reach the Chroma server at {settings.chroma_host}:{settings.chroma_port}. "
                "Start it (`chroma run --path DIR --port PORT`) or unset CHROMA_HOST to use the embedded store."
            ) from exc
        return client
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def open_collection(client, name: str):
    return client.get_or_create_collection(
        name=name, embedding_function=MiniLMEmbeddingFunction(), configuration={"hnsw": {"space": "cosine"}}
    )


def langchain_store(client, name: str) -> Chroma:
    """LangChain's view of a collection created by `open_collection` (which it must not re-create)."""
    open_collection(client, name)
    return Chroma(client=client, collection_name=name, embedding_function=MiniLMEmbeddings(),
                  create_collection_if_not_exists=False)
