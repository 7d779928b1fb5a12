"""Fine-Tuning Tutor's training side: everything a run needs, and the base layer the whole app stands on. It never
imports `assistant/`, so the trainer starts without the chat.

    base/        settings, errors, API clients, the registry and its typed records, models on disk, machine facts,
                 quotas, the text catalog
    jobs/        a run's events (events.jsonl), how each surface shows them, and the training queue
    data/        recipes -> chat JSONL, validation like the OpenAI cookbook's, token counts and cost
    models/      downloads from the Hugging Face Hub, GGUF export for llama.cpp
    evaluation/  metrics, the held-out evaluation, the diagnosis of a run, charts
    local/       the local LoRA/QLoRA trainer, its estimate before Start and its catalog of base models
    backends/    training backends behind one registry: local, OpenAI-compatible APIs, Azure OpenAI

The order of these layers, lowest first, is stated and enforced in tests/test_layers.py.
"""
