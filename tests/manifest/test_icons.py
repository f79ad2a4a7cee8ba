"""The icons: the committed ones are what the drawing code makes and pass the checks; bad icons
(wrong size, colour in the outline, no transparency, not a PNG) are refused."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from manifest.build import COLOR_ICON_FILE, OUTLINE_ICON_FILE, Sources, build_package
from manifest.icons import ACCENT, WHITE, Shape, color_icon, ellipse, outline_icon, render
from manifest.png import SIGNATURE, PngError, decode, encode_rgba
from manifest.validate import PackageError, icon_problems
from tests.manifest.conftest import make_details


def _outline(background: tuple[int, int, int, int] | None, colour: tuple[int, int, int]) -> bytes:
    dot = Shape(ellipse(16, 16, 10, 10), (6, 6, 26, 26), colour)
    return encode_rgba(32, 32, render(32, [dot], background))


def test_the_committed_icons_are_the_drawing() -> None:
    assert COLOR_ICON_FILE.read_bytes() == color_icon()
    assert OUTLINE_ICON_FILE.read_bytes() == outline_icon()


def test_the_committed_icons_pass_the_checks() -> None:
    assert icon_problems("color.png", COLOR_ICON_FILE.read_bytes(), outline=False) == []
    assert icon_problems("outline.png", OUTLINE_ICON_FILE.read_bytes(), outline=True) == []


def test_the_outline_icon_is_white_on_transparency() -> None:
    image = decode(OUTLINE_ICON_FILE.read_bytes())
    pixels = image.pixels()

    assert (image.width, image.height) == (32, 32)
    assert all(p[:3] == (255, 255, 255) for p in pixels if p[3])
    assert image.pixel(0, 0)[3] == 0
    assert sum(1 for p in pixels if p[3] == 255) > 100


def test_the_color_icon_is_192_pixels_on_the_accent_colour() -> None:
    image = decode(COLOR_ICON_FILE.read_bytes())

    assert (image.width, image.height) == (192, 192)
    assert image.pixel(0, 0) == (*ACCENT, 255)


def test_an_outline_icon_with_colour_is_refused() -> None:
    problems = icon_problems("outline.png", _outline(None, (0x2D, 0x5C, 0x8F)), outline=True)

    assert len(problems) == 1
    assert "may only use white (#FFFFFF) and transparency" in problems[0]


def test_an_outline_icon_without_transparency_is_refused() -> None:
    problems = icon_problems("outline.png", _outline((*WHITE, 255), WHITE), outline=True)

    assert problems == ["outline.png: the outline icon needs a transparent background"]


def test_an_outline_icon_of_the_wrong_size_is_refused() -> None:
    data = encode_rgba(48, 48, bytes(48 * 48 * 4))

    assert icon_problems("outline.png", data, outline=True) == [
        "outline.png: the outline icon must be 32x32 pixels, not 48x48"
    ]


def test_a_color_icon_that_is_not_a_png_is_refused() -> None:
    problems = icon_problems("color.png", b"GIF89a....", outline=False)

    assert problems == ["color.png: not a PNG file (wrong signature)"]


def test_a_bad_icon_stops_the_build(tmp_path: Path, sources: Sources) -> None:
    sources.outline_icon.write_bytes(_outline(None, (255, 0, 0)))
    output = tmp_path / "app.zip"

    with pytest.raises(PackageError, match=r"outline\.png \(icons\.outline\): the outline icon"):
        build_package(make_details(), output, sources)

    assert not output.exists()


def test_a_color_icon_of_the_wrong_size_stops_the_build(tmp_path: Path, sources: Sources) -> None:
    sources.color_icon.write_bytes(encode_rgba(96, 96, bytes([45, 92, 143, 255]) * 96 * 96))

    with pytest.raises(PackageError, match="the color icon must be 192x192 pixels, not 96x96"):
        build_package(make_details(), tmp_path / "app.zip", sources)


# The PNG reader, on files it did not write.


def _png(width: int, height: int, colour: int, rows: bytes, extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        SIGNATURE
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_the_reader_reads_back_what_was_written() -> None:
    rgba = bytes(range(256)) * (8 * 8 * 4 // 256)

    image = decode(encode_rgba(8, 8, rgba))

    assert (image.width, image.height, image.rgba) == (8, 8, rgba)


def test_the_reader_undoes_every_row_filter() -> None:
    # Two RGB pixels per row; rows use filters None, Sub, Up, Average and Paeth.
    rows = [
        (0, [10, 20, 30, 40, 50, 60]),
        (1, [10, 20, 30, 30, 30, 30]),
        (2, [1, 1, 1, 1, 1, 1]),
        (3, [5, 10, 15, 20, 25, 30]),
        (4, [0, 0, 0, 0, 0, 0]),
    ]
    raw = b"".join(bytes([kind, *data]) for kind, data in rows)

    image = decode(_png(2, 5, 2, raw))

    assert image.pixel(0, 0) == (10, 20, 30, 255)
    assert image.pixel(1, 1) == (40, 50, 60, 255)  # Sub: left + delta
    assert image.pixel(0, 2) == (11, 21, 31, 255)  # Up: above + 1
    assert image.pixel(0, 3) == (10, 20, 30, 255)  # Average: 11 // 2 + 5, ...
    assert image.pixel(1, 3) == (45, 60, 75, 255)  # (10 + 41) // 2 + 20, ...
    assert image.pixel(0, 4) == image.pixel(0, 3)  # Paeth picks above at the left edge


def test_the_reader_reads_palette_transparency() -> None:
    palette = b"\x00\x00\x00" + b"\xff\xff\xff"
    chunks = b""
    for kind, body in ((b"PLTE", palette), (b"tRNS", b"\x00")):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    image = decode(_png(2, 1, 3, b"\x00\x00\x01", chunks))

    assert image.pixels() == [(0, 0, 0, 0), (255, 255, 255, 255)]


def test_the_reader_refuses_a_damaged_file() -> None:
    data = bytearray(encode_rgba(4, 4, bytes(64)))
    data[-20] ^= 0xFF

    with pytest.raises(PngError, match="CRC mismatch"):
        decode(bytes(data))
