import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from attendance.domain.errors import InvalidImage
from attendance.photos.checks import check_image, probe_image
from attendance.photos.images import decode_bgr

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


@pytest.mark.parametrize(
    "mode,fmt",
    [
        ("L", "PNG"),
        ("CMYK", "JPEG"),
        ("RGBA", "PNG"),
        ("I;16", "PNG"),
        ("RGB", "WEBP"),
        ("P", "GIF"),
    ],
)
def test_other_colour_modes_decode_to_bgr(mode, fmt):
    img = Image.new(mode, (16, 12))
    data = encode(img, fmt)
    assert check_image(data, "x", MAX_PIXELS).width == 16
    bgr = decode_bgr(data)
    assert bgr.shape == (12, 16, 3) and bgr.dtype == np.uint8


def test_channels_come_out_in_bgr_order():
    bgr = decode_bgr(encode(Image.new("RGB", (4, 4), (255, 0, 0)), "PNG"))
    assert tuple(bgr[0, 0]) == (0, 0, 255)


@pytest.mark.parametrize(
    "data,code",
    [
        (b"", "empty_file"),
        (b"%PDF-1.4 not an image at all", "not_an_image"),
    ],
)
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


# --- what an image declares, and which of its frames is used -----------------------------------


def tiny_gif(width: int, height: int) -> bytes:
    """34 bytes declaring width x height: the header says it all, the pixel data is cut."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b","
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x01\x2c\x00;"
    )


def mpo(first: Image.Image, *others: Image.Image, **kw) -> bytes:
    """A multi-picture JPEG as phone cameras write it, made by Pillow."""
    out = io.BytesIO()
    first.save(out, format="MPO", save_all=True, append_images=list(others), **kw)
    return out.getvalue()


def test_probe_reads_what_the_headers_declare_without_decoding():
    data = tiny_gif(7000, 7000)
    assert len(data) < 40
    probed = probe_image(data, "tiny.gif", MAX_PIXELS)
    assert (probed.format, probed.width, probed.height, probed.pixels) == (
        "GIF",
        7000,
        7000,
        49_000_000,
    )
    with pytest.raises(InvalidImage) as err:  # decoding finds the missing pixel data
        check_image(data, "tiny.gif", MAX_PIXELS)
    assert err.value.code == "damaged_image"


def test_probe_applies_the_per_image_limit():
    with pytest.raises(InvalidImage) as err:
        probe_image(tiny_gif(8000, 7000), "big.gif", MAX_PIXELS)
    assert err.value.code == "image_too_large" and "8000x7000" in err.value.message


def test_mpo_from_a_phone_camera_is_accepted_and_its_first_frame_used():
    red, blue = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (32, 24), (0, 0, 255))
    data = mpo(red, blue)
    with Image.open(io.BytesIO(data)) as img:
        assert (img.format, img.n_frames) == ("MPO", 2)
    checked = check_image(data, "phone.jpg", MAX_PIXELS)
    assert (checked.format, checked.width, checked.height) == ("MPO", 64, 48)
    bgr = decode_bgr(data)
    assert bgr.shape == (48, 64, 3)
    b, g, r = (int(v) for v in bgr[10, 10])
    assert r > 240 and b < 15 and g < 15  # the first frame (red), not the appended blue one


def test_mpo_exif_rotation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = mpo(Image.new("RGB", (40, 20)), Image.new("RGB", (20, 10)), exif=exif)
    assert decode_bgr(data).shape == (40, 20, 3)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF", "PNG"])
def test_images_with_several_frames_are_refused(fmt):
    frames = [Image.new("RGB", (20, 20), (80 * i, 40, 0)) for i in range(3)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    with Image.open(io.BytesIO(data)) as img:
        assert img.n_frames == 3
    with pytest.raises(InvalidImage) as err:
        check_image(data, "anim", MAX_PIXELS)
    assert err.value.code == "multi_frame_image" and "anim" in err.value.message


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_jpeg_decodes_to_the_pixels_pillow_gives_in_every_orientation(orientation, mode):
    rng = np.random.default_rng(orientation)
    img = Image.fromarray((rng.random((30, 50, 3)) * 255).astype(np.uint8)).resize((100, 60))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(img.convert(mode), "JPEG", exif=exif, quality=95)
    with Image.open(io.BytesIO(data)) as opened:
        upright = ImageOps.exif_transpose(opened).convert("RGB")
    expected = np.asarray(upright)[:, :, ::-1]
    got = decode_bgr(data)
    assert got.shape == expected.shape
    assert int(np.abs(got.astype(int) - expected).max()) <= 1
