#!/usr/bin/env python3
"""Regenerate the benchmark report: `python3 bench/report.py` (about 2 minutes on 2 cores).

Runs `kgen bench` for Cortex-M4 and Cortex-M7 (gcc and clang, -O3) and for XpulpV2 on 1 and 8
cores, writes bench/results/*.json and bench/README.md with the CMSIS-NN / PULP-NN baseline figures
(../shared/baselines/, when present) side by side.  Every figure is an exact dynamic instruction
count of the kernel call alone from a bit-exact run; cycles are model estimates (Cortex-M4 TRM table
at P = 2; CV32E40P table, branch form of loops).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kgen.bench import run_bench, write_json  # noqa: E402
from kgen.library import builtin_sources  # noqa: E402
from kgen.verify import Target  # noqa: E402

BASELINES = HERE.parent.parent / "shared" / "baselines"


def _baselines() -> tuple[dict, dict]:
    cmsis, pulp = {}, {}
    try:
        for m in json.loads((BASELINES / "cmsis-nn-cortex-m4.json").read_text())["measurements"]:
            if "cortex-m4" not in m.get("cflags", "") or "soft" not in m.get("cflags", ""):
                continue
            if m.get("variant") == "gcc-O3" and m.get("macs") and "nt_t" in m["function"]:
                cmsis[tuple(m["shape"].values())] = m["instructions"]
            if m.get("variant") == "gcc-O3" and m["name"] == "softmax_s8_64x64":
                cmsis["softmax"] = m["instructions"]
        data = json.loads((BASELINES / "pulp-nn-xpulpv2.json").read_text())
        for m in data["measurements_single_core"]:
            if m["function"] == "pulp_nn_matmul_i8_i8_i8" and m.get("variant") == "clang-O3":
                pulp[(tuple(m["shape"].values()), 1)] = m["instructions"]
        for m in data["measurements_8_cores"]:
            if m["function"] == "pulp_nn_matmul_i8_i8_i8" and m.get("variant") == "clang-O3":
                pulp[(tuple(m["shape"].values()), 8)] = m["critical_path_instructions"]
    except (OSError, KeyError, ValueError):
        pass
    return cmsis, pulp


def main() -> int:
    out = HERE / "results"
    if "--render-only" in sys.argv:
        names = ("armv7em-m4", "armv7em-m7", "xpulpv2-1core", "xpulpv2-8cores")
        records = {n: json.loads((out / f"{n}.json").read_text()) for n in names}
        (HERE / "README.md").write_text(render(records))
        return 0
    sources = builtin_sources()
    runs = {
        "armv7em-m4": ("armv7em", [Target("qemu", c, "cortex-m4", "-O3") for c in ("gcc", "clang")]),
        "armv7em-m7": ("armv7em", [Target("qemu", c, "cortex-m7", "-O3") for c in ("gcc", "clang")]),
        "xpulpv2-1core": ("xpulpv2", [Target("spike", "clang", "rv32", "-O3", cores=1)]),
        "xpulpv2-8cores": ("xpulpv2", [Target("spike", "clang", "rv32", "-O3", cores=8)]),
    }
    all_records = {}
    for name, (isa, targets) in runs.items():
        records = run_bench(sources, isa, targets)
        write_json(records, out / f"{name}.json")
        all_records[name] = records
    (HERE / "README.md").write_text(render(all_records))
    return 0


SIZE_ORDER = {name: src.kernel.sizes for name, src in builtin_sources().items()}


def render(all_records: dict) -> str:
    cmsis, pulp = _baselines()
    lines = ["# kgen benchmarks", "",
             "Regenerate with `python3 bench/report.py`; raw records in `bench/results/`. Instructions are exact",
             "dynamic counts of one kernel call (QEMU TCG plugin on Cortex-M, Spike `minstret` on XpulpV2), each",
             "from a run whose outputs were bit-exact against the reference. Cycles are model estimates",
             "(Cortex-M4 TRM table at P = 2, zero wait states; CV32E40P table with branch-form loops). Baselines:",
             "`../shared/baselines/` (CMSIS-NN `arm_nn_mat_mult_nt_t_s8` and `arm_softmax_s8`, gcc -O3, Cortex-M4;",
             "PULP-NN `pulp_nn_matmul_i8_i8_i8`, clang-19 -O3). Requantization contract: kgen uses the paper's",
             "`clip8((acc*mul) >> shift)`; CMSIS-NN does TFLite double rounding with zero points (more work per output).",
             ""]
    for name, records in all_records.items():
        lines += [f"## {name}", "", "| kernel | shape | compiler | instructions | per MAC / element | cycles (model) | "
                  ".text bytes | baseline | ratio |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in records:
            order = SIZE_ORDER.get(r["kernel"], tuple(r["shape"]))
            shape = " ".join(f"{k}={r['shape'][k]}" for k in order)
            per = r.get("instructions_per_mac") or r.get("instructions_per_element")
            base = None
            if name.startswith("armv7em-m4") and r["kernel"] == "matmul_nt_s8" and "gcc" in r["compiler"]:
                base = cmsis.get(tuple(r["shape"][k] for k in ("M", "K", "N")))
            if name.startswith("armv7em-m4") and r["kernel"] == "softmax_s8_u8" and "gcc" in r["compiler"]:
                base = cmsis.get("softmax")
            if name.startswith("xpulpv2") and r["kernel"] == "matmul_nt_s8":
                base = pulp.get((tuple(r["shape"][k] for k in ("M", "K", "N")), r["cores"]))
            ratio = f"{base / r['instructions']:.2f}×" if base and r["instructions"] else ""
            lines.append(f"| {r['kernel']} | {shape} | {r['compiler']} | {r['instructions']:,} | {per} | "
                         f"{r.get('cycles_est', ''):,} | {r.get('text_bytes', '')} | {base or ''} | {ratio} |"
                         if isinstance(r.get('cycles_est'), int) else
                         f"| {r['kernel']} | {shape} | {r['compiler']} | {r['instructions']:,} | {per} | | "
                         f"{r.get('text_bytes', '')} | {base or ''} | {ratio} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
