"""Training backends behind one registry (registry.py, in the shape of simonw/llm's plugins): local LoRA (local.py),
OpenAI and any OpenAI-compatible fine-tuning API (openai_api.py), Azure OpenAI (azure.py). Tests register fakes the
same way."""
