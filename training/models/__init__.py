"""Models beyond the embedded one: downloads from the Hugging Face Hub, only when a learner asks (hub.py, in a child
process: hub_download.py), and GGUF export for llama.cpp (a base, or a fine-tune merged into it)."""
