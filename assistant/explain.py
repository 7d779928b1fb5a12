"""'Explain my run': the diagnosis rules (training/diagnosis.py) applied to a learner's run, each finding with
the knowledge passage it rests on quoted (from the Ukrainian notes for a Ukrainian reader), and the settings
of the run the most urgent finding recommends. Offline and deterministic: rules and passages, no model.

    explain(run, registry, owner)  # {"run", "curve", "findings": [{kind, message, source, change}], "next_settings"}
    tutor explain RUN [--json]
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

from assistant.knowledge import LANGUAGES
from training.diagnosis import diagnose, next_settings
from training.events import read

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"
QUOTE_SENTENCES = 2


def _sections(path: Path) -> list[tuple[str, str]]:
    """(heading, body) of each '## ' section of a knowledge file, in order."""
    parts = re.split(r"^## (.+)$", path.read_text(encoding="utf-8"), flags=re.M)
    return [(parts[i].strip(), parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def quote(cited: tuple[str, str], language: str = "en") -> dict:
    """The cited section's opening sentences, from the same section of the language's version of the file
    (the versions keep their headings in step, so the n-th section is the same topic)."""
    path, heading = cited
    english = KNOWLEDGE / Path(path).name
    position = [title for title, _ in _sections(english)].index(heading)
    source = KNOWLEDGE / language / english.name if language != "en" and language in LANGUAGES else english
    title, body = _sections(source)[position]
    paragraph = body.split("\n\n")[0]
    opening = " ".join(re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split()))[:QUOTE_SENTENCES])
    return {"path": f"knowledge/{source.relative_to(KNOWLEDGE).as_posix()}", "heading": title, "quote": opening}


def explain(run: dict, registry, owner: str | None = None, language: str = "en") -> dict:
    """The findings for a run (its events, when it has them here) and its latest evaluation, each quoting its
    source, and the settings the most urgent finding recommends for the next run."""
    evaluation = next((e for e in registry.evaluations(owner) if e.get("run_id") == run["id"]), None)
    events = read(Path(run["run_dir"]))[0] if run.get("run_dir") else []
    findings = diagnose(events, run["config"], evaluation and evaluation["summary"])
    return {"run": run["id"], "status": run["status"], "curve": any(e.get("type") == "step" for e in events),
            "findings": [{**asdict(f), "source": quote(f.cites, language)} for f in findings],
            "next_settings": next_settings(run["config"], findings)}
