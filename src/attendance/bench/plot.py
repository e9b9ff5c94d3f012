"""bench/results.png: one panel per figure, from the results dictionary src/attendance/bench/run.py writes."""

from __future__ import annotations

from pathlib import Path


def plot_results(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = report["results"]
    fig, axes = plt.subplots(3, 4, figsize=(20, 13.5))
    axes = axes.ravel()
    for ax in axes:
        ax.set_visible(False)

    def panel(i, title):
        ax = axes[i]
        ax.set_visible(True)
        ax.set_title(title, fontsize=10)
        return ax

    def bars(ax, labels, values, unit, colors=None):
        ax.bar(labels, values, color=colors or "#4C72B0")
        ax.set_ylabel(unit)
        for x, v in enumerate(values):
            ax.annotate(f"{v:.4g}", (x, v), ha="center", va="bottom", fontsize=8)
        ax.tick_params(axis="x", labelsize=8, rotation=15)

    if "embedding" in res:
        f = res["embedding"]["figures"]
        engine = res["embedding"]["details"].get("engine", "tensorflow")
        ax = panel(0, f"1. Embedding stage (faces/s): {f['pipeline_vs_ceiling']:.0%} of ceiling")
        labels = ["DeepFace per face", f"pipeline ({engine})"]
        values = [f["deepface_represent_faces_per_s"], f["pipeline_faces_per_s"]]
        if "pipeline_tensorflow_faces_per_s" in f:
            labels.append("pipeline (tensorflow)")
            values.append(f["pipeline_tensorflow_faces_per_s"])
        bars(
            ax,
            labels + ["TF ceiling"],
            values + [f["ceiling_faces_per_s"]],
            "faces/s",
            ["#C44E52", "#4C72B0", "#55A868", "#8C8C8C"][: len(values)] + ["#8C8C8C"],
        )
    if "bulk_upload" in res:
        f = res["bulk_upload"]["figures"]
        ax = panel(1, f"2. {f['photos']} single-face photos, one job (s): {f['speedup']:.3g}x")
        bars(
            ax,
            ["DeepFace.represent x N", "whole path"],
            [f["deepface_s"], f["pipeline_s"]],
            "seconds",
            ["#C44E52", "#4C72B0"],
        )
    if "class_photo" in res:
        f = res["class_photo"]["figures"]
        ax = panel(
            2,
            f"3. 30-face class photo (s): {f['speedup']:.3g}x, "
            f"{f['real_faces_pipeline']} vs {f['real_faces_deepface']} faces",
        )
        bars(
            ax,
            ["DeepFace.represent", "whole path"],
            [f["deepface_s"], f["pipeline_s"]],
            "seconds",
            ["#C44E52", "#4C72B0"],
        )
    if "gallery_search" in res:
        rows = res["gallery_search"]["details"]["by_size"]
        ax = panel(3, "4. Match 30 faces vs gallery size")
        sizes = [int(k) for k in rows]
        ax.loglog(sizes, [rows[str(s)]["match_ms"] for s in sizes], "o-")
        ax.axhline(20, color="#C44E52", ls="--", lw=1, label="goal at 100k: 20 ms")
        ax.set_xlabel("embeddings")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    if "enrollment_commit" in res:
        rows = res["enrollment_commit"]["details"]["by_size"]
        ax = panel(4, "5. Enroll one student vs gallery size")
        sizes = [int(k) for k in rows]
        ax.semilogx(sizes, [rows[str(s)]["median_ms"] for s in sizes], "o-", label="median")
        ax.semilogx(sizes, [rows[str(s)]["max_ms"] for s in sizes], "x:", label="max")
        ax.set_xlabel("students in the gallery")
        ax.set_ylabel("commit + refresh, ms")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    if "detectors" in res:
        rows = res["detectors"]["details"]["offline"]
        ax = panel(5, "6. Detectors: ms per photo (faces found)")
        labels = [
            lab
            for lab in ["selfie-many-people.jpg", "couple.jpg", "class photo"]
            if lab in next(iter(rows.values()))
        ]
        width = 0.8 / max(1, len(rows))
        for k, (name, row) in enumerate(rows.items()):
            xs = [i + k * width for i in range(len(labels))]
            vals = [row[lab]["ms"] for lab in labels]
            ax.bar(xs, vals, width, label=name)
            for x, lab, v in zip(xs, labels, vals):
                ax.annotate(str(row[lab]["faces"]), (x, v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(labels))])
        short = {
            "selfie-many-people.jpg": "selfie (7)",
            "couple.jpg": "couple (2)",
            "class photo": "class (30)",
        }
        ax.set_xticklabels([short[lab] for lab in labels], fontsize=8)
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    if "load" in res:
        d = res["load"]["details"]
        ax = panel(6, "7. Load test: jobs/s and latency")
        labels = ["1 worker", "2 workers"]
        ax.bar(
            labels, [d["one_worker"]["jobs_per_s"], d["two_workers"]["jobs_per_s"]], color="#4C72B0"
        )
        ax.set_ylabel("jobs/s")
        ax2 = ax.twinx()
        ax2.plot(
            labels,
            [d["one_worker"]["p50_ms"], d["two_workers"]["p50_ms"]],
            "o-",
            color="#55A868",
            label="p50 ms",
        )
        ax2.plot(
            labels,
            [d["one_worker"]["p95_ms"], d["two_workers"]["p95_ms"]],
            "s--",
            color="#C44E52",
            label="p95 ms",
        )
        ax2.set_ylabel("latency, ms")
        ax2.set_ylim(bottom=0)
        ax2.legend(fontsize=8)
        f = res["load"]["figures"]
        rss = [(k, v) for k, v in f.items() if k.startswith("worker_rss_mb_after")]
        if rss:
            ax = panel(7, "Worker RSS (MB)")
            bars(
                ax,
                [k.replace("worker_rss_mb_", "").replace("_", " ") for k, _ in rss] + ["peak"],
                [v for _, v in rss] + [f["worker_peak_rss_mb"]],
                "MB",
            )
    if "cold_start" in res:
        f = res["cold_start"]["figures"]
        ax = panel(8, "9. Worker cold start (s, from process start)")
        bars(
            ax,
            ["ping", "pipeline ready", "first result"],
            [
                f["worker_start_to_ping_s"],
                f["worker_start_to_ready_s"],
                f["worker_start_to_first_result_s"],
            ],
            "seconds",
            ["#8C8C8C", "#4C72B0", "#55A868"],
        )
        steps = res["cold_start"]["details"]["cold_start"]["load_steps_s"]
        ax = panel(9, "9. FaceNet pipeline load, by step (s, fresh process)")
        bars(ax, [k.replace("_", " ") for k in steps], list(steps.values()), "seconds")
        gallery = res["cold_start"]["details"]["gallery"]
        ax = panel(10, "9. Cold gallery load vs embeddings")
        for layout, rows in gallery.items():
            sizes = [int(k) for k in rows]
            ax.loglog(
                sizes,
                [rows[str(s)]["cold_load_ms"] for s in sizes],
                "o-",
                label=layout.replace("_", " "),
            )
        ax.axhline(1000, color="#C44E52", ls="--", lw=1, label="goal at 100k: 1 s")
        ax.set_xlabel("embeddings")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    m = report["machine"]
    fig.suptitle(
        f"attendance benchmarks - {m['cpu_model']} ({' '.join(m.get('cpu_isa', [])) or '?'}), "
        f"{m['cores']} cores, "
        f"{m['ram_gib']} GiB, TF {m['versions'].get('tensorflow')}, "
        f"DeepFace {m['versions'].get('deepface')}; shared machine, load average "
        f"{m['load_average_at_start'][0]:.1f} at start, "
        f"{m.get('load_average_at_end', [float('nan')])[0]:.1f} at end"
        + (" (quick smoke run)" if report.get("quick") else ""),
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
