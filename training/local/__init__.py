"""The local trainer: LoRA or QLoRA on one run directory (`python -m training.local.lora RUN_DIR`), its config,
batches, model, checkpoints, the estimate before Start with its throughput probe, the catalog of base models, and
the token view (what the trainer trains on). Only lora.py and lora_model.py load torch when imported."""
