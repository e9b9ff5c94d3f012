"""Figure 10: a 12 MP classroom photo through the whole path, against one DeepFace.represent.

The photos are the synthetic classrooms of src/attendance/bench/classrooms.py: 4000x3000 JPEGs
of 30-35 real faces of 40-150 px with exact ground truth. Whole path as in figures 2 and 3:
the HTTP upload to the job's result stored. Baseline: `DeepFace.represent` (Facenet, opencv) on
the same photo, decoded, in the same process; the two alternate, median of the repeats. Faces
found are counted beside each time: a detection is a face found when it overlaps a truth face
(IoU >= 0.3, each truth face at most once).
"""

from __future__ import annotations

from typing import Any

from attendance.bench.common import Context, Result, interleave, median, say

NAME = "classroom_photo"
TITLE = "12 MP classroom photo, one job"
GOAL = ">= 10x faster than one DeepFace.represent, >= 97% of the faces of 40 px and up found"
MIN_FACE_PX = 40


def _found(boxes: list, room: Any) -> int:
    from attendance.bench.classrooms import match

    pairs, _, _ = match(boxes, room)
    return sum(1 for _, t, _ in pairs if room.faces[t].width_px >= MIN_FACE_PX)


def _strangers_accepted(faces: list[dict], room: Any) -> int:
    """Faces of people nobody enrolled that the job gave to a student."""
    from attendance.bench.classrooms import match

    pairs, _, _ = match([f["box"] for f in faces], room)
    return sum(1 for d, t, _ in pairs if not room.faces[t].enrolled and faces[d].get("student_id"))


def run(ctx: Context) -> Result:
    from attendance.bench.classrooms import scenes
    from attendance.bench.data import decode

    result = Result(NAME, TITLE, GOAL)
    rooms = scenes(1, 0, size=(2000, 1500)) if ctx.quick else scenes(1, 1)
    stack = ctx.stack()
    deepface = ctx.models.deepface
    rows: list[dict[str, Any]] = []
    for index, room in enumerate(rooms):
        image = decode(room.jpeg)
        upload = [(f"classroom-{index}.jpg", room.jpeg)]
        jobs: list[dict] = []
        found_by_deepface: list[int] = []

        def ours(upload=upload, jobs=jobs):
            jobs.append(stack.recognise("celebs", upload))

        def baseline(image=image, room=room, found=found_by_deepface):
            faces = deepface.represent(
                img_path=image,
                model_name="Facenet",
                detector_backend="opencv",
                enforce_detection=False,
            )
            boxes = [
                [f["facial_area"][k] for k in "xywh"]
                for f in faces
                if f.get("face_confidence", 1) > 0
            ]
            found.append(_found(boxes, room))

        stack.recognise("celebs", upload)  # the first photo of a new size compiles its shapes
        times = interleave({"deepface": baseline, "pipeline": ours}, ctx.path_repeats)
        faces = jobs[-1]["result"]["photos"][0]["faces"]
        timings = [j["result"]["timings"] for j in jobs]
        row: dict[str, Any] = {
            "size": f"{room.width}x{room.height}",
            "faces": sum(1 for f in room.faces if f.width_px >= MIN_FACE_PX),
            "pipeline_s": median(j["_client"]["latency"] for j in jobs),
            "deepface_s": median(times["deepface"]),
            "found_pipeline": _found([f["box"] for f in faces], room),
            "found_deepface": min(found_by_deepface),
            "strangers_accepted": _strangers_accepted(faces, room),
            "strangers": sum(1 for f in room.faces if not f.enrolled),
            "upload_ms": median(j["_client"]["upload"] * 1000 for j in jobs),
            "worker_timings_ms": {k: round(median(t[k] for t in timings), 1) for k in timings[-1]},
            "pipeline_runs_s": [round(j["_client"]["latency"], 3) for j in jobs],
            "deepface_runs_s": [round(t, 3) for t in times["deepface"]],
        }
        rows.append(row)
        say(
            f"  {NAME}: classroom {index} ({row['size']}): {row['pipeline_s']:.3f} s, "
            f"{row['found_pipeline']}/{row['faces']} faces found; DeepFace.represent "
            f"{row['deepface_s']:.3f} s, {row['found_deepface']}/{row['faces']}; "
            f"{row['deepface_s'] / row['pipeline_s']:.2f}x; worker stages (ms) "
            f"{row['worker_timings_ms']}"
        )
    faces = sum(r["faces"] for r in rows)
    found = sum(r["found_pipeline"] for r in rows)
    speedup = median(r["deepface_s"] / r["pipeline_s"] for r in rows)
    result.details["classrooms"] = rows
    result.show("pipeline_s", round(median(r["pipeline_s"] for r in rows), 3), "s per photo")
    result.show("deepface_s", round(median(r["deepface_s"] for r in rows), 3), "s per photo")
    result.show("speedup", round(speedup, 2), "x (median over the photos)")
    result.show("faces", faces, f"of {MIN_FACE_PX} px and up")
    result.show("faces_found_pipeline", found, f"of {faces}")
    result.show("faces_found_deepface", sum(r["found_deepface"] for r in rows), f"of {faces}")
    result.show(
        "strangers_accepted",
        sum(r["strangers_accepted"] for r in rows),
        f"of {sum(r['strangers'] for r in rows)}",
    )
    result.show("upload_ms", round(median(r["upload_ms"] for r in rows), 1), "ms (HTTP POST)")
    result.met = speedup >= 10.0 and found >= 0.97 * faces
    return result
