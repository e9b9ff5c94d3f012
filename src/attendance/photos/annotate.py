"""Draw the recognition result on a photo: green boxes with names, red boxes for unknown faces,
amber boxes for faces too unclear to decide."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from attendance.domain.schemas import FaceMatch

KNOWN = (46, 160, 67)
UNKNOWN = (214, 39, 40)
UNIDENTIFIABLE = (204, 121, 0)
# Annotated photos are at most this large (the worker keeps only a copy this size for drawing).
ANNOTATED_MAX_SIDE = 1600
# A name label's font size: the photo's longer side over this, but at most LABEL_PER_FACE of
# the face's height (a crowd's small faces would be buried under large labels), and never
# under LABEL_MIN_PX.
LABEL_PER_SIDE = 30
LABEL_PER_FACE = 0.5
LABEL_MIN_PX = 16


def annotate(bgr: np.ndarray, faces: list[FaceMatch], max_side: int = ANNOTATED_MAX_SIDE) -> bytes:
    img = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)))
    draw = ImageDraw.Draw(img)
    line = max(2, round(max(img.size) / 400))
    # Large enough to read when a tablet or a phone shows the whole photo across its narrow
    # screen, a fraction of its pixels; the app also lists each face's name under the photo.
    largest = round(max(img.size) / LABEL_PER_SIDE)
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}
    for face in faces:
        b = face.box
        x0, y0 = b.x * scale, b.y * scale
        x1, y1 = (b.x + b.w) * scale, (b.y + b.h) * scale
        if face.outcome == "unidentifiable":
            # A box without a label: a crowd's small faces would bury the photo under text;
            # the caption says what amber means.
            draw.rectangle((x0, y0, x1, y1), outline=UNIDENTIFIABLE, width=max(1, line // 2))
            continue
        colour = KNOWN if face.student_id else UNKNOWN
        label = face.name or face.student_id or "unknown"
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        size = max(LABEL_MIN_PX, min(largest, round((y1 - y0) * LABEL_PER_FACE)))
        font = fonts.setdefault(size, ImageFont.load_default(size=size))
        left, top, right, bottom = draw.textbbox((x0, y0), label, font=font)
        # A label wider than the room right of the box is moved left, so it is not cut off.
        shift = max(0.0, min(x0, x0 + (right - left) + 2 * line - img.width))
        x0 -= shift
        label_y = y0 - (bottom - top) - 2 * line if y0 - (bottom - top) - 2 * line >= 0 else y1
        draw.rectangle(
            (x0, label_y, x0 + (right - left) + 2 * line, label_y + (bottom - top) + 2 * line),
            fill=colour,
        )
        draw.text((x0 + line, label_y + line - (top - y0)), label, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=88)
    return out.getvalue()
