"""Procedural pictures of one flat shape on a flat background, and their captions.

Everything is drawn on a 64x64 canvas (the model's native size) with 4x supersampling, so edges are anti-aliased the
same way every time. A `Picture` is the ground truth; `caption()` writes it in words, optionally leaving parts out
("a red circle", "a small red circle on a blue background, top left") so short prompts are in the training
distribution too.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

SIZE = 64
# Well separated in RGB so that the scorer's nearest-colour rule is unambiguous.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 135, 25),
    "purple": (140, 60, 190),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 10.0, "large": 15.0}  # circumradius-like scale in pixels of the 64 canvas
POSITIONS: dict[str, tuple[float, float]] = {
    "top left": (18.0, 18.0),
    "top right": (46.0, 18.0),
    "bottom left": (18.0, 46.0),
    "bottom right": (46.0, 46.0),
    "center": (32.0, 32.0),
}
JITTER = 2.0  # pixels the centre may move from its named position
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Picture:
    color: str
    shape: str
    background: str
    size: str = "large"
    position: str = "center"
    dx: float = 0.0
    dy: float = 0.0

    @property
    def center(self) -> tuple[float, float]:
        x, y = POSITIONS[self.position]
        return x + self.dx, y + self.dy


def caption(picture: Picture, *, size: bool = True, background: bool = True, position: bool = True) -> str:
    words = ["a"] + ([picture.size] if size else []) + [picture.color, picture.shape]
    text = " ".join(words)
    if background:
        text += f" on a {picture.background} background"
    if position:
        text += f", {picture.position}"
    return text


def random_picture(rng: np.random.Generator, triples: list[tuple[str, str, str]] | None = None) -> Picture:
    """A random picture; `triples` limits (colour, shape, background) to those given (the training split)."""
    if triples is None:
        color = str(rng.choice(list(COLORS)))
        background = str(rng.choice([c for c in COLORS if c != color]))
        shape = str(rng.choice(SHAPES))
    else:
        color, shape, background = triples[int(rng.integers(len(triples)))]
    return Picture(color, shape, background, str(rng.choice(list(SIZES))), str(rng.choice(list(POSITIONS))),
                   float(rng.uniform(-JITTER, JITTER)), float(rng.uniform(-JITTER, JITTER)))


def random_caption(picture: Picture, rng: np.random.Generator) -> str:
    """The picture's caption with each optional part left out now and then."""
    return caption(picture, size=rng.random() < 0.5, background=rng.random() < 0.7, position=rng.random() < 0.6)


def all_triples() -> list[tuple[str, str, str]]:
    return [(c, s, b) for c in COLORS for s in SHAPES for b in COLORS if b != c]


def split_triples(held_out_share: float = 0.1) -> tuple[list, list]:
    """(train, held_out) lists of (colour, shape, background). The held-out combinations never appear in training, so
    generating them tests composition; each of their words is still seen in other combinations. Fixed by a hash, not
    by a seed, so the split can't drift between training and tests."""
    train, held = [], []
    for triple in all_triples():
        bucket = zlib.crc32(" ".join(triple).encode()) % 1000
        (held if bucket < held_out_share * 1000 else train).append(triple)
    return train, held


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> np.ndarray | None:
    """Corner points of a square or an upward triangle (None for a circle), in pixels."""
    if shape == "square":
        h = r * 0.85
        return np.array([(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)])
    if shape == "triangle":
        rr = r * 1.15
        angles = [-math.pi / 2, -math.pi / 2 + 2 * math.pi / 3, -math.pi / 2 + 4 * math.pi / 3]
        # Lowered by a quarter of the radius so the triangle's box is centred like the other shapes'.
        return np.array([(cx + rr * math.cos(a), cy + rr * math.sin(a) + rr / 4) for a in angles])
    if shape == "circle":
        return None
    raise ValueError(f"unknown shape '{shape}' (known: {', '.join(SHAPES)})")


def draw(picture: Picture, size: int = SIZE) -> np.ndarray:
    """The picture as an RGB uint8 array (size x size); coordinates scale from the 64 canvas."""
    import cv2

    s = _SUPERSAMPLE * size / SIZE
    big = np.empty((size * _SUPERSAMPLE, size * _SUPERSAMPLE, 3), np.uint8)
    big[:] = COLORS[picture.background]
    cx, cy = picture.center
    r = SIZES[picture.size]
    color = tuple(int(v) for v in COLORS[picture.color])
    polygon = shape_polygon(picture.shape, cx, cy, r)
    if polygon is None:
        cv2.circle(big, (round(cx * s), round(cy * s)), round(r * s), color, thickness=-1)
    else:
        cv2.fillPoly(big, [np.round(polygon * s).astype(np.int32)], color)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
