"""The design system's colour pairs meet WCAG 2.1 AA, in light and in dark mode: 4.5:1 for
text, 3:1 for focus rings and control borders (1.4.3, 1.4.11). Computed from the CSS itself,
so a changed variable that breaks contrast fails here."""

from __future__ import annotations

import re

import pytest

from diboas.web.assets import STATIC_DIR

CSS = (STATIC_DIR / "css" / "diboas.css").read_text()

TEXT_PAIRS = [
    ("text", "bg"),
    ("text", "surface"),
    ("text", "surface-2"),
    ("muted", "bg"),
    ("muted", "surface"),
    ("link", "bg"),
    ("link", "surface"),
    ("primary", "bg"),  # secondary buttons
    ("primary", "surface-2"),  # secondary button hover
    ("on-primary", "primary"),
    ("on-primary", "primary-hover"),
    ("danger", "bg"),
    ("danger", "danger-bg"),
    ("success", "bg"),
    ("success", "success-bg"),
    ("warning", "bg"),
    ("warning", "warning-bg"),
]
NON_TEXT_PAIRS = [("focus", "bg"), ("focus", "surface"), ("border", "bg")]


def _variables(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-fA-F]{6})", block))


def _schemes() -> dict[str, dict[str, str]]:
    light = _variables(CSS[CSS.index(":root {") : CSS.index("}", CSS.index(":root {"))])
    dark_start = CSS.index("@media (prefers-color-scheme: dark)")
    dark_block = CSS[dark_start : CSS.index("}\n}", dark_start)]
    return {"light": light, "dark": {**light, **_variables(dark_block)}}


def _luminance(hex_colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colour_pairs_meet_wcag_aa(scheme: str) -> None:
    colours = _schemes()[scheme]
    failing = [
        f"{fg} on {bg}: {contrast(colours[fg], colours[bg]):.2f}"
        for fg, bg in TEXT_PAIRS
        if contrast(colours[fg], colours[bg]) < 4.5
    ]
    failing += [
        f"{fg} against {bg}: {contrast(colours[fg], colours[bg]):.2f}"
        for fg, bg in NON_TEXT_PAIRS
        if contrast(colours[fg], colours[bg]) < 3.0
    ]
    assert failing == []


def test_dark_mode_redefines_the_palette() -> None:
    light, dark = _schemes()["light"], _schemes()["dark"]
    assert {k for k in light if light[k] != dark[k]} >= {"bg", "text", "primary", "focus"}
