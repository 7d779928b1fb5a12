"""A run's checkpoints: RUN_DIR/checkpoints/step-N/ with the adapter, the optimizer and scheduler states and the
progress, written whole or not at all (staged, then renamed), the last KEEP_CHECKPOINTS kept. Finding them needs no
torch, so whoever only lists or resumes runs (the app, `tutor jobs`, `tutor serve`) does not load it.

    latest_checkpoint(run_dir)    # the folder a resumed run continues from, or None
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

KEEP_CHECKPOINTS = 2


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, progress: dict) -> Path:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder = run_dir / "checkpoints"
    staging = folder / f".step-{progress['step']}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(model).items()}, staging / "adapter.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "state.pt")
    (staging / "progress.json").write_text(json.dumps(progress))
    final = folder / f"step-{progress['step']}"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)  # a checkpoint is either whole or absent
    for old in sorted(checkpoints(run_dir), key=lambda p: int(p.name[5:]))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    return [p for p in folder.glob("step-*") if (p / "progress.json").exists()] if folder.exists() else []


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return max(found, key=lambda p: int(p.name[5:])) if found else None


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> dict:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(folder / "adapter.safetensors"))
    state = torch.load(folder / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return json.loads((folder / "progress.json").read_text())
