"""Decoding a checked photo (attendance.photos.checks) to the BGR array the face code reads."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps


def decode_bgr(data: bytes) -> np.ndarray:
    """Decode to an 8-bit BGR array the right way up (EXIF orientation applied)."""
    with Image.open(io.BytesIO(data)) as opened:
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
