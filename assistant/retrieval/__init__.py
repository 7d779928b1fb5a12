"""Retrieval: knowledge/*.md chunked by heading and embedded into Chroma (embedded or a server), with all-MiniLM-L6-v2
embeddings offline, character n-gram search for languages the embeddings can't read, and grounding checks."""
