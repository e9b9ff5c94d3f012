"""The benchmark suite on tiny inputs: every module runs and reports well-formed figures.

No timing is asserted (the machine is shared and noisy); `make bench` measures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.timeout(300),
]
BENCH_REDIS_DB = 13


def test_every_benchmark_runs_on_tiny_inputs(tmp_path, celeb_dir, faces_dir):
    from attendance.bench.common import MATRIX_ISA
    from attendance.bench.run import MODULES

    out, png = tmp_path / "results.json", tmp_path / "results.png"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "attendance.bench.run",
            "--quick",
            "--out",
            str(out),
            "--plot",
            str(png),
            "--redis-db",
            str(BENCH_REDIS_DB),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["errors"] == {}
    assert report["quick"] is True
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["ram_gib"] > 0 and machine["cpu_model"]
    # Which machine a figure came from: its CPU and the instruction sets its ratios depend on.
    assert machine["cpu_id"] and set(machine["cpu_isa"]) <= set(MATRIX_ISA)
    assert {"tensorflow", "deepface", "numpy"} <= set(machine["versions"])
    assert list(report["results"]) == MODULES
    for name, result in report["results"].items():
        assert result["name"] == name and result["title"] and result["goal"]
        assert result["met"] in (True, False, None)
        assert result["figures"], name
        for key, value in result["figures"].items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (name, key, value)
    figures = {n: r["figures"] for n, r in report["results"].items()}
    assert figures["embedding"]["ceiling_faces_per_s"] > 0
    assert figures["bulk_upload"]["recognised"] >= 1
    assert figures["class_photo"]["real_faces_pipeline"] >= 20
    assert "10000" in report["results"]["gallery_search"]["details"]["by_size"]
    assert figures["enrollment_commit"]["ratio_large_to_small"] > 0
    assert figures["detectors"]["opencv_class_photo_real_faces"] >= 20
    assert figures["load"]["jobs_per_s_2_workers"] > 0
    room = figures["classroom_photo"]
    assert room["pipeline_s"] > 0 and room["deepface_s"] > 0
    assert room["faces"] >= 5 and room["faces_found_pipeline"] >= 0.9 * room["faces"]
    assert figures["gpu_path"]["gpus"] >= 0
    cold, cold_details = figures["cold_start"], report["results"]["cold_start"]["details"]
    assert 0 < cold["worker_start_to_ping_s"] <= cold["worker_start_to_first_result_s"]
    assert 0 < cold["worker_start_to_ready_s"] < cold["worker_start_to_first_result_s"]
    assert cold["first_job_s"] > 0 and cold["warm_job_s"] > 0 and cold["worker_rss_mb"] > 0
    # The load test left both stack workers on the job queue: both were paused, then restored.
    assert cold_details["cold_start"]["consumers_paused"] == ["w1", "w2"]
    assert {"choose_engine", "facenet_load", "facenet_warm_up", "detector_load"} <= set(
        cold_details["cold_start"]["load_steps_s"]
    )
    gallery = cold_details["gallery"]
    assert set(gallery) == {"bulk", "per_enrollment"} and "10000" in gallery["bulk"]
    for rows in gallery.values():
        for size, row in rows.items():
            assert row["stored_bytes"] >= int(size) * 128 * 4, (size, row)
            assert row["array_mb"] >= int(size) * 128 * 4 / 2**20, (size, row)
            assert row["cold_load_ms"] > 0 and row["warm_refresh_ms"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
