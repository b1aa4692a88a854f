"""Procedural, FACS-driven synthetic faces: the toolkit's embedded default data.

No labelled facial-expression data can be downloaded offline, so the toolkit draws its
own: cartoon faces whose parts move with Action Unit (AU) intensities, labelled with a
basic or compound expression, the 12 ABAW AUs actually rendered, and valence/arousal.

Sources of the AU prototypes (`expression_aus`):

* Basic expressions follow the EMFACS prototypes (Friesen & Ekman 1983; as summarised in
  Ekman, Friesen & Hager, *FACS Investigator's Guide*, 2002):
  Happiness 6+12, Sadness 1+4+15, Surprise 1+2+5+26, Fear 1+2+4+5+7+20+26,
  Anger 4+5+7+23, Disgust 9+15+16, Neutral none.  Where an AU is only visible together
  with another one (AU16 or AU26 without parted lips) AU25 is added at low intensity.
* Compound expressions follow the prototypical AUs of Du, Tao & Martinez 2014,
  "Compound facial expressions of emotion", PNAS 111(15), Table 1:
  Happily Surprised 1+2+12+25, Happily Disgusted 10+12+25, Sadly Fearful 1+4+20+25,
  Sadly Angry 4+15, Sadly Surprised 1+4+25+26, Sadly Disgusted 4+10,
  Fearfully Angry 4+20+25, Fearfully Surprised 1+2+5+20+25, Angrily Surprised 4+25+26,
  Angrily Disgusted 4+10+17, Disgustedly Surprised 1+2+5+10.
  Where that set is thin we add salient cues of the constituent basics at reduced
  intensity (listed in `_COMPOUND_EXTRA_CUES`), so every compound image visibly carries
  features of both constituents: the downstream method sums basic probabilities.

Valence/arousal come from a per-basic circumplex mapping (`BASIC_VALENCE_AROUSAL`,
approximate positions of the basic emotions on Russell's 1980 circumplex, as commonly
used for AffectNet/Aff-Wild2 style annotations); a compound takes the mean of its
constituents, and every value is scaled by the sample's expression intensity.

Every sample is deterministic: sample ``i`` of seed ``s`` is drawn from
``np.random.default_rng([s, i])`` only, so it does not depend on order or sharding.

Two styles (keyword ``style`` of every generator): ``"cartoon"`` (the default: clear,
strong expressions on a narrow range of faces) and ``"realistic"`` (subtle expressions
under wide identity, pose, lighting and camera variation; its specifics live in
`cer_hf.data.synthetic_realistic`). With ``identities=(first, stop)`` each sample shows
one of the people ``first .. stop-1``, whose faces are drawn from per-identity generators
(`identity_params`), so several expressions share one person and disjoint ranges give
disjoint people (subject-independent train/test splits).

This module is long because the renderer draws every face part explicitly (brows, lids, cheeks,
nose, lips, jaw) from its AU intensities; splitting the drawing code would scatter one picture.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
from pathlib import Path
from typing import Iterable, Sequence

import datasets
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cer_hf.data import synthetic_realistic as _realistic
from cer_hf.taxonomy import (
    AU_NAMES,
    BASIC_EXPRESSIONS,
    EMOTION_BASICS,
    compound_set as _compound_set,
    constituents,
    parse_label,
)

# Every AU the renderer moves (the 12 ABAW AUs plus extra ones used by the prototypes).
RENDERED_AUS: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU15", "AU16",
    "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU27",
)

_BASIC_AUS: dict[str, dict[str, float]] = {
    "Neutral": {},
    "Happiness": {"AU6": 0.9, "AU12": 1.0, "AU25": 0.4},
    "Sadness": {"AU1": 1.0, "AU4": 0.7, "AU15": 1.0, "AU17": 0.3},
    "Surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0, "AU25": 0.6},
    "Fear": {"AU1": 1.0, "AU2": 0.8, "AU4": 0.7, "AU5": 1.0, "AU7": 0.5, "AU20": 1.0,
             "AU26": 0.5, "AU25": 0.6},
    "Anger": {"AU4": 1.0, "AU5": 0.6, "AU7": 1.0, "AU23": 1.0, "AU24": 0.4},
    "Disgust": {"AU9": 1.0, "AU15": 0.7, "AU16": 0.6, "AU10": 0.5, "AU25": 0.4},
}

# Du, Tao & Martinez 2014, Table 1 (prototypical AUs).
_COMPOUND_DU_AUS: dict[str, tuple[str, ...]] = {
    "Happily Surprised": ("AU1", "AU2", "AU12", "AU25"),
    "Happily Disgusted": ("AU10", "AU12", "AU25"),
    "Sadly Fearful": ("AU1", "AU4", "AU20", "AU25"),
    "Sadly Angry": ("AU4", "AU15"),
    "Sadly Surprised": ("AU1", "AU4", "AU25", "AU26"),
    "Sadly Disgusted": ("AU4", "AU10"),
    "Fearfully Angry": ("AU4", "AU20", "AU25"),
    "Fearfully Surprised": ("AU1", "AU2", "AU5", "AU20", "AU25"),
    "Angrily Surprised": ("AU4", "AU25", "AU26"),
    "Angrily Disgusted": ("AU4", "AU10", "AU17"),
    "Disgustedly Surprised": ("AU1", "AU2", "AU5", "AU10"),
}
# Salient cues of the constituent basics, added where Du et al.'s set is thin.
_COMPOUND_EXTRA_CUES: dict[str, dict[str, float]] = {
    "Happily Surprised": {"AU6": 0.9},  # raised cheeks (Duchenne smile)
    "Happily Disgusted": {"AU6": 0.6, "AU9": 0.7},  # cheeks; nose wrinkle
    "Sadly Fearful": {"AU15": 0.7, "AU5": 0.6, "AU2": 0.3},  # lip corners down; wide eyes
    "Sadly Angry": {"AU1": 0.4, "AU7": 0.7, "AU23": 0.6, "AU17": 0.5},  # sad brow; lid/lip tension
    "Sadly Surprised": {"AU15": 1.0},  # lip corners down
    "Sadly Disgusted": {"AU1": 0.5, "AU15": 0.8, "AU9": 0.6},  # sad brow/mouth; nose wrinkle
    "Fearfully Angry": {"AU5": 0.8, "AU7": 0.7, "AU1": 0.4},  # glare; fearful inner brow
    "Fearfully Surprised": {"AU26": 0.6, "AU4": 0.3},  # jaw drop; fearful brow knit
    "Angrily Surprised": {"AU5": 0.8, "AU7": 0.5},  # wide but tense eyes
    "Angrily Disgusted": {"AU9": 0.7, "AU7": 0.6, "AU23": 0.4},  # nose wrinkle; lid/lip tension
    "Disgustedly Surprised": {"AU9": 1.0, "AU15": 0.5, "AU16": 0.5, "AU25": 0.6},  # nose, lips
}

BASIC_VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, 0.0),
    "Happiness": (0.80, 0.50),
    "Surprise": (0.30, 0.80),
    "Fear": (-0.65, 0.65),
    "Anger": (-0.55, 0.70),
    "Disgust": (-0.65, 0.35),
    "Sadness": (-0.65, -0.35),
}

STYLES: tuple[str, ...] = ("cartoon", "realistic")

_SOURCE_HASH = hashlib.sha1(
    Path(__file__).read_bytes() + Path(_realistic.__file__).read_bytes()
).hexdigest()[:16]
# Keys of `_sample_identity` that describe the shot rather than the person.
_SCENE_KEYS = frozenset({"bg_a", "bg_b", "bg_texture", "bg_texture_amp", "light_dir", "light_amp", "noise"})
_IDENTITY_TAG = 0x49_44_45_4E


# ----------------------------------------------------------------------------- labels


def expression_aus(label: str) -> dict[str, float]:
    """Prototype AU intensities (0..1) for a basic or compound expression label.

    Returns a dict keyed by AU name ("AU12") holding only the AUs that are active.
    Raises `ValueError` for labels without a prototype ("Other", "Contempt").
    """
    name = parse_label(label)
    if name in _BASIC_AUS:
        return dict(_BASIC_AUS[name])
    if name in _COMPOUND_DU_AUS:
        aus = {au: 1.0 for au in _COMPOUND_DU_AUS[name]}
        for au, value in _COMPOUND_EXTRA_CUES[name].items():
            aus[au] = max(aus.get(au, 0.0), value)
        return aus
    raise ValueError(f"no AU prototype for label {name!r}")


def valence_arousal(label: str, intensity: float = 1.0) -> tuple[float, float]:
    """Circumplex (valence, arousal) of a label, scaled by `intensity` (0..1).

    A compound takes the mean of its constituent basics.
    """
    points = [BASIC_VALENCE_AROUSAL[b] for b in constituents(label)]
    valence = float(np.mean([p[0] for p in points])) * intensity
    arousal = float(np.mean([p[1] for p in points])) * intensity
    return float(np.clip(valence, -1, 1)), float(np.clip(arousal, -1, 1))


def expression_classes(
    kind: str = "basic", compound_set_name: str = "abaw7", include_neutral: bool = False
) -> list[str]:
    """The class names a synthetic dataset of `kind` ("basic", "compound", "all") draws from."""
    basics = list(BASIC_EXPRESSIONS if include_neutral else EMOTION_BASICS)
    compounds = [c.name for c in _compound_set(compound_set_name)]
    if kind == "basic":
        return basics
    if kind == "compound":
        return compounds
    if kind == "all":
        return basics + compounds
    raise ValueError(f"unknown kind {kind!r}; use 'basic', 'compound' or 'all'")


def _label_for_index(index: int, seed: int, labels: Sequence[str]) -> str:
    """Balanced, seeded label assignment: each block of len(labels) indices is a permutation."""
    n = len(labels)
    block, position = divmod(index, n)
    order = np.random.default_rng([seed, block, 0x4C41_4245]).permutation(n)
    return labels[int(order[position])]


def _jitter_aus(prototype: dict[str, float], rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """Scale the prototype by an intensity ×U(0.6, 1.0) and add small noise on other AUs."""
    intensity = float(rng.uniform(0.6, 1.0))
    aus = {}
    for au in RENDERED_AUS:
        if au in prototype:
            value = prototype[au] * intensity * rng.uniform(0.85, 1.15)
        else:
            value = rng.uniform(0.0, 0.15) if rng.random() < 0.3 else 0.0
        aus[au] = float(np.clip(value, 0.0, 1.0))
    return aus, intensity


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; use one of {', '.join(STYLES)}")


def _jitter(prototype: dict[str, float], rng: np.random.Generator, style: str):
    if style == "cartoon":
        return _jitter_aus(prototype, rng)
    return _realistic.jitter_aus(prototype, RENDERED_AUS, rng)


# ----------------------------------------------------------------------------- rendering


def _sample_identity(rng: np.random.Generator) -> dict:
    """Identity and scene: face shape, colours, hair, eye spacing, background, lighting."""
    tone = rng.uniform(0, 1)
    skin = np.array([236, 196, 166]) * (1 - tone) + np.array([120, 78, 52]) * tone
    skin = skin + rng.normal(0, 8, 3)
    hair_palette = np.array([[30, 22, 18], [70, 45, 25], [120, 80, 40], [200, 170, 110],
                             [90, 90, 90], [150, 50, 30]])
    hair = hair_palette[rng.integers(len(hair_palette))] + rng.normal(0, 10, 3)
    bg_a, bg_b = rng.integers(40, 230, 3), rng.integers(40, 230, 3)
    return {
        "face_w": rng.uniform(0.52, 0.62),
        "face_h": rng.uniform(0.70, 0.80),
        "skin": skin,
        "hair": hair,
        "hair_style": int(rng.integers(3)),  # 0 short, 1 long, 2 very short
        "hairline": rng.uniform(-0.50, -0.40),
        "eye_dx": rng.uniform(0.20, 0.25),
        "eye_y": rng.uniform(-0.14, -0.08),
        "mouth_y": rng.uniform(0.36, 0.42),
        "brow_w": rng.uniform(0.055, 0.075),
        "lip": np.array([180, 80, 85]) * rng.uniform(0.7, 1.05) + skin * 0.15,
        "iris": np.array([[60, 40, 25], [40, 80, 120], [70, 100, 60], [30, 25, 20]])[rng.integers(4)],
        "bg_a": bg_a,
        "bg_b": bg_b,
        "bg_texture": rng.uniform(0, 1, (5, 5, 3)),
        "bg_texture_amp": rng.uniform(0, 60),
        "light_dir": rng.uniform(0, 2 * math.pi),
        "light_amp": rng.uniform(0.0, 0.35),
        "noise": rng.uniform(1.0, 7.0),
    }


def _sample_pose(rng: np.random.Generator) -> dict:
    """Small head pose: in-plane rotation (degrees), shift and scale of the whole face."""
    return {
        "angle": rng.uniform(-10, 10),
        "dx": rng.uniform(-0.06, 0.06),
        "dy": rng.uniform(-0.05, 0.05),
        "scale": rng.uniform(0.9, 1.05),
    }


def _rgb(color) -> tuple[int, int, int]:
    c = np.clip(np.asarray(color, dtype=float), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _mix(a, b, t: float):
    return np.asarray(a, dtype=float) * (1 - t) + np.asarray(b, dtype=float) * t


class _Canvas:
    """Maps face coordinates (x right, y down, face roughly within [-1, 1]) to pixels."""

    def __init__(self, image: Image.Image, pose: dict):
        self.draw = ImageDraw.Draw(image)
        self.half = image.size[0] / 2
        a = math.radians(pose["angle"])
        s = pose["scale"] * self.half
        self.m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * s
        self.t = np.array([self.half * (1 + pose["dx"]), self.half * (1 + pose["dy"])])
        self.unit = s
        self.turn = (pose.get("yaw", 0.0), pose.get("pitch", 0.0))  # realistic style only

    def pts(self, xy) -> list[tuple[float, float]]:
        p = np.asarray(xy, dtype=float).reshape(-1, 2)
        if any(self.turn):
            p = _realistic.turn_head(p, *self.turn)
        p = p @ self.m.T + self.t
        return [tuple(q) for q in p.tolist()]

    def polygon(self, xy, fill, outline=None, width=1):
        self.draw.polygon(self.pts(xy), fill=_rgb(fill), outline=None if outline is None else _rgb(outline), width=width)

    def line(self, xy, fill, width: float):
        self.draw.line(self.pts(xy), fill=_rgb(fill), width=max(1, int(round(width * self.unit))), joint="curve")

    def ellipse(self, cx, cy, rx, ry, fill, n: int = 24):
        t = np.linspace(0, 2 * math.pi, n, endpoint=False)
        self.polygon(np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1), fill)


def _curve(x0, x1, y_end, y_mid, n=13, power=1.0, bow=0.0):
    """Points from x0 to x1 whose y goes from y_end (ends) to y_mid (centre)."""
    t = np.linspace(-1, 1, n)
    x = (x0 + x1) / 2 + t * (x1 - x0) / 2
    y = y_end + (y_mid - y_end) * (1 - t**2) ** power + bow * np.exp(-(t / 0.18) ** 2)
    return np.stack([x, y], 1)


def _background(identity: dict, size: int) -> Image.Image:
    small = _mix(identity["bg_a"], identity["bg_b"], identity["bg_texture"][..., :1])
    small = small + (identity["bg_texture"] - 0.5) * identity["bg_texture_amp"]
    img = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8), "RGB")
    return img.resize((size, size), Image.BILINEAR)


def _draw_face(canvas: _Canvas, a: dict[str, float], idt: dict) -> None:
    """Draw all face parts; `a` maps every AU in RENDERED_AUS to its intensity.

    The optional identity keys (eye_w, eye_open, iris_r, brow_dy, brow_tilt, nose_y,
    mouth_w, mouth_tilt, lip_k, crease, beard, glasses) come from the realistic style;
    their defaults reproduce the cartoon style exactly.
    """
    fw, fh, skin = idt["face_w"], idt["face_h"], idt["skin"]
    dark_skin = skin * 0.62
    hair = idt["hair"]
    jaw = min(1.0, 0.55 * a["AU26"] + a["AU27"])
    crease = idt.get("crease", 1.0)  # how much wrinkles and folds darken the skin

    # Hair behind the head (long style), ears, neck.
    if idt["hair_style"] == 1:
        canvas.polygon([(-fw * 1.12, -0.2), (-fw * 1.15, 0.75), (fw * 1.15, 0.75), (fw * 1.12, -0.2),
                        (0, -fh * 1.1)], hair)
    canvas.polygon([(-fw * 0.45, 0.3), (-fw * 0.5, 1.1), (fw * 0.5, 1.1), (fw * 0.45, 0.3)], skin * 0.85)
    for s in (-1, 1):
        canvas.ellipse(s * fw * 0.98, -0.02, 0.07, 0.12, skin * 0.92, n=12)

    # Face outline: an ellipse whose lower half stretches with the jaw drop.
    t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    x, y = fw * np.cos(t), fh * np.sin(t)
    y = np.where(y > 0, y * (1 + 0.16 * jaw), y)
    x = np.where(y > 0.3, x * (1 - 0.15 * (y - 0.3)), x)
    canvas.polygon(np.stack([x, y], 1), skin, outline=dark_skin, width=max(1, int(canvas.unit * 0.015)))

    # Hair cap down to a hairline (style 2: thin, receding).
    top = np.linspace(math.pi, 2 * math.pi, 16)
    cap_scale = 1.06 if idt["hair_style"] != 2 else 1.01
    outer = np.stack([fw * cap_scale * np.cos(top), fh * cap_scale * np.sin(top) - 0.02], 1)
    hx = np.linspace(fw * 1.02, -fw * 1.02, 15)
    hl = idt["hairline"] if idt["hair_style"] != 2 else idt["hairline"] - 0.12
    hy = hl + 0.35 * (np.abs(hx) / fw) ** 4
    canvas.polygon(np.concatenate([outer, np.stack([hx, hy], 1)]), hair)
    if idt.get("beard") is not None:
        _realistic.draw_beard(canvas, idt, jaw)

    ex, ey = idt["eye_dx"], idt["eye_y"]
    line_col = dark_skin

    # Forehead wrinkles (AU1/AU2) and brow furrows (AU4).
    raise_ = (a["AU1"] + a["AU2"]) / 2
    if raise_ > 0.15:
        col = _mix(skin, dark_skin, min(1.0, raise_) * crease)
        for k, yy in enumerate((ey - 0.27, ey - 0.34)):
            canvas.line(_curve(-0.2 + 0.03 * k, 0.2 - 0.03 * k, yy, yy - 0.025, n=7), col, 0.018)
    if a["AU4"] > 0.15:
        col = _mix(skin, dark_skin, min(1.0, a["AU4"]) * crease)
        for s in (-1, 1):
            canvas.line([(s * 0.03, ey - 0.17), (s * 0.025, ey - 0.08)], col, 0.018)

    # Cheek raise (AU6): blush and raised cheek contour.
    if a["AU6"] > 0.05:
        blush = _mix(skin, np.array([220, 90, 90]), 0.35 * a["AU6"] * crease)
        for s in (-1, 1):
            canvas.ellipse(s * (ex + 0.04), ey + 0.19 - 0.04 * a["AU6"], 0.1, 0.065, blush)
            canvas.line(_curve(s * (ex - 0.08), s * (ex + 0.1), ey + 0.1 - 0.03 * a["AU6"],
                               ey + 0.12 - 0.03 * a["AU6"], n=7), _mix(skin, dark_skin, a["AU6"] * crease), 0.015)

    # Eyes: opening widens with AU5, narrows with AU7/AU6 (lower lid rises).
    ew = idt.get("eye_w", 0.085)
    up_h = 0.05 * idt.get("eye_open", 1.0) * (1 + 0.9 * a["AU5"] - 0.45 * a["AU7"] - 0.25 * a["AU6"] - 0.2 * a["AU9"])
    lo_h = 0.032 * idt.get("eye_open", 1.0) * (1 + 0.4 * a["AU5"] - 0.75 * a["AU7"] - 0.6 * a["AU6"])
    up_h, lo_h = max(up_h, 0.012), max(lo_h, 0.005)
    for s in (-1, 1):
        cx = s * ex
        upper = _curve(cx - ew, cx + ew, ey, ey - up_h, n=11, power=0.8)
        lower = _curve(cx + ew, cx - ew, ey, ey + lo_h, n=11, power=0.8)
        canvas.polygon(np.concatenate([upper, lower]), (245, 245, 240))
        # Iris clipped to the eye opening.
        r = idt.get("iris_r", 0.038)
        ix = np.linspace(-r, r, 9)
        half = np.sqrt(np.maximum(r**2 - ix**2, 0))
        lid_top = ey - up_h * (1 - ((ix) / ew) ** 2) ** 0.8
        lid_bot = ey + lo_h * (1 - ((ix) / ew) ** 2) ** 0.8
        top = np.maximum(ey - half, lid_top)
        bot = np.minimum(ey + half, lid_bot)
        canvas.polygon(np.concatenate([np.stack([cx + ix, top], 1), np.stack([cx + ix, bot], 1)[::-1]]),
                       idt["iris"])
        canvas.line(upper, (25, 20, 20), 0.022)
        canvas.line(lower, line_col, 0.01)
        if a["AU7"] > 0.3:  # tense lower lid bulge
            canvas.line(_curve(cx - ew, cx + ew, ey + lo_h + 0.02, ey + lo_h + 0.035, n=7),
                        _mix(skin, dark_skin, a["AU7"] * 0.8 * crease), 0.012)

    # Brows: inner end raised by AU1, outer by AU2; AU4 lowers and knits them.
    brow_col = hair * 0.8
    by, tilt = ey + idt.get("brow_dy", 0.0), idt.get("brow_tilt", 0.0)
    for s in (-1, 1):
        inner = [s * (0.065 - 0.035 * a["AU4"]),
                 by + tilt - 0.12 - 0.13 * a["AU1"] + 0.08 * a["AU4"] + 0.03 * a["AU9"]]
        mid = [s * (ex + 0.01), by - 0.17 - 0.05 * a["AU1"] - 0.09 * a["AU2"] + 0.045 * a["AU4"]]
        outer = [s * (ex + 0.13), by - tilt - 0.12 - 0.12 * a["AU2"] + 0.02 * a["AU4"]]
        canvas.line([inner, mid, outer], brow_col, idt["brow_w"])

    # Nose: nostrils (flared/raised by AU9), wrinkles on the bridge (AU9).
    ny = idt.get("nose_y", 0.2) - 0.03 * a["AU9"] - 0.015 * a["AU10"]
    canvas.line(_curve(-0.07 - 0.02 * a["AU9"], 0.07 + 0.02 * a["AU9"], ny, ny + 0.03, n=7),
                line_col, 0.018)
    for s in (-1, 1):
        canvas.ellipse(s * (0.045 + 0.012 * a["AU9"]), ny + 0.01, 0.022 + 0.01 * a["AU9"], 0.014, skin * 0.45, n=10)
    if a["AU9"] > 0.15:
        col = _mix(skin, dark_skin * 0.8, min(1.0, a["AU9"]) * crease)
        for k in range(3):
            yy = ey + 0.02 + 0.045 * k
            canvas.line([(-0.06, yy + 0.012), (0, yy), (0.06, yy + 0.012)], col, 0.014)

    # Mouth geometry.
    my = idt["mouth_y"] + 0.05 * jaw
    tight = max(a["AU23"], a["AU24"])
    mw = idt.get("mouth_w", 0.17) * (1 + 0.5 * a["AU20"] + 0.35 * a["AU12"] - 0.35 * a["AU23"] - 0.25 * a["AU24"]
                 - 0.15 * jaw + 0.1 * a["AU10"] - 0.1 * a["AU15"])
    corner_y = (my + idt.get("mouth_tilt", 0.0) - 0.15 * a["AU12"] + 0.15 * a["AU15"]
                + 0.03 * a["AU20"] - 0.02 * a["AU10"])
    opening = 0.06 * a["AU25"] + 0.17 * a["AU26"] + 0.26 * a["AU27"]
    opening *= 1 - 0.6 * tight - 0.4 * a["AU17"]
    up_in = my - 0.5 * opening - 0.045 * a["AU10"]
    lo_in = my + 0.5 * opening + 0.04 * a["AU16"] - 0.02 * a["AU17"]
    lip_k = idt.get("lip_k", 1.0)  # lip thickness
    up_out = up_in - 0.04 * lip_k * (1 - 0.85 * tight) - 0.008
    lo_out = lo_in + 0.05 * lip_k * (1 - 0.85 * tight) + 0.006 + 0.015 * a["AU17"] + 0.02 * a["AU15"]

    # Nasolabial folds deepen with AU9/AU10/AU12.
    fold = max(a["AU10"], a["AU12"], 0.8 * a["AU9"])
    if fold > 0.2:
        col = _mix(skin, dark_skin, min(1.0, fold) * crease)
        for s in (-1, 1):
            canvas.line([(s * 0.1, ny - 0.01), (s * (mw + 0.04), (ny + corner_y) / 2),
                         (s * (mw + 0.05), corner_y + 0.03)], col, 0.016)

    upper_outer = _curve(-mw, mw, corner_y, up_out, power=0.7, bow=0.012)
    lower_outer = _curve(mw, -mw, corner_y, lo_out, power=0.9)
    canvas.polygon(np.concatenate([upper_outer, lower_outer]), idt["lip"])
    upper_inner = _curve(-mw * 0.92, mw * 0.92, corner_y, up_in, power=0.6)
    lower_inner = _curve(mw * 0.92, -mw * 0.92, corner_y, lo_in, power=0.6)
    if lo_in - up_in > 0.015:
        canvas.polygon(np.concatenate([upper_inner, lower_inner]), (70, 20, 28))
        # Upper teeth (more visible with AU10), lower teeth with AU16.
        tooth = upper_inner.copy()
        tooth[:, 1] = np.minimum(tooth[:, 1] + 0.04 + 0.02 * a["AU10"], lower_inner[::-1, 1])
        canvas.polygon(np.concatenate([upper_inner[2:-2], tooth[2:-2][::-1]]), (240, 238, 228))
        if a["AU16"] > 0.3:
            low = lower_inner.copy()
            low[:, 1] = np.maximum(low[:, 1] - 0.03, upper_inner[::-1, 1])
            canvas.polygon(np.concatenate([lower_inner[2:-2], low[2:-2][::-1]]), (230, 228, 218))
    else:
        canvas.line(_curve(-mw, mw, corner_y, (up_in + lo_in) / 2, power=0.6), idt["lip"] * 0.45, 0.014)

    # Lip press/tighten (AU23/AU24): bulging skin above and below the pressed lips.
    if tight > 0.3:
        col = _mix(skin, dark_skin, min(1.0, tight) * crease)
        canvas.line(_curve(-mw * 0.8, mw * 0.8, corner_y - 0.02, up_out - 0.03, n=7), col, 0.014)
        canvas.line(_curve(-mw * 0.8, mw * 0.8, corner_y + 0.02, lo_out + 0.03, n=7), col, 0.014)

    # Chin raise (AU17): chin boss crease.
    if a["AU17"] > 0.2:
        cy = lo_out + 0.07
        canvas.line(_curve(-0.08, 0.08, cy, cy + 0.025, n=7), _mix(skin, dark_skin, a["AU17"] * crease), 0.014)
    if idt.get("glasses") is not None:
        _realistic.draw_glasses(canvas, idt)


def _finish(img: Image.Image, identity: dict, size: int, rng: np.random.Generator) -> Image.Image:
    """Downsample (antialiasing), apply a lighting gradient and pixel noise."""
    if img.size[0] != size:
        img = img.reduce(img.size[0] // size) if img.size[0] % size == 0 else img.resize((size, size), Image.BOX)
    arr = np.asarray(img, dtype=np.float32)
    coords = np.linspace(-1, 1, size, dtype=np.float32)
    d = identity["light_dir"]
    gradient = 1 + identity["light_amp"] * (math.cos(d) * coords[None, :] + math.sin(d) * coords[:, None])
    arr = arr * gradient[..., None] + rng.normal(0, identity["noise"], (size, size, 1)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _render(aus: dict[str, float], identity: dict, pose: dict, image_size: int,
            rng: np.random.Generator, supersample: int = 2, style: str = "cartoon") -> Image.Image:
    a = {au: float(np.clip(aus.get(au, 0.0), 0.0, 1.0)) for au in RENDERED_AUS}
    size = image_size * supersample
    if style == "cartoon":
        img = _background(identity, size)
        _draw_face(_Canvas(img, pose), a, identity)
        return _finish(img, identity, image_size, rng)
    img = _realistic.background(identity, size)
    _draw_face(_Canvas(img, pose), a, identity)
    return _realistic.finish(img, identity, pose, image_size, rng)


def identity_params(identity_id: int, *, seed: int = 0, style: str = "cartoon") -> dict:
    """The face of person `identity_id` (shape, colours, hair, part geometry; no scene).

    Drawn from `np.random.default_rng([seed, 0x4944454E, identity_id])` only, so one
    (seed, identity_id, style) is always the same person; the background, lighting,
    camera and pose of each shot are drawn per sample.
    """
    _check_style(style)
    rng = np.random.default_rng([seed, _IDENTITY_TAG, int(identity_id)])
    if style == "cartoon":
        return {k: v for k, v in _sample_identity(rng).items() if k not in _SCENE_KEYS}
    return _realistic.sample_person(rng)


def _shot(rng: np.random.Generator, style: str, person: dict | None) -> tuple[dict, dict]:
    """(identity, pose) of one shot: person from `person` if given, the rest from `rng`."""
    if style == "cartoon":
        identity = _sample_identity(rng)
        if person is not None:
            identity.update(person)
        return identity, _sample_pose(rng)
    person = _realistic.sample_person(rng) if person is None else person
    return {**person, **_realistic.sample_scene(rng)}, _realistic.sample_pose(rng)


def render_face(aus: dict[str, float], *, image_size: int = 112,
                rng: np.random.Generator | None = None, style: str = "cartoon",
                person: dict | None = None) -> Image.Image:
    """Draw one RGB face whose parts move with the given AU intensities (0..1).

    `aus` maps AU names ("AU12") to intensities; unknown AUs are ignored, missing ones
    are 0. Identity, head pose, lighting, background and pixel noise are drawn from
    `rng`, so the same generator state always gives the same image. `style` is
    "cartoon" (default) or "realistic"; `person` (from `identity_params`, same style)
    fixes the face and leaves scene and pose to `rng`.
    """
    _check_style(style)
    rng = np.random.default_rng(0) if rng is None else rng
    identity, pose = _shot(rng, style, person)
    return _render(aus, identity, pose, image_size, rng, style=style)


# ----------------------------------------------------------------------------- samples


def _row(image, label: str, aus: dict[str, float], intensity: float, sample_id: int) -> dict:
    valence, arousal = valence_arousal(label, intensity)
    return {
        "image": image,
        "label": label,
        "aus": [float(aus[au]) for au in AU_NAMES],
        "valence": valence,
        "arousal": arousal,
        "sample_id": int(sample_id),
    }


def _check_identities(identities: tuple[int, int] | None) -> None:
    if identities is not None and not (len(identities) == 2 and 0 <= identities[0] < identities[1]):
        raise ValueError(f"identities must be a half-open range (first, stop) with 0 <= first < stop, "
                         f"not {identities!r}")


def synthetic_sample(index: int, *, seed: int = 0, image_size: int = 112,
                     labels: Sequence[str] = EMOTION_BASICS, style: str = "cartoon",
                     identities: tuple[int, int] | None = None) -> dict:
    """One synthetic row for global `index`: image, label, aus, valence, arousal, sample_id.

    The label cycles over `labels` in seeded, balanced blocks; everything else comes
    from `np.random.default_rng([seed, index])`, so the row depends only on
    (seed, index, image_size, labels, style, identities). `style` is "cartoon" (default)
    or "realistic". With `identities=(first, stop)` the row shows person
    `identity_params(k, seed=seed, style=style)` for a k drawn from first..stop-1, and
    carries it as `identity`.
    """
    _check_style(style)
    _check_identities(identities)
    labels = [parse_label(lab) for lab in labels]
    label = _label_for_index(index, seed, labels)
    rng = np.random.default_rng([seed, index])
    aus, intensity = _jitter(expression_aus(label), rng, style)
    if label == "Neutral":
        intensity = 0.0
    if identities is None:
        image = render_face(aus, image_size=image_size, rng=rng, style=style)
        return _row(image, label, aus, intensity, index)
    identity_id = int(rng.integers(identities[0], identities[1]))
    person = identity_params(identity_id, seed=seed, style=style)
    image = render_face(aus, image_size=image_size, rng=rng, style=style, person=person)
    return {**_row(image, label, aus, intensity, index), "identity": identity_id}


def _features(with_identity: bool = False) -> datasets.Features:
    features = {
        "image": datasets.Image(),
        "label": datasets.Value("string"),
        "aus": datasets.Sequence(datasets.Value("float32"), length=len(AU_NAMES)),
        "valence": datasets.Value("float32"),
        "arousal": datasets.Value("float32"),
        "sample_id": datasets.Value("int64"),
    }
    if with_identity:
        features["identity"] = datasets.Value("int64")
    return datasets.Features(features)


def _encoded(row: dict) -> dict:
    """Store the image as uncompressed BMP bytes: near-free to encode and decode."""
    buffer = io.BytesIO()
    row["image"].save(buffer, format="BMP")
    return {**row, "image": {"bytes": buffer.getvalue(), "path": None}}


def _generate(indices: Iterable[int], seed: int, image_size: int, labels: list[str],
              style: str = "cartoon", identities: tuple[int, int] | None = None):
    for index in indices:
        yield _encoded(synthetic_sample(index, seed=seed, image_size=image_size, labels=labels,
                                        style=style, identities=identities))


def _finite_gen(num_samples: int, seed: int, image_size: int, labels: list[str], version: str,
                style: str = "cartoon", identities: tuple[int, int] | None = None):
    # `version` (a hash of this file) only keys the datasets cache: edits re-generate.
    yield from _generate(range(num_samples), seed, image_size, labels, style, identities)


def _style_kwargs(style: str, identities: tuple[int, int] | None) -> dict:
    """Generator kwargs of the optional keywords; empty for the defaults (cache keys unchanged)."""
    _check_style(style)
    _check_identities(identities)
    kwargs = {} if style == "cartoon" else {"style": style}
    if identities is not None:
        kwargs["identities"] = (int(identities[0]), int(identities[1]))  # a tuple: never sharded
    return kwargs


def synthetic_dataset(num_samples: int, *, kind: str = "basic", compound_set: str = "abaw7",
                      include_neutral: bool = False, image_size: int = 112,
                      seed: int = 0, style: str = "cartoon",
                      identities: tuple[int, int] | None = None) -> datasets.Dataset:
    """A finite `datasets.Dataset` of `num_samples` synthetic rows (indices 0..num_samples-1).

    kind: "basic" (basic expressions; Neutral only with include_neutral), "compound"
    (the classes of `compound_set`) or "all" (both). Labels are balanced over classes.
    `style` and `identities` as in `synthetic_sample`; with identities the rows have
    an `identity` column.
    """
    labels = expression_classes(kind, compound_set, include_neutral)
    return datasets.Dataset.from_generator(
        _finite_gen,
        features=_features(identities is not None),
        # Only list-valued gen_kwargs are sharded, so labels travel as a tuple.
        gen_kwargs={"num_samples": num_samples, "seed": seed, "image_size": image_size,
                    "labels": tuple(labels), "version": _SOURCE_HASH,
                    **_style_kwargs(style, identities)},
    )


def _stream_gen(shard_ids: list[int], num_shards: int, num_samples: int | None, seed: int,
                image_size: int, labels: list[str], style: str = "cartoon",
                identities: tuple[int, int] | None = None):
    for shard in shard_ids:
        if num_samples is None:
            indices = itertools.count(shard, num_shards)
        else:
            indices = range(shard, num_samples, num_shards)
        yield from _generate(indices, seed, image_size, labels, style, identities)


def synthetic_stream(*, num_samples: int | None = None, kind: str = "basic",
                     compound_set: str = "abaw7", include_neutral: bool = False,
                     image_size: int = 112, seed: int = 0,
                     num_shards: int = 16, style: str = "cartoon",
                     identities: tuple[int, int] | None = None) -> datasets.IterableDataset:
    """A streamed `datasets.IterableDataset` of synthetic rows, split into `num_shards` shards.

    Shard k yields the indices k, k + num_shards, ...; with num_samples=None every shard
    counts up forever, otherwise the shards together yield exactly 0..num_samples-1.
    `split_dataset_by_node`, DataLoader workers, `shuffle` and `set_epoch` all work.
    `style` and `identities` as in `synthetic_sample`.
    """
    labels = expression_classes(kind, compound_set, include_neutral)
    return datasets.IterableDataset.from_generator(
        _stream_gen,
        features=_features(identities is not None),
        gen_kwargs={"shard_ids": list(range(num_shards)), "num_shards": num_shards,
                    "num_samples": num_samples, "seed": seed, "image_size": image_size,
                    "labels": tuple(labels), **_style_kwargs(style, identities)},
    )


# ----------------------------------------------------------------------------- videos


def synthetic_video(num_frames: int, *, seed: int = 0, image_size: int = 112,
                    segment_frames: tuple[int, int] = (20, 60),
                    labels: Sequence[str] | None = None, style: str = "cartoon",
                    identities: tuple[int, int] | None = None) -> list[dict]:
    """A synthetic video as a list of rows (the dataset schema plus `frame`).

    One identity throughout; a sequence of target expressions (from `labels`, default
    the 7 basics and the abaw7 compounds, never the same twice in a row), each lasting
    U(segment_frames) frames and starting with a cosine ramp from the previous target
    (the first from neutral); the head pose drifts slowly. Each row's label
    is the expression of its segment, and `sample_id` equals `frame`. `style` is
    "cartoon" (default) or "realistic" (one camera and scene per video); with
    `identities=(first, stop)` the person is one of that pool and every row carries
    it as `identity`.
    """
    _check_style(style)
    _check_identities(identities)
    if labels is None:
        labels = [*BASIC_EXPRESSIONS, *(c.name for c in _compound_set("abaw7"))]
    labels = [parse_label(lab) for lab in labels]
    rng = np.random.default_rng([seed, 0x56494445])
    identity_id = None if identities is None else int(rng.integers(identities[0], identities[1]))
    person = None if identity_id is None else identity_params(identity_id, seed=seed, style=style)
    identity, pose = _shot(rng, style, person)
    velocity = {k: 0.0 for k in pose}
    if style == "cartoon":
        drift = {"angle": 0.3, "dx": 0.003, "dy": 0.003, "scale": 0.003}
        limits = {"angle": 12.0, "dx": 0.08, "dy": 0.06, "scale": 0.1}
        centre = {"angle": 0.0, "dx": 0.0, "dy": 0.0, "scale": 0.975}
    else:
        drift = {"angle": 0.3, "yaw": 0.5, "pitch": 0.25, "dx": 0.003, "dy": 0.003, "scale": 0.003}
        limits = {"angle": 18.0, "yaw": 28.0, "pitch": 12.0, "dx": 0.1, "dy": 0.09, "scale": 0.15}
        centre = {"angle": 0.0, "yaw": 0.0, "pitch": 0.0, "dx": 0.0, "dy": 0.01, "scale": 0.93}

    prev_aus = {au: 0.0 for au in RENDERED_AUS}
    prev_va = (0.0, 0.0)
    rows: list[dict] = []
    frame = 0
    label = None
    while frame < num_frames:
        choices = [lab for lab in labels if lab != label] or labels  # a new expression each segment
        label = choices[int(rng.integers(len(choices)))]
        length = int(rng.integers(segment_frames[0], segment_frames[1] + 1))
        target, intensity = _jitter(expression_aus(label), rng, style)
        target_va = valence_arousal(label, 0.0 if label == "Neutral" else intensity)
        ramp = max(1, min(12, length // 2))
        for step in range(length):
            if frame >= num_frames:
                break
            w = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (step + 1) / ramp))
            aus = {au: (1 - w) * prev_aus[au] + w * target[au] for au in RENDERED_AUS}
            va = tuple(float((1 - w) * p + w * t) for p, t in zip(prev_va, target_va))
            for k in pose:  # damped random walk pulled back to the centre
                velocity[k] = 0.9 * velocity[k] + rng.normal(0, drift[k]) - 0.02 * (pose[k] - centre[k])
                pose[k] = float(np.clip(pose[k] + velocity[k], centre[k] - limits[k], centre[k] + limits[k]))
            image = _render(aus, identity, pose, image_size, rng, style=style)
            row = _row(image, label, aus, 1.0, frame)
            if identity_id is not None:
                row["identity"] = identity_id
            row["valence"], row["arousal"] = va
            row["frame"] = frame
            rows.append(row)
            frame += 1
        prev_aus, prev_va = aus, va
    return rows


# ----------------------------------------------------------------------------- figures


def contact_sheet(rows_or_labels: Sequence[dict] | Sequence[str], *, columns: int | None = None,
                  image_size: int = 112, seed: int = 0, caption_height: int = 26,
                  style: str = "cartoon") -> Image.Image:
    """A grid of samples with the class name written under each.

    Takes rows (dicts with `image` and `label`) or label names; labels are rendered in
    `style` at full prototype intensity with the identity of `seed` (same face and
    scene for every label).
    """
    items = []
    for i, item in enumerate(rows_or_labels):
        if isinstance(item, str):
            label = parse_label(item)
            image = render_face(expression_aus(label), image_size=image_size,
                                rng=np.random.default_rng([seed, 0x43534854]), style=style)
        else:
            label, image = item["label"], item["image"]
        items.append((label, image.convert("RGB")))
    if not items:
        raise ValueError("contact_sheet needs at least one row or label")
    columns = columns or min(len(items), 7)
    cell_w = max(im.size[0] for _, im in items)
    cell_h = max(im.size[1] for _, im in items) + caption_height
    n_rows = math.ceil(len(items) / columns)
    sheet = Image.new("RGB", (columns * cell_w, n_rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (label, image) in enumerate(items):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        sheet.paste(image, (x, y))
        words = label.split()
        lines = [" ".join(words)] if draw.textlength(label, font=font) <= cell_w - 4 else words
        for k, text in enumerate(lines):
            tw = draw.textlength(text, font=font)
            draw.text((x + (cell_w - tw) / 2, y + image.size[1] + 1 + 12 * k), text, fill="black", font=font)
    return sheet
