"""Inference: the local generation engine (engine.py, one worker thread serving every request fairly) over a
declared runtime interface (runtime.py) with two runtimes, llama.cpp (GGUF) and transformers; and the chat backends
(backends.py: local, OpenAI-compatible, Azure), one registry in the shape of simonw/llm's plugins."""
