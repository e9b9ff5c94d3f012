"""HEIC/HEIF photos (iPhones' default) are read like any other: checked and stored as sent by
the web, decoded upright by the worker, cut upright into face crops, previewed by the app."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict

from attendance.domain.errors import InvalidImage
from attendance.domain.schemas import Box
from attendance.frontend import ui
from attendance.frontend.roster import read_zip_photos
from attendance.photos.checks import ACCEPTED_FORMATS, check_image, probe_image
from attendance.photos.crops import face_crop
from attendance.photos.exif import captured_at
from attendance.photos.images import decode_bgr
from attendance.web.uploads import read_photos
from tests.conftest import FACES_DIR
from tests.heic import sideways_heic, sideways_heic_of

MAX_PIXELS = 50_000_000
PHOTO = FACES_DIR / "img5.jpg"  # 330 wide, 512 high, upright


@pytest.fixture(scope="module")
def heic() -> bytes:
    return sideways_heic_of(PHOTO)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_the_orientation_is_honoured(heic):
    with Image.open(io.BytesIO(heic)) as img:
        assert img.format == "HEIF"
    upright = decode_bgr(PHOTO.read_bytes())
    decoded = decode_bgr(heic)
    assert decoded.shape == upright.shape == (512, 330, 3)
    # The same pixels, not merely the same shape (HEVC is lossy: a few levels of difference;
    # the photo turned any other way differs by tens).
    assert mean_difference(decoded, upright) < 3
    assert mean_difference(np.ascontiguousarray(decoded[::-1, ::-1]), upright) > 20


def test_a_jpeg_and_a_heic_with_the_same_orientation_decode_alike(heic):
    with Image.open(PHOTO) as img:
        exif = Image.Exif()
        exif[0x0112] = 6
        out = io.BytesIO()
        img.transpose(Image.Transpose.ROTATE_90).save(out, format="JPEG", exif=exif, quality=95)
    assert mean_difference(decode_bgr(heic), decode_bgr(out.getvalue())) < 3


def test_checks_read_the_upright_size(heic):
    assert probe_image(heic, "p", MAX_PIXELS).format == "HEIF"
    checked = check_image(heic, "p", MAX_PIXELS)
    assert (checked.format, checked.width, checked.height) == ("HEIF", 330, 512)


def test_the_photo_itself_is_checked_not_its_embedded_thumbnail(monkeypatch):
    """A HEIF's draft() would decode an embedded thumbnail in place of the photo."""
    data = sideways_heic(Image.new("RGB", (400, 300), (10, 120, 200)), thumbnails=[96])
    loaded = []
    real_load = Image.Image.load

    def load(self):
        loaded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(Image.Image, "load", load)
    check_image(data, "p", MAX_PIXELS)
    assert loaded and all(size == (400, 300) for size in loaded), loaded


def test_a_truncated_heic_is_refused(heic):
    with pytest.raises(InvalidImage) as err:
        check_image(heic[: len(heic) // 2], "photo 1 (IMG_0001.HEIC)", MAX_PIXELS)
    assert err.value.code in ("not_an_image", "damaged_image")
    assert "IMG_0001.HEIC" in str(err.value)


def test_the_upload_is_stored_as_sent_with_when_it_was_taken(heic):
    files = MultiDict(
        [("photos", FileStorage(io.BytesIO(heic), filename="IMG_0001.HEIC", name="photos"))]
    )
    [photo] = read_photos(files, MultiDict(), max_count=5, max_pixels=MAX_PIXELS)
    assert (photo.extension, photo.content_type) == ("heic", "image/heic")
    assert photo.data == heic
    assert photo.captured_at == dt.datetime(
        2026, 11, 30, 9, 15, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    assert captured_at(heic) == photo.captured_at


def test_the_face_crop_is_cut_from_the_upright_photo(heic):
    box = Box(x=60, y=120, w=200, h=220)
    from_heic = np.asarray(Image.open(io.BytesIO(face_crop(heic, box, margin=0))))
    from_jpeg = np.asarray(Image.open(io.BytesIO(face_crop(PHOTO.read_bytes(), box, margin=0))))
    assert from_heic.shape == from_jpeg.shape
    assert mean_difference(from_heic, from_jpeg) < 4


def test_refusals_name_the_accepted_formats():
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PCX")
    with pytest.raises(InvalidImage) as err:
        check_image(out.getvalue(), "p", MAX_PIXELS)
    assert err.value.code == "unsupported_image"
    assert ACCEPTED_FORMATS in str(err.value) and "HEIC" in str(err.value)


def test_the_app_takes_and_previews_heic(heic):
    assert {"heic", "heif"} <= set(ui.IMAGE_TYPES)
    preview = ui.thumbnail(heic)
    assert preview is not None
    with Image.open(io.BytesIO(preview)) as img:
        assert img.height > img.width  # upright, as the photo is shown


def test_heic_photos_in_the_class_zip_are_read(heic):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("s001/IMG_0001.HEIC", heic)
        archive.writestr("s002.heif", heic)
    assert set(read_zip_photos(out.getvalue()).by_path) == {"s001/IMG_0001.HEIC", "s002.heif"}
