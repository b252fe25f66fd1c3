#!/usr/bin/env python3
"""Regenerate the benchmark report: `python3 bench/report.py` (a few minutes on 2 cores).

Runs `kgen bench` for Cortex-M4 and Cortex-M7 (gcc and clang, -O3) and for XpulpV2 on 1 and 8
cores, writes bench/results/*.json, bench/README.md with the CMSIS-NN / PULP-NN baseline figures
(../shared/baselines/, when present) side by side, and the PNG plots of bench/plots/ (with the
optional `plots` extra: `pip install -e '.[plots]'`; without matplotlib the report says so).
Every figure is an exact dynamic instruction count of the kernel call alone from a bit-exact run;
cycles are model estimates (Cortex-M4 TRM table at P = 2; CV32E40P table, branch form of loops).
Stack bytes are the kernel function's frame (`-fstack-usage` of the measured build), scratch bytes
its `get_buffer_size()`.

    python3 bench/report.py                 # run every benchmark (progress on stderr), then render
    python3 bench/report.py --render-only   # Markdown + plots from the stored JSON, no simulators
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kgen.bench import run_bench, write_json  # noqa: E402
from kgen.library import builtin_sources  # noqa: E402
from kgen.verify import Target  # noqa: E402

BASELINES = HERE.parent.parent / "shared" / "baselines"
RUN_NAMES = ("armv7em-m4", "armv7em-m7", "xpulpv2-1core", "xpulpv2-8cores")


def progress(text: str) -> None:
    print(f"bench/report.py: {text}", file=sys.stderr, flush=True)


BASELINE_COPY = HERE / "baselines.json"


#: CMSIS-NN measurements (gcc -O3, Cortex-M4) that kgen records are compared with, by key.
NAMED_BASELINES = {"softmax": "softmax_s8_64x64", "head": "attn_head_total_public_api",
                   "add": "elementwise_add_s8_4096"}


def _extract_baselines() -> tuple[dict, dict]:
    """The baseline figures the report compares with, from ../shared/baselines/ (empty if absent)."""
    cmsis, pulp = {}, {}
    try:
        for m in json.loads((BASELINES / "cmsis-nn-cortex-m4.json").read_text())["measurements"]:
            if "cortex-m4" not in m.get("cflags", "") or "soft" not in m.get("cflags", ""):
                continue
            if m.get("variant") != "gcc-O3":
                continue
            if m["name"].startswith("mm_") and m["function"] == "arm_nn_mat_mult_nt_t_s8":
                cmsis[tuple(m["shape"].values())] = m["instructions"]
            for key, name in NAMED_BASELINES.items():
                if m["name"] == name:
                    cmsis[key] = m["instructions"]
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


def _save_baselines(cmsis: dict, pulp: dict) -> None:
    """Keep a copy of the figures in bench/ so --render-only works where ../shared is absent."""
    data = {"source": "../shared/baselines/ (cmsis-nn-cortex-m4.json gcc-O3 soft-float; pulp-nn-xpulpv2.json clang-O3)",
            "cmsis": sorted([[k if isinstance(k, str) else list(k), v] for k, v in cmsis.items()], key=str),
            "pulp": sorted([[list(k[0]), k[1], v] for k, v in pulp.items()], key=str)}
    BASELINE_COPY.write_text(json.dumps(data, indent=1) + "\n")


def _baselines() -> tuple[dict, dict]:
    """The committed copy (bench/baselines.json), written by a full run from ../shared/baselines/."""
    try:
        data = json.loads(BASELINE_COPY.read_text())
    except (OSError, ValueError):
        return _extract_baselines()
    cmsis = {(k if isinstance(k, str) else tuple(k)): v for k, v in data["cmsis"]}
    pulp = {(tuple(shape), cores): v for shape, cores, v in data["pulp"]}
    return cmsis, pulp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render-only", action="store_true", help="render from bench/results/*.json only")
    ap.add_argument("--no-plots", action="store_true", help="do not (re)generate bench/plots/*.png")
    ap.add_argument("--results", type=Path, default=HERE / "results", help="JSON records (default bench/results)")
    ap.add_argument("--out", type=Path, default=HERE, help="where README.md and plots/ go (default bench/)")
    args = ap.parse_args(argv)
    if args.render_only:
        records = {n: json.loads((args.results / f"{n}.json").read_text()) for n in RUN_NAMES}
    else:
        if BASELINES.is_dir():
            _save_baselines(*_extract_baselines())
        records = run_all(args.results)
    plots = None if args.no_plots else write_plots(records, args.out / "plots")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "README.md").write_text(render(records, plots))
    progress(f"wrote {args.out / 'README.md'}")
    return 0


def run_all(out: Path) -> dict:
    sources = builtin_sources()
    runs = {
        "armv7em-m4": ("armv7em", [Target("qemu", c, "cortex-m4", "-O3") for c in ("gcc", "clang")]),
        "armv7em-m7": ("armv7em", [Target("qemu", c, "cortex-m7", "-O3") for c in ("gcc", "clang")]),
        "xpulpv2-1core": ("xpulpv2", [Target("spike", "clang", "rv32", "-O3", cores=1)]),
        "xpulpv2-8cores": ("xpulpv2", [Target("spike", "clang", "rv32", "-O3", cores=8)]),
    }
    all_records = {}
    t0 = time.perf_counter()
    for i, (name, (isa, targets)) in enumerate(runs.items(), 1):
        progress(f"run {i}/{len(runs)}: {name} ({time.perf_counter() - t0:.0f} s so far)")
        records = run_bench(sources, isa, targets)
        write_json(records, out / f"{name}.json")
        all_records[name] = records
    progress(f"all runs done in {time.perf_counter() - t0:.0f} s")
    return all_records


def write_plots(records: dict, out: Path) -> list[tuple[str, str]] | str:
    """PNG plots in ``out`` ((file, caption) pairs), or the reason why there are none."""
    sys.path.insert(0, str(HERE))
    try:
        from plotting import write_all  # bench/plotting.py (needs matplotlib)
    except ImportError:
        reason = "matplotlib is not installed (`pip install -e '.[plots]'` adds it)"
        progress(f"plots skipped: {reason}")
        return reason
    finally:
        sys.path.remove(str(HERE))
    cmsis, pulp = _baselines()
    made = write_all(records, cmsis, pulp, out, SIZE_ORDER)
    for name, _ in made:
        progress(f"wrote {out / name}")
    return made


SIZE_ORDER = {name: src.kernel.sizes for name, src in builtin_sources().items()}


def render(all_records: dict, plots: list[tuple[str, str]] | str | None = None) -> str:
    cmsis, pulp = _baselines()
    lines = ["# kgen benchmarks", "",
             "Regenerate with `python3 bench/report.py`; raw records in `bench/results/`. Instructions are exact",
             "dynamic counts of one kernel call (QEMU TCG plugin on Cortex-M, Spike `minstret` on XpulpV2), each",
             "from a run whose outputs were bit-exact against the reference. Cycles are model estimates",
             "(Cortex-M4 TRM table at P = 2, zero wait states; CV32E40P table with branch-form loops). Baselines:",
             "`../shared/baselines/` (CMSIS-NN `arm_nn_mat_mult_nt_t_s8`, `arm_softmax_s8`, `arm_elementwise_add_s8` and the attention head through its public API, gcc -O3, Cortex-M4;",
             "PULP-NN `pulp_nn_matmul_i8_i8_i8`, clang-19 -O3). Requantization contract: kgen uses the paper's",
             "`clip8((acc*mul) >> shift)`; CMSIS-NN does TFLite double rounding with zero points (more work per output).",
             "Stack bytes: the kernel function's frame as the compiler reports it (`-fstack-usage`, same flags);",
             "scratch bytes: the caller-provided buffer (`<kernel>_get_buffer_size()`, 0 when the kernel takes none).",
             ""]
    if isinstance(plots, list) and plots:
        lines += ["## Plots", ""]
        for name, caption in plots:
            lines += [f"![{caption}](plots/{name})", "", f"*{caption}*", ""]
    elif isinstance(plots, str):
        lines += ["## Plots", "", f"Not generated: {plots}.", ""]
    for name, records in all_records.items():
        lines += [f"## {name}", "", "| kernel | shape | compiler | instructions | per MAC / element | cycles (model) | "
                  "MAC / cycle | .text bytes | stack bytes | scratch bytes | baseline | ratio |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in records:
            order = SIZE_ORDER.get(r["kernel"], ())
            if set(order) != set(r["shape"]):  # not a library kernel, or a record of an older version of one
                order = tuple(sorted(r["shape"]))  # JSON keeps shapes sorted
            shape = " ".join(f"{k}={r['shape'][k]}" for k in order)
            per = r.get("instructions_per_mac") or r.get("instructions_per_element")
            base = None
            if name.startswith("armv7em-m4") and r["kernel"] == "matmul_nt_s8" and "gcc" in r["compiler"]:
                base = cmsis.get(tuple(r["shape"][k] for k in ("M", "K", "N")))
            if name.startswith("armv7em-m4") and "gcc" in r["compiler"]:
                key = {"softmax_s8_u8": "softmax", "mhsa_head_s8": "head", "mhsa_head_fwsa_s8": "head"}.get(r["kernel"])
                if r["kernel"] == "add_requant_s8" and r["shape"].get("S", 0) * r["shape"].get("E", 0) == 4096:
                    key = "add"
                base = cmsis.get(key) if key else base
            if name.startswith("xpulpv2") and r["kernel"] == "matmul_nt_s8":
                base = pulp.get((tuple(r["shape"][k] for k in ("M", "K", "N")), r["cores"]))
            ratio = f"{base / r['instructions']:.2f}×" if base and r["instructions"] else ""
            cycles = f"{r['cycles_est']:,}" if isinstance(r.get("cycles_est"), int) else ""
            stack = r.get("stack_bytes", "")
            if stack != "" and r.get("stack_kind", "static") != "static":
                stack = f"{stack} ({r['stack_kind']})"
            mpc = f"{r['macs'] / r['cycles_est']:.3f}" if r.get("macs") and isinstance(r.get("cycles_est"), int) else ""
            lines.append(f"| {r['kernel']} | {shape} | {r['compiler']} | {r['instructions']:,} | {per} | {cycles} | "
                         f"{mpc} | {r.get('text_bytes', '')} | {stack} | {r.get('scratch_bytes', '')} | {base or ''} | "
                         f"{ratio} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
