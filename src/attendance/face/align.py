"""A detected face cropped and aligned from the original photo into what FaceNet sees: a
(160, 160, 3) float32 BGR crop in [0, 1].

Two ways: a face with five landmarks (CenterFace) is warped so they land on a fixed template, by
the similarity transform that fits them best; a face with only its eyes (DeepFace's detectors)
is rotated level on them by DeepFace and cropped to its box."""

from __future__ import annotations

import numpy as np

FACENET_INPUT = (160, 160)
# Where CenterFace's five landmarks (the eye on the image's left, the other eye, the nose tip,
# the mouth corners) go in the 160x160 crop FaceNet sees. Start: the median positions,
# symmetrised, of the landmarks inside the crops the Haar pipeline made of the 95 5 Celebrity
# Faces photos on which both found one face; then scaled by TEMPLATE_SCALE about (80, 94), a
# closer crop, which separated genuine from stranger distances best of the scales tried
# (0.85-1.2; README, "How the threshold was chosen").
_MEASURED = np.array(
    [[50.5, 63.6], [109.5, 63.6], [80.0, 98.0], [55.5, 124.0], [104.5, 124.0]], dtype=np.float32
)
TEMPLATE_SCALE = 1.15
TEMPLATE_160 = ((_MEASURED - (80.0, 94.0)) * TEMPLATE_SCALE + (80.0, 94.0)).astype(np.float32)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 rotation-scale-shift that maps ``src`` points onto ``dst`` with the least squared
    error (Umeyama's closed form, as insightface aligns its faces)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (sigma * sign).sum() / max(float((s**2).sum() / len(src)), 1e-12)
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def align_by_landmarks(bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The face warped so its landmarks land on TEMPLATE_160 (rotation, scale and shift only),
    as FaceNet's input: (160, 160, 3) float32 in [0, 1]. None if the landmarks are degenerate."""
    import cv2

    landmarks = landmarks.astype(np.float64)
    if np.ptp(landmarks, axis=0).max() < 1.0:
        return None  # all five points in one pixel: no face to align
    matrix = similarity(landmarks, TEMPLATE_160)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    if scale < 0.5:
        # Bilinear sampling of a face shrunk more than 2x aliases: shrink the region around it
        # with area averaging first, to twice the crop's scale, and warp that.
        spread = np.ptp(landmarks, axis=0).max()
        x0, y0 = np.maximum(0, np.floor(landmarks.min(axis=0) - 2 * spread)).astype(int)
        x1, y1 = np.ceil(landmarks.max(axis=0) + 2 * spread).astype(int)
        region = bgr[y0:y1, x0:x1]
        if region.size == 0:
            return None
        k = 2.0 * scale
        bgr = cv2.resize(
            region,
            (max(1, round(region.shape[1] * k)), max(1, round(region.shape[0] * k))),
            interpolation=cv2.INTER_AREA,
        )
        landmarks = (landmarks - np.array([x0, y0])) * k
        matrix = similarity(landmarks, TEMPLATE_160)
    crop = cv2.warpAffine(
        bgr,
        matrix,
        FACENET_INPUT,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return crop.astype(np.float32) / 255.0


def align_by_eyes(
    bgr: np.ndarray,
    box: tuple[int, int, int, int],
    left_eye: tuple[int, int] | None,
    right_eye: tuple[int, int] | None,
    backend: str,
) -> np.ndarray | None:
    """The face in ``box`` (x, y, w, h) rotated level on its eyes and cropped to the box by
    DeepFace, letterboxed to FaceNet's input as DeepFace.represent does: (160, 160, 3) float32
    in [0, 1]. ``backend`` is DeepFace's name of the detector, which decides whether DeepFace
    searches eyes the detector did not find. None if the crop is empty."""
    from deepface.models.Detector import FacialAreaRegion
    from deepface.modules import detection, preprocessing

    x, y, w, h = box
    area = FacialAreaRegion(x=x, y=y, w=w, h=h, left_eye=left_eye, right_eye=right_eye)
    # Align on the original photo: DeepFace rotates a padded sub-image around the face.
    aligned = detection.extract_face(
        facial_area=area,
        img=bgr,
        align=True,
        expand_percentage=0,
        width_border=0,
        height_border=0,
        detector_backend=backend,
    )
    crop = aligned.img
    if crop.size == 0:
        return None
    return preprocessing.resize_image(
        img=crop.astype(np.float32) / 255.0, target_size=FACENET_INPUT
    )[0]
