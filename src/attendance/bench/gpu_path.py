"""Figure 11: the whole-path figures (2, 3 and 10) with the face work on a GPU worker.

A stack of its own sends recognition to the "gpu" queue (ATTENDANCE_GPU_WORKERS), where one
worker runs FaceNet on TensorFlow, which sees the GPU; the baselines are DeepFace.represent in
this process, as in the CPU figures. Skipped, and said so, where TensorFlow sees no GPU.
"""

from __future__ import annotations

from attendance.bench.common import Context, Result, say

NAME = "gpu_path"
TITLE = "Whole path with a GPU worker"
GOAL = "reported where a GPU is present (the same figures as 2, 3 and 10)"
FIGURES = ("bulk_upload", "class_photo", "classroom_photo")


def run(ctx: Context) -> Result:
    import importlib

    from attendance.face.engines import visible_gpus

    result = Result(NAME, TITLE, GOAL)
    gpus = visible_gpus()
    result.show("gpus", len(gpus), "seen by TensorFlow")
    if not gpus:
        result.notes.append("skipped: TensorFlow sees no GPU on this machine")
        say(f"  {NAME}: skipped, no GPU")
        return result
    # Its own Redis database: a stack empties its database when it starts.
    on_gpu = Context(quick=ctx.quick, redis_db=(ctx.redis_db + 1) % 16, gpu=True, models=ctx.models)
    try:
        for name in FIGURES:
            figure = importlib.import_module(f"attendance.bench.{name}").run(on_gpu)
            result.details[name] = figure.to_dict()
            for key in ("speedup", "real_faces_pipeline", "faces_found_pipeline", "recognised"):
                if key in figure.figures:
                    result.show(f"{name}_{key}", figure.figures[key])
    finally:
        on_gpu.close()
    result.met = None
    return result
