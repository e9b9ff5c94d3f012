"""The names drawn on an annotated photo are large enough to read when a tablet or a phone
shows the whole photo across its screen, and a long name near the photo's right edge is drawn
whole."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from attendance.domain.schemas import Box, FaceMatch
from attendance.photos.annotate import ANNOTATED_MAX_SIDE, KNOWN, UNKNOWN, annotate

GREY = (128, 128, 128)
# A phone shows the photo about this many pixels wide; a label this tall there stays readable.
PHONE_PX = 360
READABLE_PX = 11


def photo(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), GREY, dtype=np.uint8)  # BGR, grey either way


def face(x: int, y: int, w: int, name: str | None) -> FaceMatch:
    return FaceMatch(
        box=Box(x=x, y=y, w=w, h=w),
        student_id="s1" if name else None,
        name=name,
        distance=0.2 if name else None,
        outcome="recognised" if name else "unknown",
    )


def label_area(jpeg: bytes, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the pixels near ``colour``: a label's filled rectangle
    (its box is drawn in lines a few pixels thick, which the row count below leaves out)."""
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)
    near = (np.abs(pixels - np.array(colour)).sum(axis=2) < 60).astype(int)
    # A label's rows are filled across its width; the box's sides only a few pixels.
    rows = np.flatnonzero(near.sum(axis=1) > 40)
    columns = np.flatnonzero(near[rows].sum(axis=0) > len(rows) // 2)
    return int(columns.min()), int(rows.min()), int(columns.max()), int(rows.max())


def test_a_name_is_readable_when_the_photo_is_shown_phone_wide():
    width, height = 4032, 3024  # a phone's photo, drawn at ANNOTATED_MAX_SIDE
    jpeg = annotate(photo(width, height), [face(1000, 1200, 400, "Angelina Jolie")])
    shown_width = Image.open(io.BytesIO(jpeg)).width
    assert shown_width == ANNOTATED_MAX_SIDE
    _, top, _, bottom = label_area(jpeg, KNOWN)
    assert (bottom - top) * PHONE_PX / shown_width >= READABLE_PX


def test_a_small_photo_still_gets_a_label_of_a_readable_size():
    jpeg = annotate(photo(320, 240), [face(100, 100, 60, None)])
    _, top, _, bottom = label_area(jpeg, UNKNOWN)
    assert bottom - top >= 16


def test_a_long_name_at_the_right_edge_is_drawn_whole():
    width = 1600
    near_edge = face(width - 120, 600, 100, "Maximilian Alexander")
    jpeg = annotate(photo(width, 1200), [near_edge])
    left, _, right, _ = label_area(jpeg, KNOWN)
    assert right < width - 1 or left < width - 120  # moved left rather than cut off
    assert right - left > 300  # the whole name, not a sliver


def test_a_small_face_in_a_crowd_gets_a_label_no_larger_than_it():
    # Large labels on a crowd's small faces would cover the photo.
    jpeg = annotate(photo(1600, 1200), [face(700, 600, 40, None)])
    _, top, _, bottom = label_area(jpeg, UNKNOWN)
    assert bottom - top <= 40
