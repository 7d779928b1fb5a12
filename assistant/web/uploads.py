"""Files a learner attaches in chat: checked, kept under an opaque id with their real suffix, owned.

Chainlit keeps an upload in the session's temporary folder. Here it is checked (a .csv or .jsonl, at most
TUTOR_MAX_UPLOAD_MB), copied in chunks to DATA_DIR/uploads/<id><suffix> and recorded in the registry for
its learner. From then on only the id travels in buttons; the learner's file name is shown, never a path.

    python -m assistant.web.uploads FILE      # how a file name is shown
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from assistant.i18n import text
from assistant.web import history
from assistant.web.accounts import Learner
from training.base import quotas
from training.base.errors import TutorError
from training.base.registry import Registry, new_id
from training.base.settings import Settings

ACCEPTED = (".csv", ".jsonl")


def shown_name(name: str) -> str:
    """A client's file name made safe to show: its last part, without control or markdown characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = re.sub(r"[^\w .,()+-]", "_", base).strip(" .") or "file"
    return cleaned[:80]


def check_disk(settings: Settings, registry: Registry, learner: Learner, adding: int = 0, language: str = "en"):
    """The learner's disk quota, their chat files counted (blocking: call it off the loop)."""
    quotas.check_disk(settings, registry, learner.id, adding, history.files_bytes(settings, learner.id), language)


def keep(registry: Registry, settings: Settings, learner: Learner, name: str, path: str,
         language: str = "en") -> dict:
    """Check and keep one upload (blocking: call it off the loop); returns its registry row. A refusal says why
    in `language`."""
    shown = shown_name(name)
    suffix = Path(shown).suffix.lower()
    if suffix not in ACCEPTED:
        raise TutorError(text("uploads.wrong_kind", language, name=shown))
    size = Path(path).stat().st_size
    if size > settings.max_upload_mb * 2**20:
        raise TutorError(text("uploads.too_big", language, name=shown, size=size / 2**20, limit=settings.max_upload_mb))
    check_disk(settings, registry, learner, size, language)
    file_id = new_id("file")
    folder = settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{file_id}{suffix}"
    staging = target.with_name(f".{target.name}.tmp")
    try:
        with open(path, "rb") as source, open(staging, "wb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)
    return registry.add_file(learner.id, shown, target, purpose="dataset", file_id=file_id)


if __name__ == "__main__":
    import sys

    print(shown_name(sys.argv[1]))
