"""Images the build draws itself: a two-colour canvas, wrapped text, a PNG.

Cards are drawn in 8-bit grey, where 0 is the paper and 255 the ink, and
saved as a palette PNG whose palette runs from the paper colour to the ink
colour. Text stays anti-aliased, nothing needs quantising, and a card is a
few tens of kilobytes. The font is the one Pillow ships (Aileron), so the
pixels do not depend on the fonts a machine has installed.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import TypeAlias

from PIL import Image, ImageDraw, ImageFont

#: Bump when the drawing changes, so cached images are redrawn.
VERSION = "1"

Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.cache
def font(size: int) -> Font:
    """Pillow's bundled font at *size* pixels."""
    return ImageFont.load_default(size=size)


def wrap(text: str, size: int, width: int, max_lines: int) -> list[str]:
    """*text* broken into at most *max_lines* lines of at most *width* pixels;
    an ellipsis ends the last line when the text does not fit."""
    face = font(size)
    words = text.split()
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if not current or face.getlength(candidate) <= width:
            current = candidate
            continue
        lines.append(current)
        current = word
        if len(lines) == max_lines:
            return _ellipsis(lines, face, width)
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        return _ellipsis(lines[:max_lines], face, width)
    return lines


def _ellipsis(lines: list[str], face: Font, width: int) -> list[str]:
    last = lines[-1]
    while last and face.getlength(last + " …") > width:
        last = last.rpartition(" ")[0]
    return [*lines[:-1], (last + " …").strip()]


@dataclass(frozen=True)
class Canvas:
    """A grey canvas and the two colours it is printed in."""

    width: int
    height: int
    paper: tuple[int, int, int]
    ink: tuple[int, int, int]

    def new(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        image = Image.new("L", (self.width, self.height), 0)
        return image, ImageDraw.Draw(image)

    def png(self, image: Image.Image) -> bytes:
        """*image* as a palette PNG in this canvas's two colours."""
        printed = Image.frombytes("P", image.size, image.tobytes())
        palette: list[int] = []
        for level in range(256):
            palette += [
                round(p + (i - p) * level / 255)
                for p, i in zip(self.paper, self.ink, strict=True)
            ]
        printed.putpalette(palette)
        out = io.BytesIO()
        printed.save(out, "PNG", compress_level=6)
        return out.getvalue()


def text_block(
    draw: ImageDraw.ImageDraw,
    lines: list[str],
    *,
    x: int,
    y: int,
    size: int,
    leading: int,
    level: int,
) -> int:
    """Draw *lines* from (*x*, *y*) in grey *level*; return the next free *y*."""
    face = font(size)
    for line in lines:
        draw.text((x, y), line, font=face, fill=level)
        y += leading
    return y
