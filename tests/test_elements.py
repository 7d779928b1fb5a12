"""The custom elements (public/elements/*.jsx) style themselves only with what Chainlit's page has: Chainlit serves
its own compiled Tailwind CSS, which holds only the classes its own UI uses, so any other class does nothing (the
token view's trained tokens once looked like the rest: bg-green-200 is not there). A class is either in that CSS,
or one of the test hooks below, which style nothing; anything else is styled inline."""

import re
from pathlib import Path

import chainlit

from training.base.settings import PROJECT_ROOT

HOOKS = {"ab-answer", "ab-stats"}  # names tests/browser find elements by
CSS = "".join(path.read_text(encoding="utf-8")
              for path in (Path(chainlit.__file__).parent / "frontend" / "dist" / "assets").glob("*.css"))


def classes(source: str) -> set[str]:
    """Every class named in a className string (a literal, or the literals of an expression)."""
    found = set()
    for value in re.findall(r'className=(\{[^}]*\}|"[^"]*")', source):
        for literal in re.findall(r'"([^"]*)"', value):
            found.update(literal.split())
    return found


def in_chainlit_css(name: str) -> bool:
    escaped = re.sub(r"([:/.\[\]%])", r"\\\1", name)  # Tailwind's selector for md:p-2, w-1/2, ...
    return re.search(rf"\.{re.escape(escaped)}(?![\w-])", CSS) is not None


def test_every_class_of_a_custom_element_is_in_chainlits_css():
    assert len(CSS) > 10_000 and in_chainlit_css("text-muted-foreground") and not in_chainlit_css("bg-green-200")
    elements = sorted((PROJECT_ROOT / "public" / "elements").glob("*.jsx"))
    assert elements
    missing = {f"{path.name}: {name}" for path in elements for name in classes(path.read_text(encoding="utf-8"))
               if name not in HOOKS and not in_chainlit_css(name)}
    assert not missing, f"not in Chainlit's CSS (style inline instead): {sorted(missing)}"
