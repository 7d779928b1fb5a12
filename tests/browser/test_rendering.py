"""What the custom elements look like, not only what they hold: the token view's trained tokens stand out from the
context in the light theme and the dark one, and stay readable in both.

Chainlit serves its own compiled Tailwind CSS, which holds only the classes its own UI uses: a class it lacks
(bg-green-200 was one) renders nothing, silently. Hence computed styles, read from the page, in each theme.
"""

import time

import pytest

from tests.browser.conftest import MODEL, UI, click_until

pytestmark = pytest.mark.browser

# The colours the page really shows for an element: its own background laid over the first opaque one behind it,
# its text colour (with the element's opacity), and whether <html> carries Chainlit's `dark` class.
LOOK = """element => {
    const rgba = text => {
        const [r, g, b, a = 1] = text.match(/[\\d.]+/g).map(Number);
        return [r, g, b, a];
    };
    const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
        const colour = rgba(getComputedStyle(node).backgroundColor);
        if (colour[3] > 0) layers.push(colour);
        if (colour[3] === 1) break;
    }
    let background = [255, 255, 255, 1];  // the canvas, when nothing behind is opaque
    for (const layer of layers.reverse()) background = over(layer, background);
    return {background: background.slice(0, 3), text: over(rgba(getComputedStyle(element).color), background).slice(0, 3),
            dark: document.documentElement.classList.contains("dark")};
}"""


def luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    """WCAG contrast ratio: 4.5 is the minimum for body text."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def choose_theme(page, name: str) -> None:
    """As a learner does: the header's theme menu. The menu can re-render under the pointer while the page is still
    busy (its item "not stable", then detached): it is closed and opened again until the theme is on."""
    deadline = time.time() + UI / 1000
    while True:
        try:
            page.locator("#theme-toggle").click(timeout=15_000)
            page.get_by_role("menuitem", name=f"{name.capitalize()} Theme").click(timeout=15_000)
            page.wait_for_function(f"document.documentElement.classList.contains({name!r})", timeout=15_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try the menu again
            if time.time() > deadline:
                raise
            page.keyboard.press("Escape")


def test_trained_tokens_stand_out_in_both_themes(page):
    page.locator('[id="starter-prepare-recipe-dataset"]').click()
    page.get_by_role("button", name="Use the bundled sample").click()
    page.locator(".step").filter(has_text="Dataset ready").last.wait_for(timeout=MODEL)
    view = page.locator("#token-view").last
    click_until(page.get_by_role("button", name="See what is trained").last, view, MODEL)
    trained, context = view.locator('[data-kind="trained"]').first, view.locator('[data-kind="context"]').first
    looks = {}
    for theme in ("light", "dark"):
        choose_theme(page, theme)
        looks[theme] = {kind: piece.evaluate(LOOK) for kind, piece in (("trained", trained), ("context", context))}
    for theme, look in looks.items():
        assert look["trained"]["dark"] == (theme == "dark")
        # A highlight the eye catches (50 of 441 in RGB distance: green-100 on white is 39), as readable as text must be.
        assert distance(look["trained"]["background"], look["context"]["background"]) > 50, (theme, look)
        assert contrast(look["trained"]["text"], look["trained"]["background"]) >= 4.5, (theme, look)
    # The theme did switch: the page behind the context tokens went from light to dark.
    assert luminance(looks["light"]["context"]["background"]) > 0.5 > luminance(looks["dark"]["context"]["background"])
