"""What every FaceNet engine offers FaceNetEmbedder (attendance.face.embed)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Engine(Protocol):
    device: str  # what it computes on: "CPU" or "GPU"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) float32 faces in [0, 1] -> (n, 128) embeddings, not normalised;
        any n, nothing padded."""
        ...
