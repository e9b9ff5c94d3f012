"""Image checks and decoding: every upload is checked with Pillow before anything is stored."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.errors import InvalidImage

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"}


@dataclass(frozen=True)
class CheckedImage:
    format: str
    width: int
    height: int


def check_image(data: bytes, filename: str, max_pixels: int) -> CheckedImage:
    """Raise InvalidImage unless ``data`` is a whole, decodable image of a sane size."""
    if not data:
        raise InvalidImage(f"{filename}: the file is empty", code="empty_file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format, img.size
                if fmt not in ALLOWED_FORMATS:
                    raise InvalidImage(
                        f"{filename}: {fmt} images are not supported", code="unsupported_image"
                    )
                if width * height > max_pixels:
                    raise InvalidImage(
                        f"{filename}: {width}x{height} is larger than {max_pixels} pixels",
                        code="image_too_large",
                    )
                # verify() catches corrupt structure; load() catches truncated pixel data.
                img.verify()
            with Image.open(io.BytesIO(data)) as img:
                # A JPEG is decoded at 1/8 scale: every byte of its stream is still read and
                # Huffman-decoded (truncation is caught the same), at ~half the cost.
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                img.load()
    except InvalidImage:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InvalidImage(f"{filename}: the image is too large to decode", code="image_too_large")
    except UnidentifiedImageError:
        raise InvalidImage(f"{filename}: not an image", code="not_an_image")
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"{filename}: the image is damaged or truncated ({exc})",
                           code="damaged_image")
    return CheckedImage(format=fmt, width=width, height=height)


def decode_bgr(data: bytes) -> np.ndarray:
    """Decode to an 8-bit BGR array the right way up (EXIF orientation applied)."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
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
    # 50x faster than the strided copy above on a 1800x1500 photo (0.1 ms against 7 ms).
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def encode_jpeg_bgr(bgr: np.ndarray, quality: int = 88) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(out, format="JPEG", quality=quality)
    return out.getvalue()
