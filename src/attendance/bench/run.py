"""Run the benchmark suite: `python -m attendance.bench.run [NAME ...] [--quick]` (`make bench` runs all).

Prints each figure as it is measured, then writes bench/results.json (figures, details and the
machine they came from) and bench/results.png. Names: accuracy, embedding, bulk_upload,
class_photo, classroom_photo, gallery_search, enrollment_commit, detectors, load, cold_start, gpu_path.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from attendance.bench.common import BENCH_REDIS_DB, Context, machine_info, say, setup_env

MODULES = [
    "accuracy",
    "embedding",
    "bulk_upload",
    "class_photo",
    "classroom_photo",
    "gallery_search",
    "enrollment_commit",
    "detectors",
    "load",
    "cold_start",
    "gpu_path",
]
# The figures live with the checkout, beside docs/performance.md that quotes them.
RESULTS_DIR = Path("bench")


def _clean(value):
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def run(names: list[str], quick: bool, out: Path, plot: Path | None, redis_db: int) -> dict:
    setup_env()
    from attendance.bench.data import check_data

    check_data()
    started = time.time()
    report: dict[str, Any] = {
        "suite": "attendance performance",
        "quick": quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine_info(),
        "results": {},
        "errors": {},
    }
    ctx = Context(quick=quick, redis_db=redis_db)
    try:
        for name in names:
            module = importlib.import_module(f"attendance.bench.{name}")
            say(f"== {name}: {module.TITLE} (goal: {module.GOAL})")
            t0 = time.perf_counter()
            try:
                result = module.run(ctx)
            except Exception as exc:
                traceback.print_exc()
                report["errors"][name] = f"{type(exc).__name__}: {exc}"[:2000]
                continue
            result.seconds = time.perf_counter() - t0
            # Others share this machine: how busy it was while this figure was measured.
            result.details["load_average_1min_after"] = round(os.getloadavg()[0], 2)
            verdict = {True: "MET", False: "NOT MET", None: "-"}[result.met]
            say(f"== {name}: {verdict} ({result.seconds:.0f} s)")
            report["results"][name] = result.to_dict()
    finally:
        ctx.close()
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["total_seconds"] = round(time.time() - started, 1)
    report = _clean(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    say(f"wrote {out}")
    if plot is not None:
        from attendance.bench.plot import plot_results

        plot_results(report, plot)
        say(f"wrote {plot}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="benchmarks to run (default: all): " + ", ".join(MODULES),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny inputs, one repeat: checks the suite works, not the speed",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "results.json")
    parser.add_argument("--plot", type=Path, default=RESULTS_DIR / "results.png")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--redis-db", type=int, default=BENCH_REDIS_DB)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark {unknown}; choose from {', '.join(MODULES)}")
    names = args.names or MODULES
    report = run(names, args.quick, args.out, None if args.no_plot else args.plot, args.redis_db)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
