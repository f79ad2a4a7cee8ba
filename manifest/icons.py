"""Draws Frontdesk's two Teams icons: a reception desk bell.

`python -m manifest.icons` writes `manifest/color.png` (192x192, full-bleed accent background) and
`manifest/outline.png` (32x32, white on transparent). The PNGs are committed; rerun this only to
change the drawing. Shapes are sampled 4x4 per pixel, so edges are smooth and the output is the
same bytes every time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from manifest.png import encode_rgba

logger = logging.getLogger(__name__)

MANIFEST_DIR = Path(__file__).resolve().parent
COLOR_ICON = MANIFEST_DIR / "color.png"
OUTLINE_ICON = MANIFEST_DIR / "outline.png"

ACCENT = (0x2D, 0x5C, 0x8F)
"""The colour icon's background; the manifest's accentColor is the same (#2D5C8F)."""
GOLD = (0xF5, 0xC4, 0x51)
DARK_GOLD = (0xC9, 0x93, 0x2A)
LIGHT_GOLD = (0xFC, 0xE7, 0xA8)
WHITE = (0xFF, 0xFF, 0xFF)

SAMPLES = 4

Inside = Callable[[float, float], bool]


@dataclass(frozen=True)
class Shape:
    """A filled region: a test for points and the box that holds it (pixels)."""

    inside: Inside
    box: tuple[float, float, float, float]
    colour: tuple[int, int, int]


def ellipse(cx: float, cy: float, rx: float, ry: float) -> Inside:
    return lambda x, y: ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float) -> Inside:
    def inside(x: float, y: float) -> bool:
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return False
        dx = max(x0 + r - x, 0.0, x - (x1 - r))
        dy = max(y0 + r - y, 0.0, y - (y1 - r))
        return dx * dx + dy * dy <= r * r

    return inside


def dome(cx: float, base: float, rx: float, ry: float) -> Inside:
    """The upper half of an ellipse standing on the line y = base."""
    body = ellipse(cx, base, rx, ry)
    return lambda x, y: y <= base and body(x, y)


def crescent(outer: Inside, cut: Inside, limit: Inside) -> Inside:
    return lambda x, y: outer(x, y) and not cut(x, y) and limit(x, y)


def render(size: int, shapes: list[Shape], background: tuple[int, int, int, int] | None) -> bytes:
    """RGBA bytes: the shapes painted in order over the background (transparent when None)."""
    pixels = [list(background or (255, 255, 255, 0)) for _ in range(size * size)]
    step = 1.0 / SAMPLES
    offsets = [(i + 0.5) * step for i in range(SAMPLES)]
    for shape in shapes:
        bx0, by0, bx1, by1 = shape.box
        for py in range(max(0, int(by0) - 1), min(size, int(by1) + 2)):
            for px in range(max(0, int(bx0) - 1), min(size, int(bx1) + 2)):
                hits = sum(1 for oy in offsets for ox in offsets if shape.inside(px + ox, py + oy))
                if hits:
                    _paint(pixels[py * size + px], shape.colour, hits / (SAMPLES * SAMPLES))
    return bytes(value for pixel in pixels for value in pixel)


def _paint(pixel: list[int], colour: tuple[int, int, int], coverage: float) -> None:
    """Source-over compositing of `colour` at `coverage` onto one pixel."""
    dst_alpha = pixel[3] / 255
    out_alpha = coverage + dst_alpha * (1 - coverage)
    for c in range(3):
        mixed = colour[c] * coverage + pixel[c] * dst_alpha * (1 - coverage)
        pixel[c] = round(mixed / out_alpha) if out_alpha else 255
    pixel[3] = round(out_alpha * 255)


def color_icon() -> bytes:
    """192x192: a gold desk bell on a white plate, on the accent colour edge to edge."""
    shapes = [
        Shape(rounded_rect(38, 122, 154, 138, 8), (38, 122, 154, 138), WHITE),
        Shape(dome(96, 118, 52, 54), (44, 64, 148, 118), GOLD),
        Shape(
            crescent(
                ellipse(96, 118, 42, 44),
                ellipse(102, 124, 42, 44),
                lambda x, y: x < 92 and y < 112,
            ),
            (54, 74, 92, 112),
            LIGHT_GOLD,
        ),
        Shape(rounded_rect(42, 112, 150, 121, 4), (42, 112, 150, 121), DARK_GOLD),
        Shape(rounded_rect(91, 56, 101, 68, 2), (91, 56, 101, 68), DARK_GOLD),
        Shape(ellipse(96, 54, 9, 9), (87, 45, 105, 63), DARK_GOLD),
    ]
    return encode_rgba(192, 192, render(192, shapes, (*ACCENT, 255)))


def outline_icon() -> bytes:
    """32x32: the same bell in white, on transparency."""
    shapes = [
        Shape(rounded_rect(4, 23, 28, 26, 1.5), (4, 23, 28, 26), WHITE),
        Shape(dome(16, 22, 11, 11.5), (5, 10, 27, 22), WHITE),
        Shape(rounded_rect(14.75, 6.5, 17.25, 11, 0.5), (14.75, 6.5, 17.25, 11), WHITE),
        Shape(ellipse(16, 6.5, 2.25, 2.25), (13.75, 4.25, 18.25, 8.75), WHITE),
    ]
    return encode_rgba(32, 32, render(32, shapes, None))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    COLOR_ICON.write_bytes(color_icon())
    OUTLINE_ICON.write_bytes(outline_icon())
    logger.info("wrote %s and %s", COLOR_ICON, OUTLINE_ICON)
    return 0


if __name__ == "__main__":
    sys.exit(main())
