"""'Explain my run': the diagnosis rules (training/evaluation/diagnosis.py) applied to a learner's run, each finding with
the knowledge passage it rests on quoted (from the Ukrainian notes for a Ukrainian reader), and the settings
of the run the most urgent finding recommends. Offline and deterministic: rules and passages, no model.

    explain(run, registry, owner, "uk")  # {"run", "status", "config", "curve" (what it shows, or None without
                                         #   a curve here), "findings": [{kind, message, facts, cites,
                                         #   change, source}], "next_settings"}; messages and quotes in Ukrainian
    tutor explain RUN [--json]
"""

from __future__ import annotations

import re
from pathlib import Path

from assistant.retrieval.knowledge import LANGUAGES
from training.base.records import Run
from training.evaluation.diagnosis import curve, diagnose, next_settings
from training.jobs.events import read

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"
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


def explain(run: Run, registry, owner: str | None = None, language: str = "en") -> dict:
    """The findings for a run (its events, when it has them here) and its latest evaluation, each quoting its
    source, and the settings the most urgent finding recommends for the next run."""
    evaluation = next((e for e in registry.evaluations(owner) if e.run_id == run.id), None)
    events = read(Path(run.run_dir))[0] if run.run_dir else []
    findings = diagnose(events, run.config, evaluation and evaluation.summary)
    shape = curve(events)
    return {"run": run.id, "status": run.status, "config": run.config,
            "curve": shape.message(language) if shape else None,
            "findings": [{"kind": f.kind, "message": f.message(language),
                          "facts": f.facts, "cites": f.cites, "change": f.change, "source": quote(f.cites, language)}
                         for f in findings],
            "next_settings": next_settings(run.config, findings)}


PHRASE_SYSTEM = (
    "You explain a learner's own fine-tuning run to them, in {language}, in at most 120 words. Use only the "
    "findings and the numbered notes below: say what the run's numbers show and what to try next. Keep every "
    "number exactly as written and add none; cite the notes as [1], [2]. No headings.")
LANGUAGE_NAMES = {"en": "English", "uk": "Ukrainian"}
NUMBER = re.compile(r"\d+(?:[.,]\d+)?(?:e-?\d+)?")


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", ".") for n in NUMBER.findall(text)}


def from_report(number: str, allowed: set[str]) -> bool:
    """`number` is one of `allowed`, or one of them rounded to the decimals it shows (0.75 for 0.746)."""
    decimals = len(number.split(".")[1]) if "." in number and "e" not in number else None
    return any(float(a) == float(number) or (decimals is not None and round(float(a), decimals) == float(number))
               for a in allowed)


async def phrased(report: dict, chat, language: str = "en") -> str | None:
    """The findings told by a capable chat model, citing the notes by number; None when the backend is the
    embedded model (the rules' own sentences are shown), or when the model wrote a number the report did not
    have: every number shown must come from the run."""
    if chat.name == "local" or not report["findings"]:
        return None
    notes = [f"[{i}] {f['source']['path']} › {f['source']['heading']}: {f['source']['quote']}"
             for i, f in enumerate(report["findings"], 1)]
    findings = [f"- {f['message']} [{i}]" for i, f in enumerate(report["findings"], 1)]
    if report["curve"]:
        findings.append(f"- What the curve shows: {report['curve']}")
    changes = {k: v for k, v in report["next_settings"].items() if report["config"].get(k) != v}
    if changes:
        findings.append("- Next run: " + ", ".join(f"{k}={v}" for k, v in changes.items()))
    messages = [{"role": "system", "content": PHRASE_SYSTEM.format(language=LANGUAGE_NAMES[language])
                 + "\n\nNotes:\n" + "\n".join(notes)},
                {"role": "user", "content": "Findings about my run:\n" + "\n".join(findings)}]
    answer = "".join([piece async for piece in chat.stream(messages, temperature=0.0, max_tokens=400)]).strip()
    allowed = numbers_in("\n".join(findings)) | {str(i) for i in range(1, len(notes) + 1)}
    return answer if answer and all(from_report(n, allowed) for n in numbers_in(answer)) else None
