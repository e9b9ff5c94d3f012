"""Find faces on a downscaled copy of the photo, then crop and align them from the original.

Two ways: CenterFace (a CNN with five landmarks a face) aligned by a similarity transform of
its landmarks onto a fixed template; or one of DeepFace's detectors (Haar cascades, MTCNN)
aligned by DeepFace's eye rotation and cropped to their box."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from attendance.domain.schemas import Box

FACENET_INPUT = (160, 160)
BORDER = 0.25
# The opencv eye search runs on the top EYE_REGION of the face box, on a copy no wider than
# EYE_SEARCH_PX.
EYE_SEARCH_PX = 200
EYE_REGION = 0.6
# Where CenterFace's five landmarks (the eye on the image's left, the other eye, the nose tip,
# the mouth corners) go in the 160x160 crop FaceNet sees. Start: the median positions,
# symmetrised, of the landmarks inside the crops the Haar pipeline made of the 95 5 Celebrity
# Faces photos on which both found one face; then scaled 1.15x about (80, 94), a closer crop,
# which separated genuine from stranger distances best of the scales tried (0.85-1.2; README,
# "How the threshold was chosen").
_MEASURED = np.array(
    [[50.5, 63.6], [109.5, 63.6], [80.0, 98.0], [55.5, 124.0], [104.5, 124.0]], dtype=np.float32
)
TEMPLATE_SCALE = 1.15
TEMPLATE_160 = ((_MEASURED - (80.0, 94.0)) * TEMPLATE_SCALE + (80.0, 94.0)).astype(np.float32)
# CenterFace's boxes are tight; Haar's are this much wider for the same face. min_face_px is
# in Haar's terms (what it was chosen on), so a CenterFace box is compared after scaling.
CNN_BOX_SCALE = 1.24
# Two detections this much overlapped are one face (Haar's grouping sometimes keeps two boxes of
# different sizes on one face, and a box inside a face box is never another face).
OVERLAP = 0.5


def _overlapping(regions, overlap: float = OVERLAP) -> set[int]:
    """Indices of detections to drop: each overlaps a larger one by more than ``overlap`` of its
    own area (so it lies mostly inside it)."""
    order = sorted(range(len(regions)), key=lambda i: -(regions[i].w * regions[i].h))
    kept: list[int] = []
    dropped: set[int] = set()
    for i in order:
        a = regions[i]
        for j in kept:
            b = regions[j]
            iw = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
            ih = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
            if iw > 0 and ih > 0 and iw * ih > overlap * a.w * a.h:
                dropped.add(i)
                break
        else:
            kept.append(i)
    return dropped


TOO_SMALL = "too small to recognise"
TURNED = "turned too far away to recognise"
BLURRED = "too blurred to recognise"
# How far a face may be turned (the nose's offset from the eyes' midpoint along the eye line,
# in eye distances: 0 frontal, 0.5 with the nose in line with an eye, more in profile) and how sharp it must be (the variance of the
# Laplacian of its 160x160 crop) to be matched at all, and to be enrolled. README, "Enrollment
# photos", has the measurements behind them.
MAX_TURN, ENROLL_MAX_TURN = 1.0, 0.6
MIN_SHARPNESS, ENROLL_MIN_SHARPNESS = 6.0, 10.0


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    confidence: float
    # (160, 160, 3) float32 in [0, 1], BGR, what FaceNet expects; None for a face found but
    # not identifiable (``reason`` says why): it is reported, never matched.
    pixels: np.ndarray | None
    landmarks: np.ndarray | None = None  # (5, 2) in the photo's pixels, CenterFace only
    reason: str | None = None
    turn: float = 0.0  # signed, in eye distances (CenterFace only)
    sharpness: float = float("inf")  # variance of the Laplacian of the crop (CenterFace only)

    @property
    def identifiable(self) -> bool:
        return self.pixels is not None


def turn_of(landmarks: np.ndarray) -> float:
    """How far the head is turned: the nose tip's offset from the eyes' midpoint, along the
    line of the eyes, in eye distances (0 frontal, 0.5 with the nose in line with an eye)."""
    left, right, nose = (np.asarray(p, np.float64) for p in landmarks[:3])
    across = right - left
    distance = float(np.linalg.norm(across))
    if distance < 1e-6:
        return float("inf")
    return float(np.dot(nose - (left + right) / 2, across / distance) / distance)


def sharpness_of(pixels: np.ndarray) -> float:
    import cv2

    gray = cv2.cvtColor((pixels * 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


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
        (160, 160),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return crop.astype(np.float32) / 255.0


class FaceDetector:
    def __init__(
        self,
        backend: str,
        detect_max_side: int,
        min_face_px: int,
        scale_step: float = 1.25,
        min_neighbors: int = 3,
        *,
        centerface_weights=None,
        min_confidence: float = 0.5,
    ):
        self.backend = backend
        self.detect_max_side = detect_max_side
        self.min_face_px = min_face_px
        self.scale_step = scale_step
        self.min_neighbors = min_neighbors
        self.min_confidence = min_confidence
        if backend == "centerface":
            from attendance.face.centerface import CenterFace
            from attendance.face.weights import check_centerface_weights

            check_centerface_weights(centerface_weights)
            self._detector = CenterFace(centerface_weights)
        else:
            from deepface.modules import modeling

            self._detector = modeling.build_model(task="face_detector", model_name=backend)
        self._pool = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="faces"
        )
        self._local = threading.local()

    def width(self, face: DetectedFace) -> float:
        """The face's width as min_face_px measures faces (Haar's looser boxes)."""
        return face.box.w * (CNN_BOX_SCALE if self.backend == "centerface" else 1.0)

    @classmethod
    def from_settings(cls, settings, backend: str | None = None) -> FaceDetector:
        """The detector the settings describe (``backend`` overrides theirs)."""
        return cls(
            backend or settings.detector,
            settings.detect_max_side,
            settings.min_face_px,
            settings.detect_scale_step,
            settings.detect_min_neighbors,
            centerface_weights=settings.centerface_path,
            min_confidence=settings.detect_min_confidence,
        )

    def _regions(self, img: np.ndarray, min_size: float) -> list:
        """The detector's face regions on ``img``, none smaller than ``min_size`` pixels; for
        opencv without their eyes yet (``_find_eyes`` adds them, face by face).

        For opencv this is DeepFace's OpenCvClient.detect_faces (same cascade, same eye search)
        with a cheaper scan: it skips the window sizes below ``min_size``, whose faces would be
        dropped anyway, and steps the window size by ``scale_step`` (DeepFace: 1.1) while asking
        for ``min_neighbors`` overlapping hits (DeepFace: 10). Fewer window sizes give each face
        fewer hits, so the two move together: 1.25 with 3 scans ~2.6x faster than 1.1 with 10 and
        finds the same faces in the group photos (docs/performance.md, "Detection").
        """
        if self.backend != "opencv":
            return self._detector.detect_faces(img)
        from deepface.models.Detector import FacialAreaRegion

        side = max(1, int(min_size))
        try:
            found, _, scores = self._detector.model["face_detector"].detectMultiScale3(
                img,
                self.scale_step,
                self.min_neighbors,
                minSize=(side, side),
                outputRejectLevels=True,
            )
        except Exception:  # DeepFace ignores cascade errors the same way
            return []
        return [
            FacialAreaRegion(x=int(x), y=int(y), w=int(w), h=int(h), confidence=(100 - score) / 100)
            for (x, y, w, h), score in zip(found, scores)
        ]

    def _eye_finder(self):
        """This thread's DeepFace opencv client: a cascade must not run in two threads at once."""
        finder = getattr(self._local, "finder", None)
        if finder is None:
            from deepface.models.face_detection.OpenCv import OpenCvClient

            finder = self._local.finder = OpenCvClient()
        return finder

    def _find_eyes(self, img: np.ndarray, region):
        """``region`` with the eye centres DeepFace's opencv eye search finds in it."""
        import cv2

        x, y, w, h = region.x, region.y, region.w, region.h
        # Eyes lie in the upper part of a face box: the search skips the mouth and chin, which
        # costs less and stops a mouth being taken for an eye.
        crop = img[y : int(y + h * EYE_REGION), x : x + w]
        # Eyes are searched on the face at most EYE_SEARCH_PX wide: on a 600 px face the eye
        # cascade took 170 ms, for eye centres that then only set the rotation angle.
        k = min(1.0, EYE_SEARCH_PX / max(1, w))
        if k < 1.0:
            crop = cv2.resize(
                crop,
                (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))),
                interpolation=cv2.INTER_AREA,
            )
        left_eye, right_eye = self._eye_finder().find_eyes(img=crop)
        if left_eye is not None:
            left_eye = (int(x + left_eye[0] / k), int(y + left_eye[1] / k))
        if right_eye is not None:
            right_eye = (int(x + right_eye[0] / k), int(y + right_eye[1] / k))
        return replace(region, left_eye=left_eye, right_eye=right_eye)

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]:
        import cv2

        height, width = bgr.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        small = (
            bgr
            if scale == 1.0
            else cv2.resize(
                bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        )
        if self.backend == "centerface":
            return self._detect_centerface(bgr, small, scale)
        # A black margin lets the detector find faces that fill or touch the frame (DeepFace does
        # the same); it costs little on the downscaled copy.
        pad_y, pad_x = int(small.shape[0] * BORDER), int(small.shape[1] * BORDER)
        padded = cv2.copyMakeBorder(
            small, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
        regions = self._regions(padded, min_size=self.min_face_px * scale)
        duplicates = _overlapping(regions)
        kept = [r for i, r in enumerate(regions) if i not in duplicates]

        def finish(region) -> DetectedFace | None:
            if self.backend == "opencv":
                region = self._find_eyes(padded, region)
            return self._aligned(bgr, region, scale, pad_x, pad_y)

        # The cascade scan uses every core, but one face's eye search and alignment is too small
        # to: the faces are finished side by side (OpenCV releases the GIL).
        return [f for f in self._pool.map(finish, kept) if f is not None]

    def _detect_centerface(
        self, bgr: np.ndarray, small: np.ndarray, scale: float
    ) -> list[DetectedFace]:
        found = self._detector(small, self.min_confidence)
        height, width = bgr.shape[:2]
        faces = []
        for box, score, marks in zip(found.boxes / scale, found.scores, found.landmarks / scale):
            x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
            x1, y1 = min(width, int(round(box[2]))), min(height, int(round(box[3])))
            box_ = Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0)
            if min(box_.w, box_.h) * CNN_BOX_SCALE < self.min_face_px:
                # Found, but too small for FaceNet to tell who it is: a face nobody can vouch
                # for is reported as such, neither matched nor left out.
                faces.append(DetectedFace(box_, float(score), None, marks, TOO_SMALL))
                continue
            pixels = align_by_landmarks(bgr, marks)
            if pixels is None:
                continue
            turn, sharpness = turn_of(marks), sharpness_of(pixels)
            reason = (
                TURNED if abs(turn) > MAX_TURN else BLURRED if sharpness < MIN_SHARPNESS else None
            )
            faces.append(
                DetectedFace(
                    box_, float(score), None if reason else pixels, marks, reason, turn, sharpness
                )
            )
        return faces

    def _aligned(
        self, bgr: np.ndarray, region, scale: float, pad_x: int, pad_y: int
    ) -> DetectedFace | None:
        """The face at ``region`` (found on the padded, downscaled copy), cropped and aligned
        from the original photo and preprocessed for FaceNet; None if it is too small."""
        from deepface.models.Detector import FacialAreaRegion
        from deepface.modules import detection, preprocessing

        height, width = bgr.shape[:2]

        def up(v, pad=0):
            return None if v is None else int(round((v - pad) / scale))

        def up_point(p):
            return None if p is None else (up(p[0], pad_x), up(p[1], pad_y))

        x0, y0 = up(region.x, pad_x), up(region.y, pad_y)
        x1, y1 = up(region.x + region.w, pad_x), up(region.y + region.h, pad_y)
        x, y = max(0, x0), max(0, y0)
        w, h = min(width, x1) - x, min(height, y1) - y
        if min(w, h) < self.min_face_px:
            return None
        area = FacialAreaRegion(
            x=x,
            y=y,
            w=w,
            h=h,
            left_eye=up_point(region.left_eye),
            right_eye=up_point(region.right_eye),
            confidence=region.confidence,
        )
        # Align on the original photo: DeepFace rotates a padded sub-image around the face.
        aligned = detection.extract_face(
            facial_area=area,
            img=bgr,
            align=True,
            expand_percentage=0,
            width_border=0,
            height_border=0,
            detector_backend=self.backend,
        )
        crop = aligned.img
        if crop.size == 0:
            return None
        # Same preprocessing as DeepFace.represent: [0, 1] floats, letterboxed to 160x160.
        pixels = preprocessing.resize_image(
            img=crop.astype(np.float32) / 255.0, target_size=FACENET_INPUT
        )[0]
        return DetectedFace(Box(x=x, y=y, w=w, h=h), float(region.confidence or 0.0), pixels)
