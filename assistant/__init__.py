"""Fine-Tuning Tutor's chat side: the Chainlit app (app.py), the grounded tutor (tutor.py) and its parts.

Modules, one idea each: settings (configuration), errors (learner-facing errors, redaction),
models (offline model loading), embeddings + vectorstore + knowledge (retrieval), backends (chat
model registry), tutor (grounded answers), decision ("Should I fine-tune?"), service (process-wide
tutor), app (Chainlit handlers), cli (`tutor` command).
"""
