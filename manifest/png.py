"""Just enough PNG to write our icons and to check any icon: 8-bit, non-interlaced, zlib only."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# PNG colour types and the samples each pixel has.
_GREY, _RGB, _PALETTE, _GREY_ALPHA, _RGBA = 0, 2, 3, 4, 6
_CHANNELS = {_GREY: 1, _RGB: 3, _PALETTE: 1, _GREY_ALPHA: 2, _RGBA: 4}


class PngError(ValueError):
    """The bytes are not a PNG this module can read; the message says why."""


@dataclass(frozen=True)
class Image:
    """Pixels as RGBA bytes, row after row, whatever the file stored."""

    width: int
    height: int
    rgba: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int, int]:
        """The (red, green, blue, alpha) of one pixel."""
        i = (y * self.width + x) * 4
        r, g, b, a = self.rgba[i : i + 4]
        return r, g, b, a

    def pixels(self) -> list[tuple[int, int, int, int]]:
        """Every pixel, row after row."""
        data = self.rgba
        return [(data[i], data[i + 1], data[i + 2], data[i + 3]) for i in range(0, len(data), 4)]


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def encode_rgba(width: int, height: int, rgba: bytes) -> bytes:
    """A PNG (colour type 6, 8 bits) of RGBA pixels; the same pixels always give the same bytes."""
    if len(rgba) != width * height * 4:
        raise ValueError(f"expected {width * height * 4} bytes of RGBA, got {len(rgba)}")
    stride = width * 4
    raw = b"".join(b"\x00" + rgba[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, _RGBA, 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> bytearray:
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        raise PngError(f"image data has {len(raw)} bytes, expected {height * (stride + 1)}")
    out = bytearray(height * stride)
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            up_left = previous[i - bpp] if i >= bpp else 0
            if kind == 0:
                continue
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, up, up_left)) & 0xFF
            else:
                raise PngError(f"unknown filter type {kind} in row {y}")
        out[y * stride : (y + 1) * stride] = line
        previous = line
    return out


def decode(data: bytes) -> Image:
    """Read a PNG into RGBA pixels; raises PngError for anything else or a damaged file."""
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG file (wrong signature)")
    pos = len(SIGNATURE)
    header: tuple[int, ...] | None = None
    palette = b""
    transparency = b""
    idat = bytearray()
    ended = False
    while pos < len(data):
        if pos + 8 > len(data):
            raise PngError("file ends inside a chunk header")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc_bytes = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            raise PngError(f"file ends inside the {kind!r} chunk")
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", crc_bytes)[0]:
            raise PngError(f"damaged {kind.decode('latin-1')} chunk (CRC mismatch)")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            transparency = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            ended = True
            break
    if header is None:
        raise PngError("no IHDR chunk")
    if not ended:
        raise PngError("no IEND chunk")
    width, height, depth, colour, _compression, _filter, interlace = header
    if colour not in _CHANNELS:
        raise PngError(f"unknown colour type {colour}")
    if depth != 8:
        raise PngError(f"bit depth {depth} is not supported here; save the icon as 8-bit")
    if interlace:
        raise PngError("interlaced PNGs are not supported here; save the icon non-interlaced")
    if width == 0 or height == 0:
        raise PngError("image has no pixels")
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as error:
        raise PngError(f"image data does not decompress: {error}") from None
    channels = _CHANNELS[colour]
    samples = _unfilter(raw, width, height, channels)
    return Image(width, height, bytes(_to_rgba(samples, colour, palette, transparency)))


def _to_rgba(samples: bytearray, colour: int, palette: bytes, transparency: bytes) -> bytearray:
    if colour == _RGBA:
        return samples
    count = len(samples) // _CHANNELS[colour]
    out = bytearray(count * 4)
    for n in range(count):
        if colour == _RGB:
            r, g, b = samples[n * 3 : n * 3 + 3]
            a = 255
            if len(transparency) == 6 and (r, g, b) == (
                transparency[1],
                transparency[3],
                transparency[5],
            ):
                a = 0
        elif colour == _GREY:
            r = g = b = samples[n]
            a = 0 if len(transparency) == 2 and samples[n] == transparency[1] else 255
        elif colour == _GREY_ALPHA:
            r = g = b = samples[n * 2]
            a = samples[n * 2 + 1]
        else:
            index = samples[n]
            if index * 3 + 3 > len(palette):
                raise PngError(f"palette index {index} is outside the palette")
            r, g, b = palette[index * 3 : index * 3 + 3]
            a = transparency[index] if index < len(transparency) else 255
        out[n * 4 : n * 4 + 4] = bytes((r, g, b, a))
    return out
