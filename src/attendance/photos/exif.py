"""When a photo was taken, from its EXIF (Pillow only: the web reads it at upload)."""

from __future__ import annotations

import datetime as dt
import io
import re

from PIL import Image

_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_STAMP = re.compile(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ") if isinstance(value, str) else None


def captured_at(data: bytes) -> dt.datetime | None:
    """DateTimeOriginal, with OffsetTimeOriginal when the camera wrote one (else the camera's
    own clock, without an offset); None when the photo says nothing usable (no EXIF, a blank or
    impossible date)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif().get_ifd(_EXIF_IFD)
    except Exception:  # checked already as an image; a damaged EXIF block only loses the time
        return None
    stamp = _text(exif.get(_DATE_TIME_ORIGINAL))
    match = _STAMP.fullmatch(stamp or "")
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        taken = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    offset = _OFFSET.fullmatch(_text(exif.get(_OFFSET_TIME_ORIGINAL)) or "")
    if offset is None:
        return taken
    sign, hours, minutes = offset.groups()
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    if delta >= dt.timedelta(hours=24):
        return taken
    return taken.replace(tzinfo=dt.timezone(-delta if sign == "-" else delta))
