"""The photos every benchmark uses: real faces only (5 Celebrity Faces, the group photos in tests/data/faces).

The 30-face class photo is a 6x5 grid of real single-face photos: the 25 val photos and the first
train photo of each person (which the benchmarks then leave out of the enrolled gallery), each
scaled to fit a cell. Its ground truth is one face per cell.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

# The benchmarks run from the checkout (`make bench`), where var/ and tests/data are.
REPO = Path.cwd()
CELEB_DIR = Path(
    os.environ.get("ATTENDANCE_CELEB_DIR", REPO / "var" / "datasets" / "5-celebrity-faces")
)
FACES_DIR = Path(os.environ.get("ATTENDANCE_FACES_DIR", REPO / "tests" / "data" / "faces"))
PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
GRID_COLS, GRID_ROWS = 6, 5
CELL_W, CELL_H = 300, 300


def check_data() -> None:
    if not (CELEB_DIR / "val").is_dir():
        raise SystemExit(f"5 Celebrity Faces not found in {CELEB_DIR}; run `make provision`")
    if not (FACES_DIR / "couple.jpg").is_file():
        raise SystemExit(
            f"group photos not found in {FACES_DIR}; ATTENDANCE_FACES_DIR names another folder"
        )


def val_photos() -> list[Path]:
    return sorted((CELEB_DIR / "val").glob("*/*.jpg"))


def train_photos(person: str | None = None) -> list[Path]:
    pattern = f"{person}/*.jpg" if person else "*/*.jpg"
    return sorted((CELEB_DIR / "train").glob(pattern))


def class_photo_members() -> list[Path]:
    """The 30 photos in the grid, in cell order (row by row)."""
    extra = [train_photos(p)[0] for p in PEOPLE]
    return val_photos() + extra


def gallery_photos() -> dict[str, list[Path]]:
    """Enrollment photos per person: the train split minus the photos used in the class photo."""
    used = set(class_photo_members())
    return {p: [f for f in train_photos(p) if f not in used] for p in PEOPLE}


@dataclass(frozen=True)
class ClassPhoto:
    jpeg: bytes
    width: int
    height: int
    people: list[str]  # who is in each cell, row by row

    def cell_of(self, box: dict) -> int | None:
        """The grid cell a detected box's centre falls in."""
        cx, cy = box["x"] + box["w"] / 2, box["y"] + box["h"] / 2
        col, row = int(cx // CELL_W), int(cy // CELL_H)
        if 0 <= col < GRID_COLS and 0 <= row < GRID_ROWS:
            return row * GRID_COLS + col
        return None

    def real_faces_found(self, boxes: list[dict]) -> tuple[int, int]:
        """(cells with at least one plausible face, other detections): a plausible face is one
        detection per cell, no larger than the cell."""
        cells: set[int] = set()
        extra = 0
        for box in boxes:
            cell = self.cell_of(box)
            plausible = box["w"] <= CELL_W * 1.05 and box["h"] <= CELL_H * 1.05
            if cell is None or cell in cells or not plausible:
                extra += 1
            else:
                cells.add(cell)
        return len(cells), extra


@lru_cache(maxsize=1)
def class_photo() -> ClassPhoto:
    members = class_photo_members()
    assert len(members) == GRID_COLS * GRID_ROWS, len(members)
    canvas = Image.new("RGB", (GRID_COLS * CELL_W, GRID_ROWS * CELL_H), (128, 128, 128))
    for i, path in enumerate(members):
        with Image.open(path) as photo:
            rgb = photo.convert("RGB")
            scale = min(CELL_W / rgb.width, CELL_H / rgb.height)
            img = rgb.resize(
                (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                Image.Resampling.LANCZOS,
            )
            row, col = divmod(i, GRID_COLS)
            x = col * CELL_W + (CELL_W - img.width) // 2
            y = row * CELL_H + (CELL_H - img.height) // 2
            canvas.paste(img, (x, y))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=92)
    return ClassPhoto(out.getvalue(), canvas.width, canvas.height, [p.parent.name for p in members])


def decode(data: bytes | Path) -> np.ndarray:
    from attendance.photos.images import decode_bgr

    return decode_bgr(data.read_bytes() if isinstance(data, Path) else data)
