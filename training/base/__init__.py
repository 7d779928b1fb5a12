"""The base layer, imported by everything and importing nothing above it, with no import side effects (the process
is configured by `common.configure_process()`, called by each entry point): settings, errors and redaction, API
clients, the registry (registry.py, schema in registry_schema.py, typed rows in records.py), models on disk,
machine facts, quotas, and the text catalog (texts.py over texts/<language>.toml)."""
