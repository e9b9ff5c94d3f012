"""Decoding a checked photo (attendance.photos.checks) to the BGR array the face code reads."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps


def decode_bgr(data: bytes) -> np.ndarray:
    """Decode to an 8-bit BGR array the right way up (EXIF orientation applied)."""
    with Image.open(io.BytesIO(data)) as opened:
        if opened.format == "JPEG" and opened.mode in ("RGB", "L"):
            fast = _decoded_by_opencv(data)
            if fast is not None:
                return fast
        img: Image.Image = ImageOps.exif_transpose(opened)
        if img.mode not in ("RGB", "L"):
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float32)
                peak = float(arr.max()) or 1.0
                img = Image.fromarray((arr * (255.0 / peak)).astype(np.uint8), mode="L")
            elif img.mode in ("RGBA", "LA", "P", "PA"):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
        rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
    try:
        import cv2  # the worker has it (the web does not decode to arrays)
    except ImportError:
        return np.ascontiguousarray(rgb[:, :, ::-1])
    # Much faster than the strided copy above (docs/performance.md, "Decoding and drawing off
    # the critical path").
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _decoded_by_opencv(data: bytes) -> np.ndarray | None:
    """A plain JPEG decoded by OpenCV, which applies the EXIF orientation as Pillow's
    exif_transpose does, to the same pixels, in a fraction of Pillow's time with its copies
    (docs/performance.md, "Decoding"); None where OpenCV is not installed (the web)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
