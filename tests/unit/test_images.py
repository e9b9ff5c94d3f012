import io

import numpy as np
import pytest
from PIL import Image

from common.errors import InvalidImage
from common.images import check_image, decode_bgr

MAX_PIXELS = 50_000_000


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kw)
    return out.getvalue()


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    bgr = decode_bgr(encode(img, "JPEG", exif=exif))
    assert bgr.shape == (40, 20, 3)


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("CMYK", "JPEG"), ("RGBA", "PNG"),
                                      ("I;16", "PNG"), ("RGB", "WEBP"), ("P", "GIF")])
def test_other_colour_modes_decode_to_bgr(mode, fmt):
    img = Image.new(mode, (16, 12))
    data = encode(img, fmt)
    assert check_image(data, "x", MAX_PIXELS).width == 16
    bgr = decode_bgr(data)
    assert bgr.shape == (12, 16, 3) and bgr.dtype == np.uint8


def test_channels_come_out_in_bgr_order():
    bgr = decode_bgr(encode(Image.new("RGB", (4, 4), (255, 0, 0)), "PNG"))
    assert tuple(bgr[0, 0]) == (0, 0, 255)


@pytest.mark.parametrize("data,code", [
    (b"", "empty_file"),
    (b"%PDF-1.4 not an image at all", "not_an_image"),
])
def test_not_images(data, code):
    with pytest.raises(InvalidImage) as err:
        check_image(data, "f.jpg", MAX_PIXELS)
    assert err.value.code == code and "f.jpg" in err.value.message


def test_truncated_jpeg_is_refused():
    data = encode(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG")
    with pytest.raises(InvalidImage) as err:
        check_image(data[: len(data) // 2], "half.jpg", MAX_PIXELS)
    assert err.value.code == "damaged_image"


def test_decompression_bomb_is_refused_before_decoding():
    data = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(data) < 200_000
    with pytest.raises(InvalidImage) as err:
        check_image(data, "bomb.png", MAX_PIXELS)
    assert err.value.code == "image_too_large"
