"""One face out of a stored photo, with Pillow only (the web serves these; it has no OpenCV).

Boxes are in the pixels of the photo the right way up, as the worker's decode_bgr sees it
(attendance.photos.images: EXIF orientation applied), so the crop here is turned the same way
before it is cut.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from attendance.domain.schemas import Box

# Around a face shown to a teacher: enough of the head and shoulders to tell who it is.
VIEW_MARGIN = 0.25
VIEW_MAX_SIDE = 256
JPEG_QUALITY = 90


def with_margin(box: Box, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the box grown by ``margin`` of its size on every side,
    within a width x height image (never empty)."""
    dx, dy = round(box.w * margin), round(box.h * margin)
    left = min(max(0, box.x - dx), max(0, width - 1))
    top = min(max(0, box.y - dy), max(0, height - 1))
    right = max(left + 1, min(width, box.x + box.w + dx))
    bottom = max(top + 1, min(height, box.y + box.h + dy))
    return left, top, right, bottom


def _rgb(img: Image.Image) -> Image.Image:
    """As decode_bgr reads modes: transparency over white, 16-bit scaled to 8."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / peak)).astype(np.uint8), mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def face_crop(
    data: bytes, box: Box, *, margin: float = VIEW_MARGIN, max_side: int = VIEW_MAX_SIDE
) -> bytes:
    """A JPEG of the box (and ``margin`` around it) cut from the photo, at most ``max_side``
    pixels on its longer side."""
    with Image.open(io.BytesIO(data)) as opened:
        img = ImageOps.exif_transpose(opened)
        region = img.crop(with_margin(box, img.width, img.height, margin))
    crop = _rgb(region)
    crop.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def jpeg_of_bgr(bgr: np.ndarray) -> bytes:
    """A BGR array (what the worker decodes to) as a JPEG."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(
        out, format="JPEG", quality=JPEG_QUALITY
    )
    return out.getvalue()
