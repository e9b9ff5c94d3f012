"""Print the figures of bench/results.json as a Markdown table: `python -m attendance.bench.report`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

VERDICT = {True: "met", False: "**not met**", None: "-"}


def _f(value, digits=3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(figure, measured, baseline / goal, verdict) per benchmark."""
    res = report["results"]
    out = []
    if "accuracy" in res:
        pipes = res["accuracy"]["details"]["pipelines"]
        parts = []
        for name, row in pipes.items():
            det, room, known = row["detection"], row["classrooms"], row["recognition"]
            parts.append(
                f"{name}: labelled photos {det['found']}/{det['faces']} found, "
                f"{det['false_detections']} false; classrooms {room['found']}/{room['faces']}, "
                f"{room['false_detections']} false; val {known['recognised']}/"
                f"{known['val_photos']}; classroom students {known['classroom_recognised']}/"
                f"{known['classroom_students']}; strangers accepted "
                f"{known['strangers_accepted']}/{known['strangers']} at "
                f"{_f(known['threshold'])}"
                + (
                    f"; {_f(row['classroom_seconds'])} s per 12 MP classroom"
                    if "classroom_seconds" in row
                    else ""
                )
            )
        out.append(
            (
                "8. Accuracy (faces found, students recognised, strangers accepted)",
                "; ".join(parts),
                res["accuracy"]["goal"],
                VERDICT[res["accuracy"]["met"]],
            )
        )
    if "embedding" in res:
        f = res["embedding"]["figures"]
        out.append(
            (
                f"1. Embedding stage (FaceNetEmbedder.embed, "
                f"{res['embedding']['details']['faces']} real faces)",
                f"{_f(f['pipeline_faces_per_s'])} faces/s on "
                f"{res['embedding']['details'].get('engine', 'tensorflow')} = "
                f"{f['pipeline_vs_ceiling']:.0%} of the ceiling; "
                + (
                    f"{_f(f['pipeline_tensorflow_faces_per_s'])} on TensorFlow; "
                    if "pipeline_tensorflow_faces_per_s" in f
                    else ""
                )
                + f"{_f(f['pipeline_vs_deepface'])}x DeepFace",
                f"ceiling (TensorFlow, compiled) {_f(f['ceiling_faces_per_s'])} faces/s; "
                "DeepFace.represent per face "
                f"{_f(f['deepface_represent_faces_per_s'])} faces/s; goal >= 85% of ceiling",
                VERDICT[res["embedding"]["met"]],
            )
        )
    if "bulk_upload" in res:
        f = res["bulk_upload"]["figures"]
        out.append(
            (
                f"2. Bulk upload, {f['photos']} single-face photos in one job (whole path)",
                f"{_f(f['pipeline_s'])} s = {_f(f['speedup'])}x faster; {f['recognised']}/"
                f"{f['photos']} recognised",
                f"DeepFace.represent per photo {_f(f['deepface_s'])} s; goal >= 15x",
                VERDICT[res["bulk_upload"]["met"]],
            )
        )
    if "class_photo" in res:
        f = res["class_photo"]["figures"]
        out.append(
            (
                "3. Class photo, 30 faces (whole path)",
                f"{_f(f['pipeline_s'])} s = {_f(f['speedup'])}x faster; {f['real_faces_pipeline']}"
                f"/30 real faces ({f['false_detections_pipeline']} false); overhead "
                f"{_f(f['overhead_ms'])} ms ({_f(f['upload_ms'])} upload + "
                f"{_f(f['overhead_after_upload_ms'])} queue)",
                f"one DeepFace.represent {_f(f['deepface_s'])} s, {f['real_faces_deepface']}/30 real "
                "faces; goal >= 5x, >= 97% of the faces, overhead < 50 ms",
                VERDICT[res["class_photo"]["met"]],
            )
        )
    if "gallery_search" in res:
        d = res["gallery_search"]["details"]
        by = d["by_size"]
        growth = ", ".join(f"{int(k):,}: {_f(v['match_ms'])} ms" for k, v in by.items())
        find = ""
        if "deepface_find_per_query_ms" in d:
            find = (
                f"; DeepFace.find ({d['deepface_find_gallery_photos']} real photos) "
                f"{_f(d['deepface_find_per_query_ms'])} ms/query vs project detect+embed+"
                f"match {_f(d['pipeline_detect_embed_match_per_query_ms'])} ms"
            )
        out.append(
            (
                "4. Gallery search, 30 faces",
                growth + find,
                "goal < 20 ms at 100k",
                VERDICT[res["gallery_search"]["met"]],
            )
        )
    if "enrollment_commit" in res:
        by = res["enrollment_commit"]["details"]["by_size"]
        f = res["enrollment_commit"]["figures"]
        out.append(
            (
                "5. Enroll one student (commit + refresh)",
                ", ".join(f"{int(k):,} students: {_f(v['median_ms'])} ms" for k, v in by.items())
                + f"; ratio {_f(f['ratio_large_to_small'])}x",
                "goal: largest within 2x of 100",
                VERDICT[res["enrollment_commit"]["met"]],
            )
        )
    if "detectors" in res:
        d = res["detectors"]["details"]
        parts = []
        for name, row in d["offline"].items():
            parts.append(
                f"{name}: "
                + ", ".join(
                    f"{lab.split('.')[0].split('-')[0]} {v['faces']} in {_f(v['ms'])} ms"
                    for lab, v in row.items()
                    if "faces" in v
                )
                + f", single-face photo {_f(row['single-face photos']['ms_per_photo'])} ms"
            )
        failing = [
            n for n, p in d.get("downloading_detectors", {}).items() if not p["works_offline"]
        ]
        out.append(
            (
                "6. Detectors (faces found, time per photo)",
                "; ".join(parts),
                ("fail offline: " + ", ".join(failing) + "; " if failing else "")
                + f"default: {d['default']}",
                VERDICT[res["detectors"]["met"]],
            )
        )
    if "load" in res:
        d, f = res["load"]["details"], res["load"]["figures"]
        rss = {k: v for k, v in f.items() if k.startswith("worker_rss_mb_after")}
        out.append(
            (
                f"7. Load test ({d['one_worker']['jobs']} jobs, {d['one_worker']['clients']} "
                "clients, loopback)",
                f"1 worker: {_f(d['one_worker']['jobs_per_s'])} jobs/s, p50 "
                f"{_f(d['one_worker']['p50_ms'])} ms, p95 {_f(d['one_worker']['p95_ms'])} ms; "
                f"2 workers: {_f(d['two_workers']['jobs_per_s'])} jobs/s, p50 "
                f"{_f(d['two_workers']['p50_ms'])} ms, p95 {_f(d['two_workers']['p95_ms'])} ms",
                "report",
                "-",
            )
        )
        out.append(
            (
                "Worker memory",
                ", ".join(
                    f"RSS {k.replace('worker_rss_mb_after_', 'after ').replace('_', ' ')} "
                    f"{_f(v, 4)} MB"
                    for k, v in rss.items()
                )
                + f", peak {_f(f['worker_peak_rss_mb'], 4)} MB",
                "goal: flat (< 5% growth)",
                VERDICT[res["load"]["met"]],
            )
        )
    if "cold_start" in res:
        d, f = res["cold_start"]["details"], res["cold_start"]["figures"]
        steps = ", ".join(
            f"{k.replace('_', ' ')} {_f(v)} s" for k, v in d["cold_start"]["load_steps_s"].items()
        )
        gallery = "; ".join(
            f"{layout.replace('_', ' ')}: "
            + ", ".join(f"{int(k):,}: {_f(v['cold_load_ms'])} ms" for k, v in rows.items())
            for layout, rows in d["gallery"].items()
        )
        largest = max(d["gallery"]["bulk"], key=int)
        big = d["gallery"]["bulk"][largest]
        out.append(
            (
                "9. Worker cold start; cold gallery load",
                f"ready {_f(f['worker_start_to_ready_s'])} s after start (ping "
                f"{_f(f['worker_start_to_ping_s'])} s), first result "
                f"{_f(f['worker_start_to_first_result_s'])} s; first job "
                f"{_f(f['first_job_s'])} s vs warm {_f(f['warm_job_s'])} s; FaceNet on "
                f"{d['cold_start']['engine']}: {steps}; gallery cold load ({gallery}); "
                f"{int(largest):,} embeddings: {_f(big['stored_bytes'] / 2**20)} MB stored, "
                f"{_f(big['array_mb'])} MB arrays (RSS +{_f(big['rss_delta_mb'])} MB), warm "
                f"refresh {_f(big['warm_refresh_ms'])} ms",
                res["cold_start"]["goal"],
                VERDICT[res["cold_start"]["met"]],
            )
        )
    if "classroom_photo" in res:
        f = res["classroom_photo"]["figures"]
        out.append(
            (
                "10. 12 MP classroom photo, one job (whole path)",
                f"{_f(f['pipeline_s'])} s = {_f(f['speedup'])}x faster; "
                f"{f['faces_found_pipeline']}/{f['faces']} faces of 40 px and up; strangers "
                f"accepted {f['strangers_accepted']}",
                f"one DeepFace.represent {_f(f['deepface_s'])} s, {f['faces_found_deepface']}/"
                f"{f['faces']} faces; goal >= 10x, >= 97% of the faces",
                VERDICT[res["classroom_photo"]["met"]],
            )
        )
    if "gpu_path" in res:
        r = res["gpu_path"]
        measured = ", ".join(f"{k} {_f(v)}" for k, v in r["figures"].items() if k != "gpus")
        out.append(
            (
                "11. Whole path with a GPU worker",
                measured or "; ".join(r["notes"]) or "no GPU",
                r["goal"],
                VERDICT[r["met"]],
            )
        )
    return out


def markdown(report: dict) -> str:
    lines = ["| figure | measured | baseline / goal | goal |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(report)]
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results.json")
    print(markdown(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
