"""Jobs: a run's typed events (events.jsonl: written by the trainer, followed from an offset), their one
presentation for the CLI, the chat and the OpenAI-shaped API, and the fair training queue with its launcher."""
