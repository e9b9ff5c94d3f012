"""Synthetic classroom photos with exact ground truth, for detection and recognition accuracy.

A classroom is a 4000x3000 JPEG (a 12 MP phone photo) of 30-35 people seated in rows behind
desks, in front of a back wall with windows, a pin board, posters, a shelf and a clock: the
front row's faces 120-150 px wide, the back row's down to 40 px, some heads tilted, some faces
partly hidden behind the head or shoulder of someone in front or behind a raised book or hand.

Every face is a real one: cut from a single-face photo (the 5 Celebrity Faces photos, the
Angelina Jolie photos in tests/data/faces) around the face CenterFace finds in it, head and a
bit of shoulders, with a soft elliptical mask; scaled so its face box is the wanted width,
rotated by its tilt and pasted onto a drawn torso. The ground truth of a face is its source
face box and landmarks carried by the same transform, so it is exact by construction, and how
much of its face box ends up under things painted in front of it.

Which photos go where is the caller's: the faces of enrolled people must come from photos that
are not in their enrolled gallery, strangers from people nobody enrolled. ``default_sources``
gives the usual split: the 5 people's val photos (and the first train photo of each, which
src/attendance/bench/data.py leaves out of the gallery) as enrolled people, Jolie as the stranger.

    from attendance.bench.classrooms import scenes, match
    for room in scenes():
        boxes = [face.box for face in detector.detect(decode(room.jpeg))]
        pairs, missed, false = match(boxes, room.faces)

``python -m attendance.bench.classrooms [OUTDIR]`` writes the default scenes and copies with the truth drawn.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

# The benchmarks run from the checkout (`make bench`), where var/ and tests/data are.
REPO = Path.cwd()
CELEB_DIR = Path(
    os.environ.get("ATTENDANCE_CELEB_DIR", REPO / "var" / "datasets" / "5-celebrity-faces")
)
FACES_DIR = Path(os.environ.get("ATTENDANCE_FACES_DIR", REPO / "tests" / "data" / "faces"))
PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
JOLIE = "angelina_jolie"
JOLIE_PHOTOS = ["img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg"]
CENTERFACE_CANDIDATES = [
    Path(os.environ.get("ATTENDANCE_DEEPFACE_HOME", REPO / "var" / "deepface"))
    / ".deepface"
    / "weights"
    / "centerface.onnx",
    Path("/tmp/centerface.onnx"),
]
SIZE = (4000, 3000)

# A source photo is used only if CenterFace finds exactly one face in it (at MIN_SEEN), with at
# least MIN_SCORE, at least MIN_SOURCE_PX wide.
MIN_SEEN = 0.5
MIN_SCORE = 0.8
MIN_SOURCE_PX = 80
# A face is never pasted more than this much larger than it is in its source, when another
# source can give it.
MAX_UPSCALE = 1.25
# The cached cut of a source is shrunk so its face is at most this wide (faces are pasted
# at most 150 px wide).
CUT_FACE_PX = 220
# A face whose coverage would exceed MAX_COVER is moved, or left out.
MAX_COVER = 0.30
# What people wear when their photo does not show it (BGR): navy, black, greys, white, denim,
# dark red, olive, beige, a green, a mustard.
CLOTHES = [
    (80, 40, 30),
    (30, 30, 30),
    (90, 90, 90),
    (150, 150, 150),
    (225, 225, 225),
    (140, 100, 60),
    (40, 30, 130),
    (50, 100, 90),
    (150, 180, 200),
    (70, 120, 40),
    (40, 150, 190),
]


# --------------------------------------------------------------------------------------------
# What a classroom is


@dataclass(frozen=True)
class TruthFace:
    box: tuple[
        float, float, float, float
    ]  # x, y, w, h: the axis-aligned box of the rotated face box
    landmarks: tuple[
        tuple[float, float], ...
    ]  # CenterFace's five: right eye, left eye, nose, mouth r, l
    width_px: float  # the face box's width before rotation (what the size bands are about)
    tilt_deg: float  # in-plane rotation, counter-clockwise as seen, as cv2.getRotationMatrix2D
    covered: float  # share of the (rotated) face box under something painted in front of it
    person: str  # the 5 Celebrity Faces folder name, or "angelina_jolie"
    enrolled: bool  # from the enrolled sources (else a stranger)
    source: str = ""  # the source photo, relative to the repository when inside it
    occluder: str = ""  # "prop" (a book or hand) when one was placed on it, else ""


@dataclass(frozen=True)
class Classroom:
    jpeg: bytes
    width: int
    height: int
    faces: list[TruthFace]
    scene: str = ""
    seed: int = 0

    def by_band(
        self, bands: Sequence[tuple[float, float]] = ((40, 55), (55, 80), (80, 1e9))
    ) -> list[list[int]]:
        """Indices of the faces in each width band [lo, hi)."""
        return [[i for i, f in enumerate(self.faces) if lo <= f.width_px < hi] for lo, hi in bands]


@dataclass(frozen=True)
class Scene:
    """How a classroom is laid out: rows from the back to the front."""

    name: str
    rows: tuple[tuple[int, int, float, float], ...]  # (fewest, most people, face width lo, hi)
    faces: tuple[int, int] = (30, 35)  # the total, clamped into this range
    row_gap: tuple[float, float] = (1.2, 1.45)  # row spacing in face heights of the row in front
    tilt_small: float = 6.0  # most heads: uniform in +-tilt_small degrees
    tilt_big: tuple[float, float] = (15.0, 35.0)  # tilted heads: |tilt| uniform in this range
    tilted: tuple[int, int] = (0, 0)  # how many heads are tilted (fewest, most)
    props: tuple[int, int] = (1, 2)  # books / hands raised in front of a face (fewest, most)
    prop_cover: tuple[float, float] = (0.10, 0.20)  # the coverage a prop aims at
    max_cover: float = MAX_COVER
    stranger_share: float = 0.15


EASY = Scene(
    name="easy",
    rows=((8, 9, 45, 56), (7, 8, 56, 76), (6, 7, 76, 100), (5, 6, 100, 125), (4, 5, 125, 150)),
    row_gap=(1.35, 1.6),
    tilt_small=6.0,
    tilted=(0, 0),
    props=(2, 3),
    prop_cover=(0.08, 0.20),
    max_cover=0.20,
)
HARD = Scene(
    name="hard",
    rows=((8, 9, 40, 50), (7, 8, 50, 66), (6, 7, 66, 92), (5, 6, 92, 120), (4, 5, 120, 150)),
    row_gap=(1.05, 1.3),
    tilt_small=10.0,
    tilt_big=(15.0, 35.0),
    tilted=(8, 12),
    props=(4, 6),
    prop_cover=(0.12, 0.30),
)
SCENES = {"easy": EASY, "hard": HARD}


# --------------------------------------------------------------------------------------------
# Matching detections with the truth


@dataclass(frozen=True)
class Matching:
    """``pairs`` (detection index, truth index, IoU), ``missed`` truth indices, ``false``
    detection indices (overlapping no truth face by the IoU), ``duplicates``: detections that
    overlap a truth face another detection took (neither matched nor false).
    Unpacks as (pairs, missed, false)."""

    pairs: list[tuple[int, int, float]]
    missed: list[int]
    false: list[int]
    duplicates: list[int] = field(default_factory=list)

    def __iter__(self) -> Iterator:
        return iter((self.pairs, self.missed, self.false))


def _xywh(box) -> tuple[float, float, float, float]:
    """A box as (x, y, w, h) from a tuple, a dict, a Box, a TruthFace or a DetectedFace."""
    if hasattr(box, "box"):
        box = box.box
    if isinstance(box, dict):
        return float(box["x"]), float(box["y"]), float(box["w"]), float(box["h"])
    if hasattr(box, "x"):
        return float(box.x), float(box.y), float(box.w), float(box.h)
    x, y, w, h = box
    return float(x), float(y), float(w), float(h)


def iou_matrix(a: Sequence, b: Sequence) -> np.ndarray:
    """IoU of every box of ``a`` (rows) with every box of ``b`` (columns), boxes (x, y, w, h)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    A = np.array([_xywh(x) for x in a], dtype=np.float64)
    B = np.array([_xywh(x) for x in b], dtype=np.float64)
    ax1, ay1 = A[:, 0] + A[:, 2], A[:, 1] + A[:, 3]
    bx1, by1 = B[:, 0] + B[:, 2], B[:, 1] + B[:, 3]
    iw = np.clip(
        np.minimum(ax1[:, None], bx1[None]) - np.maximum(A[:, None, 0], B[None, :, 0]), 0, None
    )
    ih = np.clip(
        np.minimum(ay1[:, None], by1[None]) - np.maximum(A[:, None, 1], B[None, :, 1]), 0, None
    )
    inter = iw * ih
    union = (A[:, 2] * A[:, 3])[:, None] + (B[:, 2] * B[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


def match(detected_boxes: Sequence, truth, iou: float = 0.3) -> Matching:
    """Detections matched to truth faces greedily, highest IoU first, each at most once; a pair
    needs at least ``iou``. ``truth`` is a Classroom or its faces (or plain boxes)."""
    faces = truth.faces if isinstance(truth, Classroom) else list(truth)
    m = iou_matrix(list(detected_boxes), faces)
    pairs: list[tuple[int, int, float]] = []
    used_d: set[int] = set()
    used_t: set[int] = set()
    if m.size:
        order = np.dstack(np.unravel_index(np.argsort(-m, axis=None, kind="stable"), m.shape))[0]
        for d, t in order:
            if m[d, t] < iou:
                break
            if d in used_d or t in used_t:
                continue
            pairs.append((int(d), int(t), float(m[d, t])))
            used_d.add(int(d))
            used_t.add(int(t))
    missed = [t for t in range(len(faces)) if t not in used_t]
    rest = [d for d in range(m.shape[0]) if d not in used_d]
    false = [d for d in rest if not (m[d] >= iou).any()]
    duplicates = [d for d in rest if (m[d] >= iou).any()]
    return Matching(sorted(pairs, key=lambda p: p[1]), missed, false, duplicates)


# --------------------------------------------------------------------------------------------
# Source faces


@dataclass(frozen=True, eq=False)
class SourceFace:
    path: Path
    person: str
    score: float
    width: float  # face box width in the source photo
    cut: np.ndarray  # BGR uint8: the head and shoulders, shrunk so the face is <= CUT_FACE_PX
    alpha: np.ndarray  # float32 [0, 1], the cut's soft mask (zero outside the source photo)
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the face in the cut's pixels
    landmarks: np.ndarray  # (5, 2) in the cut's pixels
    clothes: tuple[float, float, float] | None  # BGR median below the chin, if the photo has it


class _ReferenceCenterFace:
    """CenterFace on ONNX Runtime in float32. The source faces are cut where it finds them, so
    the classrooms (and their truth) stay the same whatever runtime or precision the project's
    detector moves to."""

    def __init__(self, path: Path):
        import onnx
        import onnxruntime as ort

        from attendance.face.detectors.centerface import OUTPUTS, dynamic_graph

        options = ort.SessionOptions()
        options.log_severity_level = 3  # the graph's unused batch-norm counters are no news
        self._outputs = OUTPUTS
        self._session = ort.InferenceSession(
            dynamic_graph(onnx.load(str(path))).SerializeToString(),
            options,
            providers=["CPUExecutionProvider"],
        )

    def __call__(self, bgr: np.ndarray, threshold: float):
        from attendance.face.detectors.centerface import INPUT, CenterFace, network_input

        outputs = self._session.run(self._outputs, {INPUT: network_input(bgr)})
        return CenterFace.decode_outputs(outputs, threshold, bgr.shape[:2])


@lru_cache(maxsize=1)
def _centerface() -> _ReferenceCenterFace:
    for path in CENTERFACE_CANDIDATES:
        if path.is_file():
            return _ReferenceCenterFace(path)
    raise FileNotFoundError(
        "CenterFace weights not found in " + ", ".join(map(str, CENTERFACE_CANDIDATES))
    )


def centerface_weights() -> Path | None:
    return next((p for p in CENTERFACE_CANDIDATES if p.is_file()), None)


def _ellipse(shape, cx, cy, ax, ay) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return ((((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2) <= 1.0).astype(np.float32)


def _background_matte(cut, valid, cx, cy, fw, fh) -> np.ndarray:
    """Where the cut looks like its photo's backdrop, 0 (else 1): a plain studio backdrop
    would otherwise show as a halo round the head. The backdrop is the median colour of a
    ring just outside the head, beside and above it; a busy one (a wide spread of colours)
    is left alone. The face itself is always kept."""
    import cv2

    h, w = cut.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt(((xx - cx) / (0.80 * fw)) ** 2 + ((yy - cy + 0.12 * fh) / (0.98 * fh)) ** 2)
    ring = (d > 1.0) & (d < 1.35) & (yy < cy + 0.2 * fh) & (valid > 128)
    if ring.sum() < 50:
        return np.ones((h, w), np.float32)
    pixels = cut[ring].astype(np.float32)
    bg = np.median(pixels, axis=0)
    spread = float(np.median(np.linalg.norm(pixels - bg, axis=1)))
    if spread > 28:
        return np.ones((h, w), np.float32)
    dist = np.linalg.norm(cut.astype(np.float32) - bg, axis=2)
    keep = np.clip((dist - (spread + 14)) / 30, 0, 1)
    keep = cv2.morphologyEx(keep, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    keep = cv2.GaussianBlur(keep, (0, 0), max(1.0, 0.02 * fw))
    core = _ellipse((h, w), cx, cy, 0.56 * fw, 0.62 * fh)
    core = cv2.GaussianBlur(core, (0, 0), 0.04 * fw)
    return np.maximum(keep, core).astype(np.float32)


@cache
def source_face(path: Path, person: str) -> SourceFace | None:
    """The one face of a source photo, cut out; None if the photo does not qualify."""
    import cv2

    from attendance.photos.images import decode_bgr

    bgr = decode_bgr(Path(path).read_bytes())
    found = _centerface()(bgr, MIN_SEEN)
    if len(found.scores) != 1 or found.scores[0] < MIN_SCORE:
        return None
    x0, y0, x1, y1 = (float(v) for v in found.boxes[0])
    fw, fh = x1 - x0, y1 - y0
    if fw < MIN_SOURCE_PX:
        return None
    marks = found.landmarks[0].astype(np.float64)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # Head, hair and a bit of shoulders; outside the photo is padded (and masked out).
    left, right = int(math.floor(cx - 1.3 * fw)), int(math.ceil(cx + 1.3 * fw))
    top, bottom = int(math.floor(cy - 1.25 * fh)), int(math.ceil(cy + 1.75 * fh))
    H, W = bgr.shape[:2]
    pad = (max(0, -top), max(0, bottom - H), max(0, -left), max(0, right - W))
    valid: np.ndarray = np.zeros((H, W), np.uint8)
    valid[1:-1, 1:-1] = 255
    big = cv2.copyMakeBorder(bgr, *pad, cv2.BORDER_REPLICATE)
    valid = cv2.copyMakeBorder(valid, *pad, cv2.BORDER_CONSTANT, value=0)
    oy, ox = top + pad[0], left + pad[2]
    cut = big[oy : oy + bottom - top, ox : ox + right - left]
    valid = valid[oy : oy + bottom - top, ox : ox + right - left]
    k = min(1.0, CUT_FACE_PX / fw)
    shift = np.array([left, top], np.float64)
    box = (np.array([x0, y0, x1, y1]) - np.tile(shift, 2)) * k
    marks = (marks - shift) * k
    if k < 1.0:
        size = (max(1, round(cut.shape[1] * k)), max(1, round(cut.shape[0] * k)))
        cut = cv2.resize(cut, size, interpolation=cv2.INTER_AREA)
        valid = cv2.resize(valid, size, interpolation=cv2.INTER_AREA)
    fw, fh = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # The mask: the head (face and hair), the neck, the top of the shoulders.
    shape = cut.shape[:2]
    head = _ellipse(shape, cx, cy - 0.12 * fh, 0.80 * fw, 0.98 * fh)
    neck = _ellipse(shape, cx, cy + 0.80 * fh, 0.40 * fw, 0.55 * fh)
    shoulders = _ellipse(shape, cx, cy + 1.30 * fh, 1.05 * fw, 0.38 * fh)
    alpha = np.maximum(head, np.maximum(neck, 0.85 * shoulders))
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.07 * fw)
    alpha *= cv2.GaussianBlur(valid.astype(np.float32) / 255.0, (0, 0), 0.05 * fw)
    alpha *= _background_matte(cut, valid, cx, cy, fw, fh)
    # What they wear, for the torso drawn under the cut.
    sy0, sy1 = int(cy + 1.05 * fh), int(cy + 1.55 * fh)
    sx0, sx1 = int(cx - 0.9 * fw), int(cx + 0.9 * fw)
    region = cut[max(0, sy0) : sy1, max(0, sx0) : sx1]
    region_valid = valid[max(0, sy0) : sy1, max(0, sx0) : sx1] > 128
    clothes = None
    if region.size and region_valid.mean() > 0.6:
        blue, green, red = (float(v) for v in np.median(region[region_valid], axis=0))
        clothes = (blue, green, red)
    return SourceFace(
        Path(path),
        person,
        float(found.scores[0]),
        float(found.boxes[0][2] - found.boxes[0][0]),
        np.ascontiguousarray(cut),
        alpha.astype(np.float32),
        box,
        marks,
        clothes,
    )


def default_sources() -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(enrolled, strangers): each of the 5 people's val photos and their first train photo
    (the ones src/attendance/bench/data.py leaves out of the enrolled gallery); the Jolie photos."""
    enrolled = {}
    for person in PEOPLE:
        val = sorted((CELEB_DIR / "val" / person).glob("*.jpg"))
        train = sorted((CELEB_DIR / "train" / person).glob("*.jpg"))[:1]
        enrolled[person] = val + train
    strangers = {JOLIE: [FACES_DIR / name for name in JOLIE_PHOTOS]}
    return enrolled, strangers


def usable(sources: dict[str, list[Path]]) -> dict[str, list[SourceFace]]:
    out = {}
    for person, paths in sources.items():
        faces = [f for f in (source_face(Path(p), person) for p in paths) if f is not None]
        if faces:
            out[person] = faces
    return out


# --------------------------------------------------------------------------------------------
# The room


def _smooth_noise(rng, shape, cells, size) -> np.ndarray:
    """Low-frequency noise in [-1, 1]-ish: a coarse random grid resized up."""
    import cv2

    h, w = shape
    grid = rng.standard_normal((max(2, h // cells), max(2, w // cells))).astype(np.float32)
    return cv2.resize(grid, (size[0], size[1]), interpolation=cv2.INTER_CUBIC)


def _random_text(rng, n) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz   ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-=x"
    return "".join(letters[i] for i in rng.integers(0, len(letters), n))


def _background(rng, W, H, horizon) -> np.ndarray:
    """The back wall (gradient, stains, noise), a ceiling strip with lights, windows with a
    view, a pin board with papers, posters with text and shapes, a shelf of books, a clock,
    the floor."""
    import cv2

    s = W / 4000
    walls = [(178, 196, 210), (170, 205, 200), (205, 200, 185), (200, 190, 200), (185, 185, 180)]
    wall = np.array(walls[rng.integers(len(walls))], np.float32)
    lw, lh = W // 8, H // 8
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    light = 1.0 + 0.18 * (xx / lw - 0.5) * rng.choice([-1, 1]) - 0.10 * (yy / lh)
    light += 0.05 * _smooth_noise(rng, (lh, lw), 40, (lw, lh))
    low = wall[None, None] * light[..., None]
    floor_y = horizon // 8
    floor = np.array(walls[rng.integers(len(walls))], np.float32) * 0.55
    low[floor_y:] = floor * (0.9 + 0.2 * (yy[floor_y:, :, None] - floor_y) / max(1, lh - floor_y))
    img = cv2.resize(np.clip(low, 0, 255).astype(np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)
    # Ceiling strip with light panels.
    ceil = int(H * rng.uniform(0.05, 0.09))
    img[:ceil] = (np.array(wall) * 1.05).clip(0, 255).astype(np.uint8)
    cv2.line(img, (0, ceil), (W, ceil), tuple(int(v) for v in wall * 0.7), max(2, int(6 * s)))
    for x in np.arange(rng.uniform(100, 500) * s, W, rng.uniform(700, 1000) * s):
        cv2.rectangle(
            img,
            (int(x), int(ceil * 0.25)),
            (int(x + 380 * s), int(ceil * 0.7)),
            (250, 252, 252),
            -1,
        )
    # Skirting board.
    cv2.rectangle(
        img, (0, horizon - int(40 * s)), (W, horizon), tuple(int(v) for v in wall * 0.6), -1
    )
    # Windows on one side, a view of sky and trees.
    side = rng.integers(2)
    n_win = int(rng.integers(2, 4))
    win_w, win_h = int(rng.uniform(420, 560) * s), int(rng.uniform(650, 850) * s)
    win_top = ceil + int(rng.uniform(80, 180) * s)
    for i in range(n_win):
        x0 = int((150 + i * (win_w / s + 120)) * s)
        if side:
            x0 = W - x0 - win_w
        view: np.ndarray = np.zeros((win_h, win_w, 3), np.float32)
        t = np.linspace(0, 1, win_h, dtype=np.float32)[:, None]
        view[:] = (np.array([235, 200, 150]) * (1 - t) + np.array([245, 235, 215]) * t)[:, None, :]
        tree_mask = np.zeros((win_h, win_w), np.uint8)
        for _ in range(int(rng.integers(6, 14))):
            cv2.circle(
                tree_mask,
                (int(rng.uniform(0, win_w)), int(win_h * rng.uniform(0.55, 1.0))),
                int(rng.uniform(0.1, 0.3) * win_w),
                255,
                -1,
            )
        trees = cv2.GaussianBlur(tree_mask, (0, 0), 4 * s + 1).astype(np.float32)[..., None] / 255
        green = np.array([60, 120, 70], np.float32) * (
            0.8 + 0.4 * _smooth_noise(rng, (win_h, win_w), 12, (win_w, win_h))[..., None]
        )
        view = view * (1 - trees) + green * trees
        img[win_top : win_top + win_h, x0 : x0 + win_w] = view.clip(0, 255).astype(np.uint8)
        frame = (235, 235, 235)
        thick = max(4, int(18 * s))
        cv2.rectangle(img, (x0, win_top), (x0 + win_w, win_top + win_h), frame, thick)
        mid_x, third_y = x0 + win_w // 2, win_top + win_h // 3
        cv2.line(img, (mid_x, win_top), (mid_x, win_top + win_h), frame, thick // 2)
        cv2.line(img, (x0, third_y), (x0 + win_w, third_y), frame, thick // 2)
    # Pin board with papers, on the other side.
    bw, bh = int(rng.uniform(900, 1200) * s), int(rng.uniform(450, 600) * s)
    bx = W - int(250 * s) - bw if not side else int(250 * s)
    by = ceil + int(rng.uniform(150, 300) * s)
    cork = np.array([80, 130, 175], np.float32)
    noise = rng.normal(0, 18, (bh, bw)).astype(np.float32)[..., None]
    img[by : by + bh, bx : bx + bw] = (cork + noise).clip(0, 255).astype(np.uint8)
    cv2.rectangle(img, (bx, by), (bx + bw, by + bh), (60, 80, 100), max(3, int(12 * s)))
    for _ in range(int(rng.integers(6, 11))):
        pw, ph = int(rng.uniform(120, 260) * s), int(rng.uniform(150, 300) * s)
        px, py = bx + int(rng.uniform(0, bw - pw)), by + int(rng.uniform(0, bh - ph))
        paper = tuple(int(v) for v in rng.uniform([200, 200, 200], [255, 255, 255]))
        if rng.random() < 0.4:
            paper = tuple(int(v) for v in rng.uniform(90, 255, 3))
        cv2.rectangle(img, (px, py), (px + pw, py + ph), paper, -1)
        for j in range(int(rng.integers(3, 8))):
            cv2.putText(
                img,
                _random_text(rng, int(rng.integers(4, 12))),
                (px + int(8 * s), py + int((30 + 28 * j) * s)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * s,
                (40, 40, 40),
                max(1, int(2 * s)),
                cv2.LINE_AA,
            )
    # Posters: shapes and large letters, between the windows and the board.
    for _ in range(int(rng.integers(2, 5))):
        pw, ph = int(rng.uniform(250, 420) * s), int(rng.uniform(320, 520) * s)
        px, py = int(rng.uniform(0.25, 0.7) * W), ceil + int(rng.uniform(120, 600) * s)
        color = tuple(int(v) for v in rng.uniform(60, 250, 3))
        cv2.rectangle(img, (px, py), (px + pw, py + ph), color, -1)
        for _ in range(int(rng.integers(2, 6))):
            c = tuple(int(v) for v in rng.uniform(0, 255, 3))
            if rng.random() < 0.5:
                cv2.circle(
                    img,
                    (px + int(rng.uniform(0, pw)), py + int(rng.uniform(0, ph))),
                    int(rng.uniform(20, 90) * s),
                    c,
                    -1,
                    cv2.LINE_AA,
                )
            else:
                pts = np.stack([px + rng.uniform(0, pw, 3), py + rng.uniform(0, ph, 3)], 1)
                cv2.fillPoly(img, [pts.astype(np.int32)], c, cv2.LINE_AA)
        cv2.putText(
            img,
            _random_text(rng, int(rng.integers(3, 7))).strip() or "ABC",
            (px + int(15 * s), py + ph - int(30 * s)),
            cv2.FONT_HERSHEY_DUPLEX,
            1.6 * s,
            (20, 20, 20),
            max(1, int(4 * s)),
            cv2.LINE_AA,
        )
    # A shelf of books against the wall.
    sw, sh = int(rng.uniform(700, 1000) * s), int(rng.uniform(300, 420) * s)
    sx = int(rng.uniform(0.3, 0.6) * W)
    sy = horizon - sh - int(rng.uniform(150, 300) * s)
    cv2.rectangle(img, (sx, sy), (sx + sw, sy + sh), (50, 75, 105), -1)
    for shelf in range(2):
        y1 = sy + (shelf + 1) * sh // 2 - int(10 * s)
        x = sx + int(12 * s)
        while x < sx + sw - int(40 * s):
            bwid = int(rng.uniform(18, 45) * s)
            bht = int(rng.uniform(0.6, 0.92) * (sh // 2 - int(20 * s)))
            cv2.rectangle(
                img,
                (x, y1 - bht),
                (x + bwid, y1),
                tuple(int(v) for v in rng.uniform(20, 230, 3)),
                -1,
            )
            x += bwid + int(rng.uniform(1, 5) * s)
    # A clock.
    r = int(rng.uniform(55, 80) * s)
    ccx, ccy = int(rng.uniform(0.3, 0.7) * W), ceil + int(rng.uniform(60, 120) * s) + r
    cv2.circle(img, (ccx, ccy), r, (245, 245, 245), -1, cv2.LINE_AA)
    cv2.circle(img, (ccx, ccy), r, (30, 30, 30), max(2, int(6 * s)), cv2.LINE_AA)
    for a in rng.uniform(0, 2 * np.pi, 2):
        cv2.line(
            img,
            (ccx, ccy),
            (int(ccx + 0.75 * r * np.cos(a)), int(ccy + 0.75 * r * np.sin(a))),
            (20, 20, 20),
            max(2, int(5 * s)),
            cv2.LINE_AA,
        )
    return img


def _desk(rng, width, height, s) -> np.ndarray:
    """A band of desks: a wooden top (streaks along it) over a darker front panel."""
    import cv2

    base = np.array(
        rng.choice([[40, 70, 110], [60, 95, 140], [70, 80, 90], [45, 55, 75]]), np.float32
    )
    top_h = max(2, int(height * 0.35))
    streaks = rng.normal(0, 1, (height, max(2, width // 40))).astype(np.float32)
    streaks = cv2.resize(streaks, (width, height), interpolation=cv2.INTER_LINEAR)
    desk = np.empty((height, width, 3), np.float32)
    desk[:top_h] = base * 1.25
    desk[top_h:] = base * 0.7
    desk += (8 * streaks)[..., None]
    desk[: max(1, int(4 * s))] = base * 1.6  # the lit front edge of the top
    # Legs/gaps between desks: darker vertical strips in the panel.
    step = int(rng.uniform(300, 500) * s)
    for x in range(int(rng.uniform(0, step)), width, step):
        desk[top_h:, x : x + max(2, int(10 * s))] *= 0.5
    return desk.clip(0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# People


@dataclass
class _Person:
    source: SourceFace
    enrolled: bool
    cx: float
    cy: float
    width: float
    tilt: float
    clothes: tuple[float, float, float]
    row: int
    flip: bool = False  # the source mirrored (left and right landmarks swapped back)
    prop: dict | None = None
    # Filled by _place:
    head: tuple | None = None  # (x0, y0, bgr float32, alpha float32)
    torso: tuple | None = None
    quad_mask: tuple | None = None  # (x0, y0, bool mask)
    box: tuple | None = None
    landmarks: np.ndarray | None = None
    covered: float = 0.0

    @property
    def height(self) -> float:
        b = self.source.box
        return self.width * (b[3] - b[1]) / (b[2] - b[0])


def _affine(person: _Person):
    """(resize factors, matrix cut->canvas): the cut is first resized (area averaging when
    shrinking), then rotated and shifted; the matrix maps the cut's pixels to the canvas."""
    src = _mirrored(person.source) if person.flip else person.source
    fw = src.box[2] - src.box[0]
    s = person.width / fw
    a = math.radians(person.tilt)
    c = np.array([(src.box[0] + src.box[2]) / 2, (src.box[1] + src.box[3]) / 2])
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) * s
    m = np.zeros((2, 3))
    m[:, :2] = rot
    m[:, 2] = np.array([person.cx, person.cy]) - rot @ c
    return s, m


@cache
def _mirrored(src: SourceFace) -> SourceFace:
    """The source face mirrored left to right: the same person, another photo to the eye. The
    landmarks keep their order (the eye on the image's left first)."""
    w = src.cut.shape[1]
    box = np.array([w - src.box[2], src.box[1], w - src.box[0], src.box[3]])
    marks = src.landmarks.copy()
    marks[:, 0] = w - marks[:, 0]
    marks = marks[[1, 0, 2, 4, 3]]
    return SourceFace(
        src.path,
        src.person,
        src.score,
        src.width,
        np.ascontiguousarray(src.cut[:, ::-1]),
        np.ascontiguousarray(src.alpha[:, ::-1]),
        box,
        marks,
        src.clothes,
    )


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _place(person: _Person, W: int, H: int, gain: np.ndarray) -> None:
    """Render the person's head (warped cut) and torso, and their truth, at cx, cy."""
    import cv2

    src = _mirrored(person.source) if person.flip else person.source
    s, m = _affine(person)
    cut, alpha = src.cut, src.alpha
    pre = np.eye(3)
    if s < 0.9:  # shrink with area averaging first, then warp at about 1:1
        size = (max(2, round(cut.shape[1] * s)), max(2, round(cut.shape[0] * s)))
        kx, ky = size[0] / cut.shape[1], size[1] / cut.shape[0]
        cut = cv2.resize(cut, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        # cut pixel q maps to (q + 0.5) * k - 0.5 in the resized one
        pre = np.array([[kx, 0, 0.5 * (kx - 1)], [0, ky, 0.5 * (ky - 1)], [0, 0, 1]])
    m3 = np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(pre)  # resized cut -> canvas
    ch, cw = cut.shape[:2]
    corners = _apply(m3[:2], np.array([[0, 0], [cw, 0], [0, ch], [cw, ch]], np.float64))
    x0, y0 = (int(max(0, math.floor(v))) for v in corners.min(0))
    x1, y1 = (
        int(min(W, math.ceil(corners[:, 0].max()))),
        int(min(H, math.ceil(corners[:, 1].max()))),
    )
    local = m3[:2].copy()
    local[:, 2] -= (x0, y0)
    size = (max(1, x1 - x0), max(1, y1 - y0))
    flags = cv2.INTER_LINEAR if s < 0.9 or s > 1.1 else cv2.INTER_CUBIC
    patch = cv2.warpAffine(cut, local, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(
        alpha, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    person.head = (x0, y0, patch.astype(np.float32) * gain, a)
    # The truth: the source face box and landmarks, carried by the same transform.
    b = src.box
    quad = _apply(m, np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]))
    qx0, qy0 = quad.min(0)
    qx1, qy1 = quad.max(0)
    person.box = (float(qx0), float(qy0), float(qx1 - qx0), float(qy1 - qy0))
    person.landmarks = _apply(m, src.landmarks)
    mx0, my0 = int(math.floor(qx0)), int(math.floor(qy0))
    mask = np.zeros((int(math.ceil(qy1)) - my0 + 1, int(math.ceil(qx1)) - mx0 + 1), np.uint8)
    cv2.fillPoly(
        mask, [np.round((quad - (mx0, my0)) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4
    )
    person.quad_mask = (mx0, my0, mask.astype(bool))
    # The torso: shoulders and chest under the head, in their clothes' colour, shaded.
    w, h = person.width, person.height
    tx0, tx1 = int(max(0, person.cx - 1.6 * w)), int(min(W, person.cx + 1.6 * w))
    ty0, ty1 = int(max(0, person.cy + 0.45 * h)), int(min(H, person.cy + 2.4 * h))
    if tx1 > tx0 and ty1 > ty0:
        tw, th = tx1 - tx0, ty1 - ty0
        shape = np.zeros((th, tw), np.uint8)
        ccx, ccy = person.cx - tx0, person.cy - ty0
        cv2.ellipse(
            shape,
            (int(ccx), int(ccy + 1.85 * h)),
            (int(1.45 * w), int(1.2 * h)),
            0,
            180,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )
        cv2.rectangle(
            shape, (int(ccx - 1.45 * w), int(ccy + 1.85 * h)), (int(ccx + 1.45 * w), th), 255, -1
        )
        cv2.ellipse(
            shape,
            (int(ccx), int(ccy + 0.7 * h)),
            (int(0.32 * w), int(0.5 * h)),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )  # the neck, under the cut's own
        ta = cv2.GaussianBlur(shape.astype(np.float32) / 255, (0, 0), max(0.8, 0.02 * w))
        xs = (np.arange(tw, dtype=np.float32) - ccx) / (1.45 * w)
        shade = 1.0 - 0.35 * np.clip(xs, -1, 1) ** 2
        color = np.array(person.clothes, np.float32)
        body = np.empty((th, tw, 3), np.float32)
        body[:] = color * shade[None, :, None]
        body *= (1 - 0.25 * np.linspace(0, 1, th, dtype=np.float32))[:, None, None]
        # skin for the neck
        neck_mask = np.zeros((th, tw), np.uint8)
        cv2.ellipse(
            neck_mask,
            (int(ccx), int(ccy + 0.7 * h)),
            (int(0.32 * w), int(0.62 * h)),
            0,
            0,
            360,
            255,
            -1,
        )
        neck = cv2.GaussianBlur(neck_mask, (0, 0), max(1, 0.05 * w)).astype(np.float32) / 255
        fb = src.box
        skin = (
            np.median(
                src.cut[
                    int(fb[1] + 0.4 * (fb[3] - fb[1])) : int(fb[3] - 0.1 * (fb[3] - fb[1])),
                    int(fb[0] + 0.25 * (fb[2] - fb[0])) : int(fb[2] - 0.25 * (fb[2] - fb[0])),
                ].reshape(-1, 3),
                axis=0,
            )
            * 0.85
        )
        above = np.clip((ccy + 1.2 * h - np.arange(th, dtype=np.float32)) / (0.3 * h), 0, 1)
        neck *= above[:, None]
        body = body * (1 - neck[..., None]) + skin.astype(np.float32) * neck[..., None]
        person.torso = (tx0, ty0, body * gain, ta)
    else:
        person.torso = None


def _prop_layer(person: _Person, depth: float, W: int, H: int):
    """The book or hand raised in front of ``person``'s face, reaching ``depth`` (a share of the
    face's size) into the face from its side, as (x0, y0, bgr float32, alpha float32)."""
    import cv2

    p = person.prop
    assert p is not None and person.box is not None, "a placed person with a prop"
    bx, by, bw, bh = person.box
    fw, fh = person.width, person.height
    if p["side"] == "bottom":
        pw, ph = p["size"][0] * fw, p["size"][1] * fh
        x0 = person.cx - pw / 2 + p["shift"] * fw
        y0 = by + bh - depth * bh
    else:
        pw, ph = p["size"][1] * fw * 0.8, p["size"][0] * fh
        y0 = person.cy - ph / 2 + 0.6 * fh + p["shift"] * fh
        x0 = bx - pw + depth * bw if p["side"] == "left" else bx + bw - depth * bw
    X0, Y0 = int(max(0, math.floor(x0))), int(max(0, math.floor(y0)))
    X1, Y1 = int(min(W, math.ceil(x0 + pw))), int(min(H, math.ceil(y0 + ph)))
    if X1 <= X0 or Y1 <= Y0:
        return None
    w, h = X1 - X0, Y1 - Y0
    mask = np.zeros((h, w), np.uint8)
    bgr = np.empty((h, w, 3), np.float32)
    ox, oy = x0 - X0, y0 - Y0
    if p["kind"] == "book":
        rect = ((ox + pw / 2, oy + ph / 2), (pw, ph), p["angle"])
        pts = cv2.boxPoints(rect)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        bgr[:] = p["color"]
        # the pages' edge along one side and a title band
        edge = max(1, int(0.08 * min(pw, ph)))
        bgr[:, :edge] = (230, 235, 240)
        bgr[int(0.2 * h) : int(0.2 * h) + edge * 2] *= 0.6
    else:  # a hand: palm and fingers, skin-coloured
        skin = np.array(p["color"], np.float32)
        cv2.ellipse(
            mask,
            (int(ox + pw / 2), int(oy + ph * 0.62)),
            (int(pw * 0.42), int(ph * 0.36)),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )
        for i in range(4):
            fx = ox + pw * (0.2 + 0.2 * i)
            cv2.ellipse(
                mask,
                (int(fx), int(oy + ph * 0.3)),
                (max(1, int(pw * 0.085)), int(ph * 0.28)),
                0,
                0,
                360,
                255,
                -1,
                cv2.LINE_AA,
            )
        shade = np.linspace(1.05, 0.8, w, dtype=np.float32)[None, :, None]
        bgr[:] = skin
        bgr *= shade
    alpha = mask.astype(np.float32) / 255
    return (X0, Y0, bgr, alpha)


# --------------------------------------------------------------------------------------------
# Composition


def _blend(canvas: np.ndarray, layer) -> None:
    x0, y0, bgr, alpha = layer
    h, w = alpha.shape
    region = canvas[y0 : y0 + h, x0 : x0 + w]
    h, w = region.shape[:2]
    a = alpha[:h, :w, None]
    out = region.astype(np.float32) * (1 - a) + bgr[:h, :w] * a
    canvas[y0 : y0 + h, x0 : x0 + w] = np.clip(out, 0, 255).astype(np.uint8)


def _or_into(occupied: np.ndarray, layer) -> None:
    x0, y0, _, alpha = layer
    h, w = alpha.shape
    region = occupied[y0 : y0 + h, x0 : x0 + w]
    region |= alpha[: region.shape[0], : region.shape[1]] > 0.5


def _coverage(person: _Person, occupied: np.ndarray, extra=None) -> float:
    """The share of the face's (rotated) box under ``occupied`` or the ``extra`` layer."""
    assert person.quad_mask is not None, "a placed person"
    x0, y0, mask = person.quad_mask
    H, W = occupied.shape
    ys, xs = (
        slice(max(0, y0), min(H, y0 + mask.shape[0])),
        slice(max(0, x0), min(W, x0 + mask.shape[1])),
    )
    m = mask[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    under = occupied[ys, xs].copy()
    if extra is not None:
        ex0, ey0, _, ea = extra
        sub = np.zeros_like(under)
        # extra's alpha in the window
        ax0, ay0 = max(xs.start, ex0), max(ys.start, ey0)
        ax1, ay1 = min(xs.stop, ex0 + ea.shape[1]), min(ys.stop, ey0 + ea.shape[0])
        if ax1 > ax0 and ay1 > ay0:
            sub[ay0 - ys.start : ay1 - ys.start, ax0 - xs.start : ax1 - xs.start] = (
                ea[ay0 - ey0 : ay1 - ey0, ax0 - ex0 : ax1 - ex0] > 0.5
            )
        under |= sub
    total = mask.sum()
    return float((under & m).sum() / total) if total else 0.0


def _inside(person: _Person, W: int, H: int, margin: float) -> bool:
    assert person.box is not None, "a placed person"
    x, y, w, h = person.box
    return x >= margin and y >= margin and x + w <= W - margin and y + h <= H - margin


def make_classroom(
    seed: int,
    enrolled_sources: dict[str, list[Path]],
    stranger_sources: dict[str, list[Path]],
    scene: Scene | str = "hard",
    size: tuple[int, int] = SIZE,
    quality: int = 90,
) -> Classroom:
    """One classroom photo. ``enrolled_sources``: per enrolled person, photos that are *not* in
    their gallery; ``stranger_sources``: per person nobody enrolled, photos. Photos that do not
    hold exactly one clear face >= 80 px wide are skipped. ``size`` (width, height) other than
    4000x3000 scales the whole room, faces included (for quick tests)."""
    import cv2

    scene = SCENES[scene] if isinstance(scene, str) else scene
    rng = np.random.default_rng(seed)
    W, H = size
    s = W / 4000
    enrolled = usable(enrolled_sources)
    strangers = usable(stranger_sources)
    if not enrolled and not strangers:
        raise ValueError("no usable source photo")

    # Rows, back to front: how many, how large.
    counts = [int(rng.integers(lo, hi + 1)) for lo, hi, _, _ in scene.rows]
    lo_total, hi_total = scene.faces
    while sum(counts) > hi_total:
        counts[int(np.argmax(counts))] -= 1
    while sum(counts) < lo_total:
        counts[int(rng.integers(len(counts)))] += 1
    total = sum(counts)
    widths = [
        np.sort(rng.uniform(wlo, whi, n)) * s for n, (_, _, wlo, whi) in zip(counts, scene.rows)
    ]

    # Who sits where: strangers spread at random, the enrolled balanced over the people.
    n_strangers = round(total * scene.stranger_share) if strangers else 0
    if not enrolled:
        n_strangers = total
    stranger_slot = np.zeros(total, bool)
    stranger_slot[rng.choice(total, n_strangers, replace=False)] = True
    uses: dict[str, int] = {p: 0 for p in list(enrolled) + list(strangers)}
    source_uses: dict[Path, int] = {}

    def pick(pool: dict[str, list[SourceFace]], target: float) -> SourceFace:
        # A face is not blown up beyond MAX_UPSCALE when any person has a large enough photo.
        ok = {p: [f for f in fs if f.width * MAX_UPSCALE >= target] for p, fs in pool.items()}
        ok = {p: fs for p, fs in ok.items() if fs} or {
            p: [max(fs, key=lambda f: f.width)] for p, fs in pool.items()
        }
        fewest = min(uses[p] for p in ok)
        people = sorted(p for p in ok if uses[p] == fewest)
        person = people[int(rng.integers(len(people)))]
        faces = ok[person]
        least = min(source_uses.get(f.path, 0) for f in faces)
        faces = [f for f in faces if source_uses.get(f.path, 0) == least]
        face = faces[int(rng.integers(len(faces)))]
        uses[person] += 1
        source_uses[face.path] = least + 1
        return face

    # Tilts: a few big ones, on faces of any size.
    n_tilted = int(rng.integers(scene.tilted[0], scene.tilted[1] + 1)) if scene.tilted[1] else 0
    tilts = rng.uniform(-scene.tilt_small, scene.tilt_small, total)
    big = rng.choice(total, min(total, n_tilted), replace=False)
    tilts[big] = rng.uniform(*scene.tilt_big, len(big)) * rng.choice([-1, 1], len(big))

    gain = np.array(rng.uniform([0.9, 0.93, 0.95], [1.02, 1.0, 1.05]), np.float32)  # the light
    # Row heights: front row's faces at ~70% of the height, rows behind spaced by a share of
    # the face height of the row in front.
    aspect = 1.25
    ys = [0.0] * len(counts)
    ys[-1] = H * rng.uniform(0.77, 0.80)
    for r in range(len(counts) - 2, -1, -1):
        ys[r] = ys[r + 1] - rng.uniform(*scene.row_gap) * aspect * float(widths[r + 1].mean())
    # The foot of the back wall runs behind the back row's shoulders.
    horizon = int(ys[0] + rng.uniform(0.9, 1.6) * aspect * float(widths[0].mean()))

    people: list[_Person] = []
    rows: list[list[_Person]] = []
    k = 0
    for r, n in enumerate(counts):
        w_mean = float(widths[r].mean())
        spacing = float(np.clip(rng.uniform(0.72, 0.9) * W / n, 3.0 * w_mean, 7.5 * w_mean))
        spacing = min(spacing, (W - 4 * w_mean) / n)
        center = W / 2 + rng.uniform(-0.5, 0.5) * max(0.0, W - 4 * w_mean - n * spacing)
        xs = center + (np.arange(n) - (n - 1) / 2) * spacing
        xs += rng.uniform(-0.2, 0.2, n) * spacing
        order = rng.permutation(n)
        row = []
        for i in range(n):
            target = float(widths[r][order[i]])
            pool = strangers if stranger_slot[k] else enrolled
            src = pick(pool, target)
            clothes = src.clothes
            if clothes is None or rng.random() < 0.3:
                base = np.array(CLOTHES[int(rng.integers(len(CLOTHES)))], np.float64)
                blue, green, red = (
                    float(v) for v in np.clip(base * rng.uniform(0.85, 1.15), 0, 255)
                )
                clothes = (blue, green, red)
            p = _Person(
                src,
                bool(not stranger_slot[k]),
                float(np.clip(xs[i], 2 * target, W - 2 * target)),
                float(ys[r] + rng.uniform(-0.12, 0.12) * aspect * target),
                target,
                float(tilts[k]),
                clothes,
                r,
                flip=bool(rng.random() < 0.5),
            )
            row.append(p)
            k += 1
        row.sort(key=lambda p: p.cx)
        rows.append(row)
        people.extend(row)

    # Props: on faces of the rows nearest the camera mostly (a raised book, a hand).
    n_props = int(rng.integers(scene.props[0], scene.props[1] + 1))
    weights = np.array([1.0 + p.row for p in people])
    for i in rng.choice(
        len(people), min(n_props, len(people)), replace=False, p=weights / weights.sum()
    ):
        p = people[i]
        kind = "book" if rng.random() < 0.6 else "hand"
        side = ["bottom", "left", "right"][int(rng.integers(3))]
        if kind == "book":
            color = tuple(float(v) for v in rng.uniform(30, 230, 3))
            sz = (rng.uniform(1.1, 1.5), rng.uniform(1.3, 1.7))
        else:
            color = (120.0, 150.0, 200.0) if rng.random() < 0.5 else (80.0, 110.0, 150.0)
            sz = (rng.uniform(0.9, 1.1), rng.uniform(1.0, 1.2))
        p.prop = dict(
            kind=kind,
            side=side,
            color=color,
            size=sz,
            shift=rng.uniform(-0.2, 0.2),
            angle=rng.uniform(-10, 10),
            target=rng.uniform(*scene.prop_cover),
        )

    # Front to back (the reverse of painting order): place each person where what is painted
    # after them covers at most max_cover of their face, and aim their prop at its coverage.
    occupied = np.zeros((H, W), bool)
    desk_layers: dict[int, tuple] = {}
    prop_layers: dict[int, tuple] = {}
    kept: set[int] = set()
    margin = 4 * s
    for r in range(len(rows) - 1, -1, -1):
        row = rows[r]
        w_mean = float(widths[r].mean())
        desk_top = int(ys[r] + 1.55 * aspect * w_mean)
        desk_h = int(0.8 * aspect * w_mean) if r < len(rows) - 1 else H - desk_top
        x_lo = int(max(0, min(p.cx for p in row) - 3 * w_mean))
        x_hi = int(min(W, max(p.cx for p in row) + 3 * w_mean))
        if r == len(rows) - 1:
            x_lo, x_hi = 0, W
        desk = _desk(rng, x_hi - x_lo, max(2, min(desk_h, H - desk_top)), s)
        desk_layers[r] = (
            x_lo,
            desk_top,
            desk.astype(np.float32) * gain,
            np.ones(desk.shape[:2], np.float32),
        )
        _or_into(occupied, desk_layers[r])
        for p in reversed(row):
            moves = [(0.0, 0.0)] + [
                (dx, dy)
                for step in (0.15, 0.3, 0.45, 0.6, 0.8)
                for dx, dy in ((0, -step), (step, 0), (-step, 0), (step, -step), (-step, -step))
            ]
            x0, y0 = p.cx, p.cy
            placed = False
            for dx, dy in moves:
                p.cx, p.cy = x0 + dx * 2 * p.width, y0 + dy * aspect * p.width
                _place(p, W, H, gain)
                if not _inside(p, W, H, margin):
                    continue
                natural = _coverage(p, occupied)
                if natural > scene.max_cover:
                    continue
                if p.prop is not None and natural < p.prop["target"]:
                    lo, hi, best = 0.0, 0.7, None
                    for _ in range(14):
                        mid = (lo + hi) / 2
                        layer = _prop_layer(p, mid, W, H)
                        c = _coverage(p, occupied, layer) if layer else natural
                        if c <= p.prop["target"]:
                            lo, best = mid, (layer, c)
                        else:
                            hi = mid
                    if best is not None and best[0] is not None and best[1] > natural + 0.02:
                        prop_layers[id(p)] = best[0]
                        p.prop["covered"] = best[1]
                    else:
                        p.prop = None
                else:
                    p.prop = None
                placed = True
                break
            if not placed:
                continue  # no room for them: left out
            kept.add(id(p))
            if id(p) in prop_layers:
                _or_into(occupied, prop_layers[id(p)])
            p.covered = _coverage(p, occupied)
            _or_into(occupied, p.head)
            if p.torso is not None:
                _or_into(occupied, p.torso)

    # Paint, back to front.
    canvas = _background(rng, W, H, horizon)
    for r, row in enumerate(rows):
        for p in row:
            if id(p) not in kept:
                continue
            if p.torso is not None:
                _blend(canvas, p.torso)
            _blend(canvas, p.head)
            if id(p) in prop_layers:
                _blend(canvas, prop_layers[id(p)])
        _blend(canvas, desk_layers[r])
    # The camera: a slight vignette and sensor noise.
    lw, lh = W // 16, H // 16
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    vig = 1 - 0.18 * (((xx / lw - 0.5) * 2) ** 2 + ((yy / lh - 0.5) * 2) ** 2) / 2
    vig = cv2.resize(vig, (W, H), interpolation=cv2.INTER_LINEAR)
    noise = rng.standard_normal((H, W), dtype=np.float32) * 3.0
    for c in range(3):
        canvas[:, :, c] = np.clip(canvas[:, :, c] * vig + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok

    faces = []
    for p in people:
        if id(p) not in kept:
            continue
        assert p.box is not None and p.landmarks is not None, "a placed person"
        try:
            rel = str(p.source.path.resolve().relative_to(REPO))
        except ValueError:
            rel = str(p.source.path)
        faces.append(
            TruthFace(
                box=tuple(round(v, 2) for v in p.box),
                landmarks=tuple((round(float(x), 2), round(float(y), 2)) for x, y in p.landmarks),
                width_px=round(p.width, 2),
                tilt_deg=round(p.tilt, 2),
                covered=round(p.covered, 4),
                person=p.source.person,
                enrolled=p.enrolled,
                source=rel,
                occluder="prop" if id(p) in prop_layers else "",
            )
        )
    return Classroom(buf.tobytes(), W, H, faces, scene.name, seed)


def scenes(
    n_easy: int = 2,
    n_hard: int = 2,
    seed: int = 0,
    enrolled_sources: dict[str, list[Path]] | None = None,
    stranger_sources: dict[str, list[Path]] | None = None,
    size: tuple[int, int] = SIZE,
) -> list[Classroom]:
    """The default set: ``n_easy`` easy then ``n_hard`` hard classrooms, seeds seed, seed+1, ...
    from ``default_sources`` unless given."""
    if enrolled_sources is None or stranger_sources is None:
        e, st = default_sources()
        enrolled_sources = e if enrolled_sources is None else enrolled_sources
        stranger_sources = st if stranger_sources is None else stranger_sources
    out = []
    for i, name in enumerate(["easy"] * n_easy + ["hard"] * n_hard):
        out.append(make_classroom(seed + i, enrolled_sources, stranger_sources, name, size))
    return out


def draw_truth(room: Classroom, detections: Iterable = ()) -> np.ndarray:
    """The photo (BGR) with every truth box (green, enrolled; orange, stranger; thicker when
    covered), its landmarks, and any ``detections`` (red, (x, y, w, h))."""
    import cv2

    from attendance.photos.images import decode_bgr

    img = decode_bgr(room.jpeg)
    t = max(2, room.width // 1000)
    for f in room.faces:
        x, y, w, h = f.box
        color = (0, 200, 0) if f.enrolled else (0, 140, 255)
        cv2.rectangle(
            img,
            (int(x), int(y)),
            (int(x + w), int(y + h)),
            color,
            t * (2 if f.covered >= 0.05 else 1),
        )
        for lx, ly in f.landmarks:
            cv2.circle(img, (int(lx), int(ly)), t, (255, 0, 255), -1)
    for d in detections:
        x, y, w, h = _xywh(d)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (0, 0, 255), t)
    return img


def main(argv: list[str]) -> None:
    import cv2

    out = Path(argv[0]) if argv else REPO / "var" / "test-artifacts" / "classrooms"
    out.mkdir(parents=True, exist_ok=True)
    for room in scenes():
        stem = f"{room.scene}-{room.seed}"
        (out / f"{stem}.jpg").write_bytes(room.jpeg)
        cv2.imwrite(str(out / f"{stem}-truth.jpg"), draw_truth(room))
        widths = [f.width_px for f in room.faces]
        print(
            f"{stem}: {len(room.faces)} faces, {min(widths):.0f}-{max(widths):.0f} px, "
            f"{sum(abs(f.tilt_deg) > 15 for f in room.faces)} tilted > 15, "
            f"{sum(f.covered >= 0.05 for f in room.faces)} covered >= 5%"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
