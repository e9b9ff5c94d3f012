"""A face cut out with Pillow where the worker's decode put its box (EXIF orientation
applied the same way), and a photo's capture time read from its EXIF at upload."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict

from attendance.domain.schemas import Box
from attendance.photos.crops import face_crop, with_margin
from attendance.photos.exif import captured_at
from attendance.photos.images import decode_bgr
from attendance.stores.blob import open_blob_store
from attendance.web.uploads import read_photos, store_photos

ORIENTATION = 0x0112


def _jpeg(img: Image.Image, exif: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def _taken(stamp: str | None, offset: str | None = None) -> Image.Exif:
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    if stamp is not None:
        ifd[0x9003] = stamp
    if offset is not None:
        ifd[0x9011] = offset
    return exif


def test_the_crop_is_where_the_worker_sees_the_box_on_a_rotated_photo():
    # Upright: a red square at (200, 40), 60 px, on grey; stored turned a quarter with an EXIF
    # orientation saying how to turn it back, as phones do.
    upright = Image.new("RGB", (320, 200), (128, 128, 128))
    upright.paste((255, 0, 0), (200, 40, 260, 100))
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # the viewer turns it 90 degrees clockwise
    data = _jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif)

    bgr = decode_bgr(data)
    assert bgr.shape[:2] == (200, 320)
    box = Box(x=200, y=40, w=60, h=60)
    assert bgr[70, 230, 2] > 200 and bgr[70, 230, 0] < 60  # red where the box is

    crop = Image.open(io.BytesIO(face_crop(data, box, margin=0.0)))
    assert crop.size == (60, 60)
    r, g, b = np.asarray(crop)[30, 30]
    assert r > 200 and g < 60 and b < 60


def test_the_crop_has_a_margin_and_at_most_the_longest_side_asked_for():
    img = Image.new("RGB", (2000, 1500), (0, 90, 0))
    data = _jpeg(img)
    crop = Image.open(io.BytesIO(face_crop(data, Box(x=900, y=500, w=400, h=600))))
    assert max(crop.size) == 256 and crop.size[1] > crop.size[0]
    # At the photo's edge the margin is cut, never the box.
    assert with_margin(Box(x=0, y=0, w=100, h=100), 150, 120, 0.25) == (0, 0, 125, 120)
    assert with_margin(Box(x=0, y=0, w=0, h=0), 10, 10, 0.25) == (0, 0, 1, 1)


@pytest.mark.parametrize(
    "stamp, offset, want",
    [
        (
            "2026:11:02 08:55:00",
            "+01:00",
            dt.datetime(2026, 11, 2, 8, 55, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ),
        (
            "2026:11:02 08:55:00",
            "-05:30",
            dt.datetime(2026, 11, 2, 8, 55, tzinfo=dt.timezone(-dt.timedelta(hours=5, minutes=30))),
        ),
        ("2026:11:02 08:55:00", None, dt.datetime(2026, 11, 2, 8, 55)),
        ("2026:11:02 08:55:00", "bogus", dt.datetime(2026, 11, 2, 8, 55)),
        ("0000:00:00 00:00:00", None, None),
        ("    :  :     :  :  ", None, None),
        ("2026:02:30 08:55:00", None, None),
        (None, "+01:00", None),
    ],
)
def test_the_capture_time_is_read_from_exif(stamp, offset, want):
    data = _jpeg(Image.new("RGB", (40, 30)), _taken(stamp, offset))
    assert captured_at(data) == want


def test_a_photo_without_exif_or_that_is_no_jpeg_has_no_capture_time():
    assert captured_at(_jpeg(Image.new("RGB", (40, 30)))) is None
    png = io.BytesIO()
    Image.new("RGB", (40, 30)).save(png, format="PNG")
    assert captured_at(png.getvalue()) is None
    assert captured_at(b"not an image") is None


def test_an_upload_carries_its_capture_time_to_the_task(tmp_path):
    taken = _jpeg(Image.new("RGB", (64, 48)), _taken("2026:11:02 08:55:00", "+01:00"))
    plain = _jpeg(Image.new("RGB", (64, 48)))
    files = MultiDict(
        [
            ("photos", FileStorage(io.BytesIO(taken), "a.jpg")),
            ("photos", FileStorage(io.BytesIO(plain), "b.jpg")),
        ]
    )
    photos = read_photos(files, MultiDict(), max_count=5, max_pixels=10**6)
    blobs = open_blob_store(f"file://{tmp_path}/store")
    uploads = store_photos(blobs, "f" * 32, photos)
    assert uploads[0].captured_at == dt.datetime(
        2026, 11, 2, 8, 55, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    assert uploads[1].captured_at is None
