"""Checking uploads with Pillow before anything is stored: the format, the declared size and
the one-frame rule from the headers (probe_image), then a full decode (check_image).

The web runs these; it never decodes photos to arrays (attendance.photos.images does, in the
worker).
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from attendance.domain.errors import InvalidImage

# MPO is what many phone cameras write: a JPEG (the photo, first) followed by further JPEG
# frames (previews, depth maps, a stereo pair's other eye). HEIF (.heic, .heif) is what iPhones
# write; Pillow reads it through pillow-heif (registered by attendance.photos).
ALLOWED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF"}
# How the formats are named to people, in the order they are named.
ACCEPTED_FORMATS = "JPEG, PNG, WebP, BMP, TIFF, GIF or HEIC/HEIF"
# Formats whose frames after the first are auxiliary: the first frame is the photo, and it is the
# only one anything here decodes. Any other image with more than one frame (an animated GIF,
# WebP or PNG, a multi-page TIFF) is refused: which frame shows the class would be a guess, and
# counting its frames would mean reading through all of them. A HEIF counts its top-level
# images as frames; the one Pillow opens is the file's primary image, the photo every viewer
# shows (thumbnails and depth maps are not frames at all).
FIRST_FRAME_FORMATS = {"MPO", "HEIF"}
# Formats whose draft() decodes the photo's own data at a smaller scale. A HEIF's draft() swaps
# in an embedded thumbnail instead, which would leave the photo itself unread.
SCALED_DRAFT_FORMATS = {"JPEG", "MPO"}


@dataclass(frozen=True)
class CheckedImage:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """What decoding it costs: the pixels of the one frame that is ever decoded."""
        return self.width * self.height


@contextmanager
def _pillow_errors(filename: str):
    """Pillow's ways of failing, as InvalidImage errors naming ``filename``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except InvalidImage:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidImage(
            f"{filename}: the image is too large to decode", code="image_too_large"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"{filename}: not an image", code="not_an_image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(
            f"{filename}: the image is damaged or truncated ({exc})", code="damaged_image"
        ) from exc


def _check_header(img: Image.Image, filename: str, max_pixels: int) -> CheckedImage:
    fmt, (width, height) = img.format, img.size
    if fmt not in ALLOWED_FORMATS:
        raise InvalidImage(
            f"{filename}: {fmt} images are not supported; send {ACCEPTED_FORMATS}",
            code="unsupported_image",
        )
    if width * height > max_pixels:
        raise InvalidImage(
            f"{filename}: {width}x{height} is larger than {max_pixels} pixels",
            code="image_too_large",
        )
    if fmt not in FIRST_FRAME_FORMATS and getattr(img, "is_animated", False):
        raise InvalidImage(
            f"{filename}: the {fmt} image has more than one frame (animated or multi-page); "
            "send a single still photo",
            code="multi_frame_image",
        )
    return CheckedImage(format=fmt, width=width, height=height)


def probe_image(data: bytes, filename: str, max_pixels: int) -> CheckedImage:
    """What ``data`` declares, from its headers alone (no pixel is decoded): its format and
    size, checked against the allowed formats, ``max_pixels`` and the one-frame rule."""
    if not data:
        raise InvalidImage(f"{filename}: the file is empty", code="empty_file")
    with _pillow_errors(filename):
        with Image.open(io.BytesIO(data)) as img:
            return _check_header(img, filename, max_pixels)


def check_image(data: bytes, filename: str, max_pixels: int) -> CheckedImage:
    """Raise InvalidImage unless ``data`` is a whole, decodable image of a sane size."""
    checked = probe_image(data, filename, max_pixels)
    width, height = checked.width, checked.height
    with _pillow_errors(filename):
        with Image.open(io.BytesIO(data)) as img:
            # verify() catches corrupt structure; load() catches truncated pixel data.
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            # A JPEG is decoded at 1/8 scale: every byte of its stream is still read and
            # Huffman-decoded (truncation is caught the same), but only an eighth of each side
            # is reconstructed, which costs much less. Only the first frame is loaded (an MPO's
            # further frames are never decoded).
            if checked.format in SCALED_DRAFT_FORMATS:
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
    return checked
