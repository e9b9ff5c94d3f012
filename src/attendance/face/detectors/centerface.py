"""CenterFace: a small CNN face detector (MobileNetV2 backbone) with a confidence and five
landmarks per face (eyes, nose tip, mouth corners), compiled by OpenVINO for this CPU.

The network sees the whole photo at once, in any size divisible by 32, and answers per 4x4
pixel cell: a heatmap of face centres, the box size, a sub-cell offset and the landmarks. The
decoding below is CenterFace's own (as in the `deface` package, MIT), vectorised.

By default ("auto", ATTENDANCE_DETECT_PRECISION) it runs in the CPU's fastest precision (bfloat16
on AVX512_BF16 or AMX), kept only if, on a group photo shipped with the package, it finds the
same faces as float32 with the same boxes and landmarks (``agree``); else in float32
(docs/performance.md, "Detection on OpenVINO").

A face that the downscaled copy leaves small is found again on a crop of the photo where it is
drawn larger (``CenterFaceDetector.refine``): its landmarks, which align it, then rest on more of
its pixels (docs/performance.md, "The refining pass").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attendance.face.detectors.base import DetectorOptions, FaceRegion

INPUT = "input.1"
OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks
STRIDE = 4
NMS_IOU = 0.3
# CenterFace's boxes are tight; Haar's are this much wider for the same face. min_face_px is
# in Haar's terms (what it was chosen on), so a CenterFace box is compared after scaling.
CNN_BOX_SCALE = 1.24
CHECK_PHOTO = Path(__file__).resolve().parent.parent / "data" / "precision-check.jpg"
# How far the faster precision's faces may be from float32's on the check photo: boxes by IoU,
# landmarks in box widths, confidences in absolute terms.
MIN_AGREEING_IOU = 0.85
MAX_LANDMARK_SHIFT = 0.05
MAX_SCORE_SHIFT = 0.05
# The refining pass: each small face is found again on a square crop of the photo, of this
# side (divisible by 32).
REFINE_SIDE = 96
# The crops go through the network in batches of these sizes, padded up to the next one: a
# batch of a size not seen before costs as much again as inferring it, once per process.
REFINE_BATCHES = (1, 2, 4, 8)
# A refined face is the crop's detection overlapping the coarse box by at least this much.
REFINE_MIN_IOU = 0.4
# The confidence a face needs on its crop: the coarse pass has decided that it is there.
REFINE_MIN_CONFIDENCE = 0.3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (n, 4) float32 x0, y0, x1, y1 in the pixels of the image given
    scores: np.ndarray  # (n,) float32 in [0, 1]
    landmarks: np.ndarray  # (n, 5, 2) float32 (x, y): right eye, left eye, nose, mouth r, l


def dynamic_graph(model):
    """The published graph has a fixed 32x32 input; its convolutions work at any size."""
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    inputs = {
        i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input
    }
    outputs = {
        o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output
    }
    inputs[INPUT] = ["B", 3, "H", "W"]
    outputs.update(
        {
            "537": ["B", 1, "h", "w"],
            "538": ["B", 2, "h", "w"],
            "539": ["B", 2, "h", "w"],
            "540": ["B", 10, "h", "w"],
        }
    )
    return update_inputs_outputs_dims(model, inputs, outputs)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (x0, y0, x1, y1) with each of ``boxes``."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[iou(boxes[i], boxes[rest]) < threshold]
    return np.array(keep, dtype=np.int64)


def agree(a: Detections, b: Detections) -> str | None:
    """None if ``b`` found the same faces as ``a`` (within the MIN_/MAX_ tolerances), else how
    they differ."""
    if len(a.boxes) != len(b.boxes):
        return f"it found {len(b.boxes)} faces instead of {len(a.boxes)}"
    for box, score, marks in zip(a.boxes, a.scores, a.landmarks):
        overlaps = iou(box, b.boxes)
        j = int(np.argmax(overlaps))
        width = float(box[2] - box[0])
        if overlaps[j] < MIN_AGREEING_IOU:
            return f"a face's box overlaps the same face's by {overlaps[j]:.2f} only"
        shift = float(np.linalg.norm(b.landmarks[j] - marks, axis=1).max()) / max(width, 1.0)
        if shift > MAX_LANDMARK_SHIFT:
            return f"a face's landmarks moved by {shift:.2f} of its width"
        if abs(float(b.scores[j]) - float(score)) > MAX_SCORE_SHIFT:
            return f"a face's confidence moved by {abs(float(b.scores[j]) - float(score)):.2f}"
    return None


def network_input(bgr: np.ndarray) -> np.ndarray:
    """The (1, 3, H, W) float32 RGB blob the network takes for a BGR image."""
    import cv2

    height, width = bgr.shape[:2]
    # The network wants sides divisible by 32: pad (black) rather than stretch.
    h32, w32 = -(-height // 32) * 32, -(-width // 32) * 32
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if (h32, w32) != (height, width):
        rgb = cv2.copyMakeBorder(
            rgb, 0, h32 - height, 0, w32 - width, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


@dataclass(frozen=True)
class Crop:
    """A square of the photo, resampled to REFINE_SIDE pixels: photo = origin + crop / zoom."""

    pixels: np.ndarray  # (REFINE_SIDE, REFINE_SIDE, 3) BGR uint8
    origin: tuple[float, float]
    zoom: float


def crop_around(bgr: np.ndarray, box: np.ndarray, face_px: float) -> Crop:
    """The square of ``bgr`` centred on ``box`` (x0, y0, x1, y1, in its pixels) in which the
    face is drawn ``face_px`` wide, never enlarged; black where it passes the photo's edge."""
    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    zoom = min(1.0, face_px / max(x1 - x0, y1 - y0, 1.0))
    span = max(1, round(REFINE_SIDE / zoom))
    zoom = REFINE_SIDE / span
    ox, oy = round((x0 + x1 - span) / 2), round((y0 + y1 - span) / 2)
    region = bgr[max(0, oy) : max(0, oy + span), max(0, ox) : max(0, ox + span)]
    top, left = max(0, -oy), max(0, -ox)
    bottom, right = span - top - region.shape[0], span - left - region.shape[1]
    if region.size == 0:
        region = np.zeros((span, span, 3), np.uint8)
    elif top or left or bottom or right:
        region = cv2.copyMakeBorder(
            region, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    interpolation = cv2.INTER_AREA if zoom < 1.0 else cv2.INTER_LINEAR
    pixels = cv2.resize(region, (REFINE_SIDE, REFINE_SIDE), interpolation=interpolation)
    return Crop(pixels, (float(ox), float(oy)), zoom)


def _check_photo() -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(CHECK_PHOTO), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"the detector's check photo is missing: {CHECK_PHOTO}")
    return bgr


class CenterFace:
    def __init__(self, path: Path, precision: str | None = None):
        """``precision``: "f32", "bf16" or None for the CPU's fastest that ``agree``s."""
        import onnx
        import openvino as ov

        self._core = ov.Core()
        self._model = self._core.read_model(
            dynamic_graph(onnx.load(str(path))).SerializeToString(), b""
        )
        # One inference request, asked by one thread at a time.
        self._lock = threading.Lock()
        self._request, self.precision = self._compiled(precision)

    def _compiled(self, precision: str | None):
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        compiled = self._core.compile_model(self._model, "CPU", config)
        chosen = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        request = compiled.create_infer_request()
        if precision is not None or chosen == "f32":
            return request, chosen
        reference, _ = self._compiled("f32")
        check = _check_photo()
        differs = agree(self._detect(reference, check, 0.5), self._detect(request, check, 0.5))
        if differs is None:
            return request, chosen
        log.warning("CenterFace in %s: %s than in float32; using float32", chosen, differs)
        return reference, "f32"

    def __call__(self, bgr: np.ndarray, threshold: float) -> Detections:
        with self._lock:
            return self._detect(self._request, bgr, threshold)

    def warm_up(self, sizes: Iterable[tuple[int, int]]) -> None:
        """Infer once at each (height, width): the first inference at a size costs more."""
        for height, width in sizes:
            self(np.zeros((height, width, 3), np.uint8), 0.5)

    def refine(self, bgr: np.ndarray, boxes: np.ndarray, face_px: float, threshold: float):
        """For each box (x0, y0, x1, y1 on ``bgr``), the face found again on a crop of ``bgr``
        where it is ``face_px`` wide: (box, landmarks) on ``bgr``, or None where the crop shows
        no face at that place."""
        if len(boxes) == 0:
            return []
        crops = [crop_around(bgr, box, face_px) for box in boxes]
        heatmap, scale, offset, marks = self._infer_batches(
            np.concatenate([network_input(c.pixels) for c in crops])
        )
        refined: list[tuple[np.ndarray, np.ndarray] | None] = []
        for i, (crop, box) in enumerate(zip(crops, boxes)):
            found = self.decode(
                heatmap[i, 0], scale[i], offset[i], marks[i], threshold, (REFINE_SIDE,) * 2
            )
            origin = np.array(crop.origin * 2, np.float32)
            expected = (np.asarray(box, np.float32) - origin) * crop.zoom
            overlaps = iou(expected, found.boxes)
            if overlaps.size == 0 or overlaps.max() < REFINE_MIN_IOU:
                refined.append(None)
                continue
            j = int(np.argmax(overlaps))
            refined.append(
                (found.boxes[j] / crop.zoom + origin, found.landmarks[j] / crop.zoom + origin[:2])
            )
        return refined

    def _infer_batches(self, blob: np.ndarray) -> list[np.ndarray]:
        """The four outputs for a (n, 3, REFINE_SIDE, REFINE_SIDE) blob, in batches of the
        REFINE_BATCHES sizes only."""
        largest = REFINE_BATCHES[-1]
        parts: list[list[np.ndarray]] = []
        with self._lock:
            for start in range(0, len(blob), largest):
                chunk = blob[start : start + largest]
                size = next(b for b in REFINE_BATCHES if b >= len(chunk))
                padded = np.zeros((size, *chunk.shape[1:]), np.float32)
                padded[: len(chunk)] = chunk
                out = self._request.infer({0: padded})
                parts.append([np.array(out[i][: len(chunk)]) for i in range(4)])
        return [np.concatenate([part[i] for part in parts]) for i in range(4)]

    def warm_up_refining(self) -> None:
        for size in REFINE_BATCHES:
            self._infer_batches(np.zeros((size, 3, REFINE_SIDE, REFINE_SIDE), np.float32))

    def _detect(self, request, bgr: np.ndarray, threshold: float) -> Detections:
        out = request.infer({0: network_input(bgr)})
        return self.decode_outputs([out[i] for i in range(4)], threshold, bgr.shape[:2])

    @classmethod
    def decode_outputs(cls, outputs, threshold: float, size: tuple[int, int]) -> Detections:
        """The faces in the network's four outputs (batch of one) for an image of ``size``."""
        heatmap, scale, offset, marks = outputs
        return cls.decode(heatmap[0, 0], scale[0], offset[0], marks[0], threshold, size)

    @staticmethod
    def decode(
        heatmap, scale, offset, marks, threshold: float, size: tuple[int, int]
    ) -> Detections:
        rows, cols = np.nonzero(heatmap > threshold)
        if rows.size == 0:
            return Detections(
                np.zeros((0, 4), np.float32),
                np.zeros(0, np.float32),
                np.zeros((0, 5, 2), np.float32),
            )
        height, width = size
        bh = np.exp(scale[0, rows, cols]) * STRIDE
        bw = np.exp(scale[1, rows, cols]) * STRIDE
        cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
        cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
        x0 = np.clip(cx - bw / 2, 0, width)
        y0 = np.clip(cy - bh / 2, 0, height)
        boxes = np.stack([x0, y0, np.minimum(x0 + bw, width), np.minimum(y0 + bh, height)], 1)
        lm = marks[:, rows, cols].T.reshape(-1, 5, 2)  # (n, 5, [dy, dx]) relative to the box
        landmarks = np.stack(
            [lm[:, :, 1] * bw[:, None] + x0[:, None], lm[:, :, 0] * bh[:, None] + y0[:, None]],
            axis=2,
        )
        scores = heatmap[rows, cols]
        keep = nms(boxes, scores)
        return Detections(
            boxes[keep].astype(np.float32),
            scores[keep].astype(np.float32),
            landmarks[keep].astype(np.float32),
        )


class CenterFaceDetector:
    name = "centerface"
    box_scale = CNN_BOX_SCALE

    def __init__(self, options: DetectorOptions):
        from attendance.face.weights import check_centerface_weights

        if options.centerface_weights is None:
            raise ValueError("the centerface detector needs the path of its weights")
        check_centerface_weights(options.centerface_weights)
        self._network = CenterFace(
            options.centerface_weights, None if options.precision == "auto" else options.precision
        )
        self.precision = self._network.precision
        self.min_confidence = options.min_confidence
        self.refine_px = options.refine_px

    def warm_up(self, sizes: Iterable[tuple[int, int]]) -> None:
        self._network.warm_up(sizes)
        if self.refine_px:
            self._network.warm_up_refining()

    def find(self, image: np.ndarray, min_size: float) -> list[FaceRegion]:
        # The network sees the whole image at once: there is no scan of small faces to skip.
        found = self._network(image, self.min_confidence)
        return [
            FaceRegion(x0, y0, x1, y1, float(score), landmarks=marks)
            for (x0, y0, x1, y1), score, marks in zip(found.boxes, found.scores, found.landmarks)
        ]

    def refine(
        self, photo: np.ndarray, regions: list[FaceRegion], scale: float
    ) -> list[FaceRegion]:
        """``regions``, found on ``photo`` downscaled by ``scale``, with the box and landmarks
        of each face narrower than ``refine_px`` there found again on the photo itself, where it
        is drawn ``refine_px`` wide: the landmarks that align a small face need more of its
        pixels than a coarse copy keeps. Still in the copy's pixels; the confidence stays the
        coarse pass's, which decided that there is a face."""
        if scale >= 1.0:  # the copy is the photo: nothing more to see
            return regions
        small = [
            i
            for i, r in enumerate(regions)
            if max(r.x1 - r.x0, r.y1 - r.y0) < self.refine_px and r.landmarks is not None
        ]
        if not small:
            return regions
        boxes = np.array(
            [[regions[i].x0, regions[i].y0, regions[i].x1, regions[i].y1] for i in small]
        )
        threshold = min(self.min_confidence, REFINE_MIN_CONFIDENCE)
        refined = self._network.refine(photo, boxes / scale, self.refine_px, threshold)
        regions = list(regions)
        for i, found in zip(small, refined):
            if found is None:  # not seen again: the coarse pass's face stands as it was found
                continue
            box, marks = found
            x0, y0, x1, y1 = (float(v) for v in box * scale)
            regions[i] = FaceRegion(x0, y0, x1, y1, regions[i].confidence, landmarks=marks * scale)
        return regions
