"""PNG plots of the benchmark report (needs matplotlib: `pip install -e '.[plots]'`).

Deterministic: the Agg backend, fixed sizes, fonts and styles, and no `Software` / date metadata,
so re-rendering the same JSON gives byte-identical files (tests/test_bench_report.py checks it).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"font.family": "DejaVu Sans", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
         "axes.axisbelow": True, "svg.hashsalt": "kgen", "figure.dpi": 100}
COLORS = ["#1f77b4", "#6baed6", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]
SHAPES = [(16, 64, 64), (64, 64, 64), (81, 64, 64), (128, 128, 128)]


def _mnk(r: dict) -> tuple[int, int, int]:
    return (r["shape"]["M"], r["shape"]["K"], r["shape"]["N"])


def _per(r: dict) -> float | None:
    return r.get("instructions_per_mac") or r.get("instructions_per_element")


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None}, dpi=100)
    plt.close(fig)


def _bars(ax, groups: list[str], series: list[tuple[str, list[float | None]]], fmt: str = "{:.2f}") -> None:
    width = 0.8 / max(len(series), 1)
    for s, (label, values) in enumerate(series):
        xs = [g + (s - (len(series) - 1) / 2) * width for g in range(len(groups))]
        pts = [(x, v) for x, v in zip(xs, values) if v is not None]
        if not pts:
            continue
        bars = ax.bar([p[0] for p in pts], [p[1] for p in pts], width, label=label, color=COLORS[s % len(COLORS)])
        ax.bar_label(bars, labels=[fmt.format(p[1]) for p in pts], fontsize=6, padding=1)
    ax.set_xticks(range(len(groups)), groups)


def matmul_plot(records: dict, cmsis: dict, pulp: dict, path: Path) -> str:
    def find(run: str, shape, compiler: str = "") -> float | None:
        for r in records.get(run, []):
            if r["kernel"] == "matmul_nt_s8" and _mnk(r) == shape and compiler in r["compiler"] and r["bit_exact"]:
                return r.get("instructions_per_mac")
        return None

    shapes = [s for s in SHAPES if any(find(run, s) for run in records)]
    macs = {s: s[0] * s[1] * s[2] for s in shapes}
    series = [
        ("kgen, Cortex-M4, gcc -O3", [find("armv7em-m4", s, "gcc") for s in shapes]),
        ("kgen, Cortex-M4, clang -O3", [find("armv7em-m4", s, "clang") for s in shapes]),
        ("CMSIS-NN arm_nn_mat_mult_nt_t_s8, Cortex-M4, gcc -O3",
         [cmsis[s] / macs[s] if s in cmsis else None for s in shapes]),
        ("kgen, XpulpV2, 1 core", [find("xpulpv2-1core", s) for s in shapes]),
        ("PULP-NN 4x2, XpulpV2, 1 core", [pulp[(s, 1)] / macs[s] if (s, 1) in pulp else None for s in shapes]),
    ]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8, 4))
        _bars(ax, ["×".join(map(str, s)) for s in shapes], series)
        ax.set_ylabel("instructions per MAC (exact counts; lower is better)")
        ax.set_xlabel("matmul_nt_s8 shape M×K×N")
        ax.set_title("int8 matmul: kgen vs CMSIS-NN and PULP-NN")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        _save(fig, path)
    return "matmul_nt_s8: instructions per MAC, kgen vs CMSIS-NN (Cortex-M4) and PULP-NN (XpulpV2, 1 core)"


def _shape_text(r: dict, order: dict) -> str:
    keys = order.get(r["kernel"])
    if keys is None or set(keys) != set(r["shape"]):  # not a library kernel, or an older version of one
        keys = sorted(r["shape"])
    return " ".join(f"{k}={r['shape'][k]}" for k in keys)


def targets_plot(records: dict, path: Path, order: dict) -> str:
    runs = [("armv7em-m4", "gcc", "Cortex-M4, gcc"), ("armv7em-m7", "gcc", "Cortex-M7, gcc"),
            ("xpulpv2-1core", "", "XpulpV2, 1 core"), ("xpulpv2-8cores", "", "XpulpV2, 8 cores (critical path)")]
    keys: list[tuple[str, str]] = []
    for run, _, _ in runs:
        for r in records.get(run, []):
            key = (r["kernel"], _shape_text(r, order))
            if key not in keys:
                keys.append(key)

    def find(run: str, compiler: str, key) -> float | None:
        for r in records.get(run, []):
            if (r["kernel"], _shape_text(r, order)) == key and \
                    compiler in r["compiler"] and r["bit_exact"]:
                return _per(r)
        return None

    series = [(label, [find(run, c, k) for k in keys]) for run, c, label in runs]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(10, 4.5))
        _bars(ax, [f"{k}\n{s}" for k, s in keys], series, "{:.3g}")
        ax.set_yscale("log")
        ax.set_ylabel("instructions per MAC or per output (log)")
        ax.set_title("Every benchmarked kernel on every target (exact counts of bit-exact runs)")
        ax.tick_params(axis="x", labelsize=6)
        ax.legend(fontsize=7)
        fig.tight_layout()
        _save(fig, path)
    return "Instructions per MAC / output of every benchmarked kernel on Cortex-M4, Cortex-M7 and XpulpV2 (1 and 8 cores)"


def speedup_plot(records: dict, path: Path, order: dict) -> str:
    one = {(r["kernel"], _shape_text(r, order)): r["instructions"] for r in records.get("xpulpv2-1core", [])
           if r["bit_exact"] and r["instructions"]}
    eight = {(r["kernel"], _shape_text(r, order)): r["instructions"] for r in records.get("xpulpv2-8cores", [])
             if r["bit_exact"] and r["instructions"]}
    keys = [k for k in one if k in eight]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8, 3.5))
        _bars(ax, [f"{k}\n{s}" for k, s in keys],
              [("1-core instructions / 8-core critical path", [one[k] / eight[k] for k in keys])], "{:.2f}×")
        ax.axhline(8, color="gray", linestyle="--", linewidth=1, label="ideal (8 cores)")
        ax.set_ylabel("speed-up (instruction count)")
        ax.set_title("XpulpV2: 8-core split, critical path vs 1 core")
        ax.tick_params(axis="x", labelsize=6)
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        _save(fig, path)
    return "XpulpV2 8-core speed-up of each kernel (critical-path instruction count vs 1 core)"


def write_all(records: dict, cmsis: dict, pulp: dict, out: Path, order: dict | None = None) -> list[tuple[str, str]]:
    """Write every plot into ``out``; returns (file name, caption) pairs.  ``order``: kernel ->
    its size symbols in declaration order (for shape labels)."""
    order = order or {}
    made = []
    for name, fn in (("matmul_instructions_per_mac.png", lambda p: matmul_plot(records, cmsis, pulp, p)),
                     ("kernels_by_target.png", lambda p: targets_plot(records, p, order)),
                     ("xpulpv2_8core_speedup.png", lambda p: speedup_plot(records, p, order))):
        made.append((name, fn(out / name)))
    return made
