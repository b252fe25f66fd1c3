"""``kgen bench``: exact instruction counts and modelled cycles of generated kernels.

Every record comes from a run whose outputs were checked bit-exactly in the same run (a count
from a mismatching run is reported with ``bit_exact: false``).  Counts cover the kernel call
alone (between two marker calls, the marker overhead subtracted).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from .counts import macs, output_elements
from .emit import KernelSource
from .verify import Target, verify


def bench_entries(extra: Sequence[str] = ()) -> list[dict]:
    from .variants import load_tables

    return load_tables("bench", extra)


def bench_record(src: KernelSource, isa: str, sizes: dict[str, int], target: Target) -> dict[str, Any]:
    import tempfile

    from .stackusage import stack_usage

    with tempfile.TemporaryDirectory(prefix="kgen-bench-") as tmp:
        wd = Path(tmp)
        result = verify(src, isa, sizes, target, workdir=wd)
        kernel_c = next(p for p in wd.glob("kgen_*.c"))
        stack = stack_usage(kernel_c, wd / "include", target)
    m = macs(src.kernel, sizes)
    rec: dict[str, Any] = {
        "kernel": src.kernel.name,
        "isa": isa,
        "shape": dict(sizes),
        "instructions": result.region_instructions[0] if result.region_instructions else None,
        "bit_exact": result.ok,
        "compiler": {"gcc": "arm-none-eabi-gcc 12", "clang": "clang-19"}[target.compiler],
        "flags": result.extra.get("cflags", target.opt),
        "cpu": target.cpu if target.kind == "qemu" else "cv32e40p (XpulpV2)",
        "cores": target.cores,
    }
    if m:
        rec["macs"] = m
    else:
        rec["elements"] = output_elements(src.kernel, sizes)
    if stack is not None:
        rec["stack_bytes"], rec["stack_kind"] = stack
    for key in ("cycles_est", "cycles_est_p1", "cycles_est_p3", "text_bytes", "per_core_instructions",
                "total_instructions_all_cores", "scratch_bytes", "per_core_cycles_est", "cycles_est_hwloop",
                "instructions_hwloop_est", "per_core_cycles_est_hwloop", "per_core_instructions_hwloop_est"):
        if key in result.extra:
            rec[key] = result.extra[key]
    from .model.predict import bench_prediction

    rec.update(bench_prediction(src.kernel, isa, sizes, target.compiler, target.cpu, target.cores))
    work = rec.get("macs") or rec.get("elements")
    if rec["instructions"] is not None and work:
        rec["instructions_per_" + ("mac" if "macs" in rec else "element")] = round(rec["instructions"] / work, 4)
    return rec


def run_bench(sources: dict[str, KernelSource], isa: str, targets: Iterable[Target], only: str | None = None,
              progress=sys.stderr, extra_matrix: Sequence[str] = ()) -> list[dict[str, Any]]:
    records = []
    jobs = [(e["kernel"], shape) for e in bench_entries(extra_matrix) for shape in e.get("shapes", [])
            if e["kernel"] in sources and (only is None or only in e["kernel"])]
    targets = list(targets)
    total = len(jobs) * len(targets)
    done = 0
    for name, shape in jobs:
        src = sources[name]
        sizes = {s: int(shape[s]) for s in src.kernel.sizes}
        for t in targets:
            done += 1
            print(f"[{done}/{total}] {name} {sizes} on {t}", file=progress, flush=True)
            records.append(bench_record(src, isa, sizes, t))
    from .bench_chain import run_chains

    records.extend(run_chains(sources, isa, targets, only, progress))
    return records


def write_json(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
