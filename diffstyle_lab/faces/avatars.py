"""Procedural cartoon faces with known factors (the embedded default model's data).

Faces come from DiceBear (``dicebear-core`` + ``dicebear-styles``) rasterised offline with ``resvg-py``
(the optional ``[data]`` extra). Every face is a pure function of its :class:`Factors`, so a data set
is reproducible from a seed and each image carries its ground truth: **content** factors (family,
hair, eyes, mouth, clothes: *who* the face is; and its **pose**: rotation, scale, position, mirror),
what the paper expects to live in h; **style** factors (background, skin, hair and clothing colours),
what it expects x_T and the skip connections to carry.

Licences (attribute them wherever derived weights are shipped): ``big-smile`` — CC BY 4.0, remix of
"Custom Avatar" by Ashley Seo; ``pixel-art`` — CC0 1.0, "Pixel Art" by DiceBear.
"""

from __future__ import annotations

import dataclasses
import io
import json
from functools import lru_cache

import numpy as np

FAMILIES = ("big-smile", "pixel-art")

# Style palettes (hex, no '#'). Fixed lists so a classifier can name the colour of every face.
BACKGROUNDS = ("ffd5dc", "c0aede", "b6e3f4", "d1f4d9", "ffdfbf", "f4f1a6",
               "3c3c6e", "8a1c1c", "1f5f3a", "2b2b2b", "ffffff", "e07a5f")
SKINS = {
    "big-smile": ("ffe4c0", "f5d7b1", "efcc9f", "e2ba87", "c99c62", "a47539", "8c5a2b", "643d19"),
    "pixel-art": ("ffdbac", "f5cfa0", "eac393", "e0b687", "cb9e6e", "b68655", "a26d3d", "8d5524"),
}
HAIR_COLOURS = {
    "big-smile": ("220f00", "3a1a00", "71472d", "e2ba87", "605de4", "238d80", "d56c0c", "e9b729"),
    "pixel-art": ("cab188", "603a14", "83623b", "611c17", "28150a", "009bbd", "bd1700", "91cb15"),
}
CLOTHING = ("5bc0de", "428bca", "03396c", "88d8b0", "00b159", "ff6f69", "d11141", "ffc425")

# Pose: discrete values so every result can be compared with a render at either image's value.
ROTATIONS = (-30, 0, 30)          # degrees
SCALES = (0.8, 1.0, 1.2)
SHIFTS = (-15, 0, 15)             # DiceBear translateX/Y, percent of the image
FLIPS = ("none", "horizontal")
POSE_KEYS = ("rotate", "scale", "shift_x", "shift_y", "flip")
CONTENT_KEYS = ("family", "hair", "eyes", "mouth", "clothes") + POSE_KEYS
STYLE_KEYS = ("background", "skin", "hair_colour", "clothing")


@dataclasses.dataclass(frozen=True)
class Factors:
    """Ground truth of one face. ``clothes``/``clothing`` are ``""`` for families without them."""

    family: str
    hair: str
    eyes: str
    mouth: str
    clothes: str
    background: str
    skin: str
    hair_colour: str
    clothing: str
    rotate: int = 0
    scale: float = 1.0
    shift_x: int = 0
    shift_y: int = 0
    flip: str = "none"

    def content(self) -> dict:
        return {k: getattr(self, k) for k in CONTENT_KEYS}

    def style(self) -> dict:
        return {k: getattr(self, k) for k in STYLE_KEYS}


@lru_cache(maxsize=None)
def _style(family: str):
    from importlib.resources import files
    try:
        from dicebear import Style
        import resvg_py  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "rendering faces needs the optional data extra: pip install 'diffstyle_lab[data]' "
            "(dicebear-core, dicebear-styles, resvg-py)") from e
    if family not in FAMILIES:
        raise ValueError(f"unknown face family {family!r}; choose one of {FAMILIES}")
    return Style(json.loads(files("dicebear_styles").joinpath(family + ".json").read_text("utf-8")))


@lru_cache(maxsize=None)
def variants(family: str) -> dict:
    """The feature variants a family offers: {'hair': (...), 'eyes': (...), ...}."""
    from dicebear import OptionsDescriptor
    desc = OptionsDescriptor(_style(family)).to_json()
    return {k: tuple(desc[k + "Variant"]["values"]) if desc.get(k + "Variant") else ("",)
            for k in ("hair", "eyes", "mouth", "clothes")}


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def random_pose(rng: np.random.Generator) -> dict:
    """One of the 162 discrete poses, uniformly."""
    return {"rotate": _pick(rng, ROTATIONS), "scale": _pick(rng, SCALES), "shift_x": _pick(rng, SHIFTS),
            "shift_y": _pick(rng, SHIFTS), "flip": _pick(rng, FLIPS)}


def random_content(rng: np.random.Generator, family: str | None = None, pose: bool = True) -> dict:
    """Random content factors; ``pose=False`` keeps the upright, centred pose (the first data set's draw)."""
    family = family or _pick(rng, FAMILIES)
    v = variants(family)
    out = {"family": family, **{k: _pick(rng, v[k]) for k in ("hair", "eyes", "mouth", "clothes")}}
    return {**out, **random_pose(rng)} if pose else out


def random_style(rng: np.random.Generator, family: str) -> dict:
    return {"background": _pick(rng, BACKGROUNDS), "skin": _pick(rng, SKINS[family]),
            "hair_colour": _pick(rng, HAIR_COLOURS[family]),
            "clothing": _pick(rng, CLOTHING) if family == "pixel-art" else ""}


def random_factors(rng: np.random.Generator, family: str | None = None, pose: bool = True) -> Factors:
    c = random_content(rng, family, pose)
    return Factors(**c, **random_style(rng, c["family"]))


def render(f: Factors, size: int = 32) -> np.ndarray:
    """Render one face to an ``size``×``size``×3 uint8 array."""
    import resvg_py
    from dicebear import Avatar
    from PIL import Image

    opts = {"seed": "diffstyle", "size": size, "backgroundColor": [f.background],
            "skinColor": [f.skin], "hairColor": [f.hair_colour],
            "hairVariant": [f.hair], "hairProbability": 100,
            "eyesVariant": [f.eyes], "mouthVariant": [f.mouth], "accessoriesProbability": 0,
            "rotate": f.rotate, "scale": f.scale, "translateX": f.shift_x, "translateY": f.shift_y,
            "flip": [f.flip]}
    if f.family == "pixel-art":
        opts.update({"clothesVariant": [f.clothes], "clothingColor": [f.clothing], "clothesProbability": 100,
                     "beardProbability": 0, "hatProbability": 0, "glassesProbability": 0})
    svg = Avatar(_style(f.family), opts).to_string()
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def to_tensor(images: np.ndarray):
    """N×H×W×3 uint8 faces → N×3×H×W float tensor in [−1, 1]."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def make_faces(n: int, seed: int, size: int = 32, pose: bool = True) -> tuple[np.ndarray, list[Factors]]:
    """``n`` random faces (uint8 N×H×W×3) and their factors, deterministic in ``seed``;
    ``pose=False`` draws the first shipped model's data (upright, centred faces)."""
    rng = np.random.default_rng(seed)
    fs = [random_factors(rng, pose=pose) for _ in range(n)]
    return np.stack([render(f, size) for f in fs]) if fs else np.zeros((0, size, size, 3), np.uint8), fs


def same_identity_other_colours(f: Factors, rng: np.random.Generator) -> Factors:
    """The same face (content factors kept) in freshly drawn colours."""
    return Factors(**f.content(), **random_style(rng, f.family))


def other_identity_same_colours(f: Factors, rng: np.random.Generator, pose: bool = True) -> Factors:
    """Another face of the same family in the same colours (style factors kept)."""
    return Factors(**random_content(rng, f.family, pose), **f.style())


def recolour(f: Factors, key: str, donor: Factors) -> Factors:
    """``f`` with colour ``key`` taken from ``donor``; skin and hair colours are per family, so across
    families they map by palette index."""
    v = getattr(donor, key)
    if key in ("skin", "hair_colour") and donor.family != f.family:
        pal = SKINS if key == "skin" else HAIR_COLOURS
        v = pal[f.family][pal[donor.family].index(v)]
    return dataclasses.replace(f, **{key: v})


def ideal(content: Factors, style: Factors) -> Factors:
    """The ground truth of content injection: ``content``'s content factors (identity and pose)
    in ``style``'s colours (:func:`recolour`)."""
    clothing = (style.clothing or content.clothing) if content.family == "pixel-art" else ""
    f = dataclasses.replace(content, background=style.background, clothing=clothing)
    return recolour(recolour(f, "skin", style), "hair_colour", style)


def content_style_pairs(n: int, seed: int, size: int = 32, pose: bool = True):
    """``n`` (content, style) pairs of faces with different content *and* different backgrounds:
    ``(content_images, style_images, content_factors, style_factors)``."""
    rng = np.random.default_rng(seed)
    cf, sf = [], []
    while len(cf) < n:
        a, b = random_factors(rng, pose=pose), random_factors(rng, pose=pose)
        if a.content() == b.content() or a.background == b.background:
            continue
        cf.append(a)
        sf.append(b)
    return (np.stack([render(f, size) for f in cf]), np.stack([render(f, size) for f in sf]), cf, sf)


def save_factors(path, factors: list[Factors]) -> None:
    from ..fileio import write_json
    write_json(path, [dataclasses.asdict(f) for f in factors], indent=None)
