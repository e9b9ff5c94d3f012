"""Figure 2: 25 single-face photos in one recognition job, through the whole path.

Whole path: HTTP upload to gunicorn on 127.0.0.1 -> Redis -> a Celery worker -> attendance
written -> result stored on the job (its updated_at; the client polls every 20 ms). Baseline: DeepFace.represent (Facenet, opencv) called on
each photo, one after the other, in one warm process. Interleaved, median of the repeats.
"""

from __future__ import annotations

from attendance.bench.common import Context, Result, interleave, median, say

NAME = "bulk_upload"
TITLE = "Bulk upload: 25 single-face photos, one job"
GOAL = ">= 15x faster than DeepFace.represent per photo"


def run(ctx: Context) -> Result:
    from attendance.bench.data import decode, val_photos

    result = Result(NAME, TITLE, GOAL)
    paths = val_photos()[: (3 if ctx.quick else 25)]
    uploads = [(p.name, p.read_bytes()) for p in paths]
    stack = ctx.stack()
    deepface = ctx.models.deepface
    jobs: list[dict] = []

    def ours():
        jobs.append(stack.recognise("celebs", uploads))

    def baseline():
        for path in paths:
            deepface.represent(
                img_path=decode(path),
                model_name="Facenet",
                detector_backend="opencv",
                enforce_detection=False,
            )

    times = interleave({"deepface": baseline, "pipeline": ours}, ctx.path_repeats)
    # Ours: from the upload's start until the result is stored (polling adds nothing).
    ours_s = median(j["_client"]["latency"] for j in jobs)
    base_s = median(times["deepface"])
    result.details["pipeline_runs_s"] = [round(j["_client"]["latency"], 3) for j in jobs]
    result.details["deepface_runs_s"] = [round(t, 3) for t in times["deepface"]]
    last = jobs[-1]["result"]
    correct = sum(
        bool(photo["faces"])
        and max(photo["faces"], key=lambda f: f["box"]["w"] * f["box"]["h"])["student_id"]
        == path.parent.name
        for path, photo in zip(paths, last["photos"])
    )
    result.show("photos", len(paths))
    result.show("pipeline_s", round(ours_s, 3), "s (upload to result stored)")
    result.show("deepface_s", round(base_s, 3), "s")
    result.show("speedup", round(base_s / ours_s, 2), "x")
    result.show("photos_per_s", round(len(paths) / ours_s, 1), "photos/s")
    result.show("recognised", correct, f"of {len(paths)}")
    result.met = base_s / ours_s >= 15.0
    timings = [j["result"]["timings"] for j in jobs]
    result.details["worker_timings_ms"] = {
        k: round(median(t[k] for t in timings), 1) for k in timings[-1]
    }
    result.details["upload_ms"] = round(median(j["_client"]["upload"] for j in jobs) * 1000, 1)
    result.details["overhead_ms"] = round(
        median(j["_client"]["latency"] * 1000 - j["result"]["timings"]["total"] for j in jobs), 1
    )
    say(f"  {NAME}: worker stages (ms) {result.details['worker_timings_ms']}")
    return result
