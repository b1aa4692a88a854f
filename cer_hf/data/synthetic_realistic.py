"""The "realistic" style of the synthetic face renderer (`cer_hf.data.synthetic`).

The cartoon style draws clear, strong expressions on a narrow range of faces. This style
draws the same FACS-driven face parts but the way in-the-wild data looks: subtle AU
intensities with more activity on unrelated AUs, people who differ in face shape, skin
tone, hair, eye/brow/mouth geometry and resting expression (a low brow or down-turned
mouth corners at rest), glasses and beards, wider head pose (roll, shift, scale and a
cheap yaw/pitch approximation), directional lighting with colour casts, gamma and
contrast changes, varied backgrounds, blur, low resolution and JPEG artefacts.

`cer_hf.data.synthetic` imports this module (never the other way round) and calls:

* `jitter_aus` for the AU intensities of one sample;
* `sample_person` (the face of one person; identity pools draw it from a per-identity
  generator), `sample_scene` (background, light, camera) and `sample_pose`;
* `turn_head` from its canvas, `draw_beard` / `draw_glasses` from its face drawing;
* `background` and `finish` around the face drawing.

Every function here draws only from the generator it is given, so samples stay
deterministic for (seed, index).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Intensity scale of an expression: the cartoon style uses U(0.6, 1.0).
INTENSITY_RANGE: tuple[float, float] = (0.45, 0.9)

_SKIN_ANCHORS = np.array([
    [246, 218, 200], [234, 192, 164], [212, 165, 126], [182, 130, 92],
    [146, 98, 68], [112, 74, 52], [80, 54, 40],
], dtype=float)
_HAIR_PALETTE = np.array([
    [22, 18, 16], [45, 32, 24], [80, 55, 35], [120, 82, 48], [160, 118, 70],
    [205, 175, 120], [130, 60, 35], [120, 118, 115], [200, 198, 192],
], dtype=float)
_IRIS_PALETTE = np.array([
    [45, 30, 20], [75, 50, 30], [100, 80, 45], [70, 95, 60], [60, 95, 130], [95, 105, 110],
], dtype=float)
_FRAME_PALETTE = np.array([[20, 20, 22], [60, 40, 30], [150, 150, 155], [110, 70, 40], [30, 40, 80]],
                          dtype=float)


def _mix(a, b, t):
    return np.asarray(a, dtype=float) * (1 - t) + np.asarray(b, dtype=float) * t


# ----------------------------------------------------------------------------- expression


def jitter_aus(prototype: dict[str, float], rendered_aus: Sequence[str],
               rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """Subtle AU intensities: the prototype × an intensity U(INTENSITY_RANGE) × U(0.75, 1.25)
    per AU, and activity up to 0.2 on about a third of the other AUs. Returns (aus, intensity)."""
    intensity = float(rng.uniform(*INTENSITY_RANGE))
    aus = {}
    for au in rendered_aus:
        if au in prototype:
            value = prototype[au] * intensity * rng.uniform(0.75, 1.25)
        else:
            value = rng.uniform(0.0, 0.2) if rng.random() < 0.35 else 0.0
        aus[au] = float(np.clip(value, 0.0, 1.0))
    return aus, intensity


# ----------------------------------------------------------------------------- person, scene, pose


def sample_person(rng: np.random.Generator) -> dict:
    """The face of one person: shape, colours, hair, part geometry, resting expression,
    glasses and beard. The keys are those the face drawing of `cer_hf.data.synthetic` reads."""
    tone = rng.uniform(0, len(_SKIN_ANCHORS) - 1)
    k = min(int(tone), len(_SKIN_ANCHORS) - 2)
    skin = _mix(_SKIN_ANCHORS[k], _SKIN_ANCHORS[k + 1], tone - k)
    skin = skin * rng.uniform(0.92, 1.05) + rng.normal(0, 6, 3) + np.array([1.0, 0.0, -0.5]) * rng.normal(0, 8)
    hair = _HAIR_PALETTE[rng.integers(len(_HAIR_PALETTE))] * rng.uniform(0.8, 1.2) + rng.normal(0, 10, 3)
    person = {
        "face_w": rng.uniform(0.47, 0.64),
        "face_h": rng.uniform(0.66, 0.84),
        "skin": skin,
        "hair": hair,
        "hair_style": int(rng.integers(3)),
        "hairline": rng.uniform(-0.56, -0.36),
        "eye_dx": rng.uniform(0.18, 0.26),
        "eye_y": rng.uniform(-0.16, -0.06),
        "eye_w": rng.uniform(0.07, 0.098),
        "eye_open": rng.uniform(0.82, 1.15),
        "iris_r": rng.uniform(0.032, 0.042),
        "mouth_y": rng.uniform(0.33, 0.45),
        "mouth_w": rng.uniform(0.14, 0.2),
        "mouth_tilt": rng.uniform(-0.015, 0.015),  # resting mouth corners (smiley or sullen)
        "lip_k": rng.uniform(0.6, 1.3),
        "nose_y": rng.uniform(0.16, 0.23),
        "brow_w": rng.uniform(0.035, 0.08),
        "brow_dy": rng.uniform(-0.018, 0.018),  # resting brow height (frowning or raised)
        "brow_tilt": rng.uniform(-0.015, 0.015),  # resting inner-brow tilt (worried or stern)
        "crease": rng.uniform(0.25, 0.8),  # how much wrinkles and folds darken the skin
        "lip": _mix(skin, np.array([170, 75, 85]) * rng.uniform(0.8, 1.1), rng.uniform(0.25, 0.6)),
        "iris": _IRIS_PALETTE[rng.integers(len(_IRIS_PALETTE))] + rng.normal(0, 8, 3),
        "glasses": None,
        "beard": None,
    }
    if rng.random() < 0.25:
        person["glasses"] = {
            "color": _FRAME_PALETTE[rng.integers(len(_FRAME_PALETTE))],
            "rx": rng.uniform(1.25, 1.6), "ry": rng.uniform(0.06, 0.085), "width": rng.uniform(0.012, 0.025),
        }
    if rng.random() < 0.2:
        person["beard"] = {"color": _mix(skin, hair, rng.uniform(0.35, 0.9)),
                           "top": rng.uniform(-0.16, -0.06), "moustache": bool(rng.random() < 0.6)}
    return person


def _background_array(rng: np.random.Generator) -> np.ndarray:
    """A small (24×24) background picture: gradient, texture, indoor blocks, blobs or plain."""
    n = 24
    grey = rng.uniform(25, 230)
    base = np.clip(_mix(np.full(3, grey), rng.uniform(0, 255, 3), rng.uniform(0.0, 0.6)), 0, 255)
    other = np.clip(base + rng.normal(0, 45, 3), 0, 255)
    kind = int(rng.integers(5))
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    if kind == 0:  # two-colour gradient
        a = rng.uniform(0, 2 * math.pi)
        t = np.clip(0.5 + (math.cos(a) * (xx - 0.5) + math.sin(a) * (yy - 0.5)), 0, 1)[..., None]
        arr = _mix(base, other, t)
    elif kind == 1:  # low-frequency texture
        small = rng.uniform(0, 1, (5, 5, 3))
        img = Image.fromarray((small * 255).astype(np.uint8), "RGB").resize((n, n), Image.BICUBIC)
        t = np.asarray(img, dtype=float) / 255
        arr = _mix(base, other, t[..., :1]) + (t - 0.5) * rng.uniform(20, 90)
    elif kind == 2:  # indoor: walls, doors, shelves
        img = Image.new("RGB", (n, n), tuple(int(c) for c in base))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = rng.integers(-4, n, 2)
            w, h = rng.integers(3, 16, 2)
            col = np.clip(base + rng.normal(0, 45, 3), 0, 255)
            draw.rectangle([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=tuple(int(c) for c in col))
        arr = np.asarray(img, dtype=float)
    elif kind == 3:  # out-of-focus blobs
        img = Image.new("RGB", (n, n), tuple(int(c) for c in base))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 9))):
            cx, cy, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(1.5, 6)
            col = np.clip(base + rng.normal(0, 55, 3), 0, 255)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(c) for c in col))
        arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.5)), dtype=float)
    else:  # plain studio backdrop with a soft vignette
        r2 = (xx - 0.5) ** 2 + (yy - 0.5) ** 2
        arr = base * (1 - rng.uniform(0, 0.6) * r2)[..., None] * np.ones(3)
    return np.clip(arr, 0, 255).astype(np.uint8)


def sample_scene(rng: np.random.Generator) -> dict:
    """Background, lighting and camera of one shot (these vary between shots of one person)."""
    light_az = rng.uniform(0, 2 * math.pi)
    elevation = rng.uniform(0.25, 1.0)  # 1 = frontal light, small = grazing side light
    planar = math.sqrt(1 - elevation**2)
    return {
        "bg_array": _background_array(rng),
        "light": np.array([math.cos(light_az) * planar, math.sin(light_az) * planar, elevation]),
        "light_strength": rng.uniform(0.1, 0.5),
        "scene_gradient": rng.uniform(0, 0.25),
        "gradient_dir": rng.uniform(0, 2 * math.pi),
        "cast": np.clip(rng.normal(1.0, 0.07, 3), 0.8, 1.2),
        "brightness": rng.uniform(0.75, 1.15),
        "contrast": rng.uniform(0.75, 1.1),
        "gamma": rng.uniform(0.8, 1.25),
        "blur": rng.uniform(0.0, 0.7) if rng.random() < 0.5 else 0.0,
        "low_res": rng.uniform(0.55, 0.85) if rng.random() < 0.1 else 1.0,
        "jpeg_quality": int(rng.integers(40, 91)) if rng.random() < 0.7 else None,
        "noise": rng.uniform(1.0, 4.0),
    }


def sample_pose(rng: np.random.Generator) -> dict:
    """Head pose: roll `angle`, `yaw` and `pitch` (degrees), shift (`dx`, `dy`) and `scale`."""
    return {
        "angle": rng.uniform(-14, 14),
        "yaw": rng.uniform(-22, 22),
        "pitch": rng.uniform(-10, 10),
        "dx": rng.uniform(-0.08, 0.08),
        "dy": rng.uniform(-0.06, 0.08),
        "scale": rng.uniform(0.85, 1.1),
    }


# ----------------------------------------------------------------------------- drawing


def turn_head(points: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """Cheap yaw/pitch: wrap face coordinates around a cylinder (radius 0.9) and turn it.

    Points on the turned side get closer together, points on the other side spread out,
    and the head centre stays where it was. Points beyond the cylinder continue linearly.
    """
    out = points.copy()
    for axis, degrees in ((0, yaw), (1, pitch)):
        if not degrees:
            continue
        angle, radius = math.radians(degrees), 0.9
        u = points[:, axis] / radius
        inside = np.clip(u, -1.0, 1.0)
        moved = radius * (np.sin(np.arcsin(inside) + angle) - math.sin(angle))
        out[:, axis] = moved + (u - inside) * radius * math.cos(angle)
    return out


def draw_beard(canvas, idt: dict, jaw: float) -> None:
    """A beard over the jaw and chin (drawn before the mouth, which stays visible)."""
    beard = idt["beard"]
    fw, fh = idt["face_w"], idt["face_h"]
    top = idt["mouth_y"] + beard["top"]
    t = np.linspace(0, math.pi, 25)
    x, y = fw * np.cos(t), fh * np.sin(t) * (1 + 0.16 * jaw)
    x = np.where(y > 0.3, x * (1 - 0.15 * (y - 0.3)), x) * 1.02
    keep = y >= top
    outline = np.stack([x[keep], y[keep] + 0.015], 1)
    if not beard["moustache"]:  # chin beard only: leave the upper lip free
        top = idt["mouth_y"] + 0.02
        outline = outline[outline[:, 1] >= top]
    if len(outline) < 3:
        return
    edge = np.stack([np.linspace(outline[-1, 0], outline[0, 0], 9), np.full(9, top)], 1)
    canvas.polygon(np.concatenate([outline, edge]), beard["color"])


def draw_glasses(canvas, idt: dict) -> None:
    """Glasses frames around the eyes, a bridge and the temple arms."""
    g = idt["glasses"]
    ex, ey, ew = idt["eye_dx"], idt["eye_y"], idt.get("eye_w", 0.085)
    rx, ry = ew * g["rx"], g["ry"]
    t = np.linspace(0, 2 * math.pi, 21)
    for s in (-1, 1):
        cx = s * ex
        rim = np.stack([cx + rx * np.cos(t), ey + 0.01 + ry * np.sin(t)], 1)
        canvas.line(rim, g["color"], g["width"])
        canvas.line([(cx + s * rx, ey - 0.01), (s * idt["face_w"] * 0.98, ey - 0.03)], g["color"], g["width"])
    canvas.line([(-ex + rx, ey - 0.005), (0, ey - 0.025), (ex - rx, ey - 0.005)], g["color"], g["width"])


def background(scene: dict, size: int) -> Image.Image:
    """The scene's background picture at `size` × `size`."""
    return Image.fromarray(scene["bg_array"], "RGB").resize((size, size), Image.BICUBIC)


def _shading(scene: dict, idt: dict, pose: dict, size: int) -> np.ndarray:
    """Directional light on the head (an ellipsoid) plus a soft gradient over the scene."""
    half = size / 2
    cy = np.arange(size, dtype=np.float32)[:, None] - half * (1 + pose["dy"])
    cx = np.arange(size, dtype=np.float32)[None, :] - half * (1 + pose["dx"])
    a = math.radians(pose["angle"])
    u = (math.cos(a) * cx + math.sin(a) * cy) / (idt["face_w"] * pose["scale"] * half)
    v = (-math.sin(a) * cx + math.cos(a) * cy) / (idt["face_h"] * pose["scale"] * half * 1.1)
    r = np.sqrt(u**2 + v**2)
    rim = np.maximum(r, 1.0)
    nu, nv = u / rim, v / rim
    nz = np.sqrt(np.clip(1 - nu**2 - nv**2, 0, 1))
    lx, ly, lz = scene["light"]
    # Turn the light into the face's frame (roll), then light the ellipsoid.
    lu, lv = math.cos(a) * lx + math.sin(a) * ly, -math.sin(a) * lx + math.cos(a) * ly
    k = scene["light_strength"]
    shade = ((1 - k) + k * np.maximum(0, nu * lu + nv * lv + nz * lz)) / ((1 - k) + k * 0.85)
    shade = 1 + (shade - 1) * np.exp(-3 * np.maximum(0, r - 1))  # fades off the head
    d = scene["gradient_dir"]
    coords = np.linspace(-1, 1, size, dtype=np.float32)
    shade = shade * (1 + scene["scene_gradient"] * (math.cos(d) * coords[None, :] + math.sin(d) * coords[:, None]))
    return shade.astype(np.float32)


def finish(img: Image.Image, idt: dict, pose: dict, size: int, rng: np.random.Generator) -> Image.Image:
    """Downsample, light, colour-cast, gamma/contrast, blur, low resolution, noise and JPEG.

    Only the pixel noise is drawn from `rng`; everything else comes from the scene keys of
    `idt`, so the frames of one video share one camera.
    """
    if img.size[0] != size:
        img = img.reduce(img.size[0] // size) if img.size[0] % size == 0 else img.resize((size, size), Image.BOX)
    scale = size / 64
    if idt["blur"] > 0:
        img = img.filter(ImageFilter.GaussianBlur(idt["blur"] * scale))
    if idt["low_res"] < 1:
        small = max(8, round(size * idt["low_res"]))
        img = img.resize((small, small), Image.BILINEAR).resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255
    arr = arr * _shading(idt, idt, pose, size)[..., None] * idt["cast"].astype(np.float32) * idt["brightness"]
    arr = np.clip((arr - 0.5) * idt["contrast"] + 0.5, 0, 1) ** idt["gamma"]
    arr = arr * 255 + rng.normal(0, idt["noise"], (size, size, 1)).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if idt["jpeg_quality"] is not None:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=idt["jpeg_quality"])
        img = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return img
