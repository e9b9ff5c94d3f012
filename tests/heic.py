"""HEIC photos as iPhones write them, made from the JPEGs in tests/data/faces with pillow-heif
(nothing is kept on disk): the pixels as the sensor saw them, with the phone on its side, and
the orientation that turns them upright (EXIF Orientation 6, which pillow-heif also writes into
the container as libheif's rotation, as phones do), plus when the photo was taken."""

from __future__ import annotations

import io

from PIL import Image

import attendance.photos  # noqa: F401 (registers the HEIF plugin)

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
TAKEN = "2026:11:30 09:15:00"


def sideways_heic(
    upright: Image.Image, *, taken: str = TAKEN, offset: str = "+01:00", **save
) -> bytes:
    """``upright`` stored turned a quarter anticlockwise, with Orientation 6 ("turn a quarter
    clockwise to show") and DateTimeOriginal ``taken``; ``save`` goes to Pillow's save."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif.get_ifd(EXIF_IFD).update({DATE_TIME_ORIGINAL: taken, OFFSET_TIME_ORIGINAL: offset})
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(
        out, format="HEIF", exif=exif.tobytes(), quality=90, **save
    )
    return out.getvalue()


def sideways_heic_of(path, **save) -> bytes:
    with Image.open(path) as img:
        return sideways_heic(img.convert("RGB"), **save)
