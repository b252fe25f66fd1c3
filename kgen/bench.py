"""``kgen bench``: exact instruction counts and modelled cycles of generated kernels.

Every record comes from a run whose outputs were checked bit-exactly in the same run (a count
from a mismatching run is reported with ``bit_exact: false``).  Counts cover the kernel call
alone (between two marker calls, the marker overhead subtracted).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

from .counts import macs, output_elements
from .emit import KernelSource
from .verify import Target, verify


def bench_entries() -> list[dict]:
    import tomllib
    from importlib import resources

    text = resources.files("kgen.kernels").joinpath("variants.toml").read_text()
    return list(tomllib.loads(text).get("bench", []))


def bench_record(src: KernelSource, isa: str, sizes: dict[str, int], target: Target) -> dict[str, Any]:
    result = verify(src, isa, sizes, target)
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
    for key in ("cycles_est", "cycles_est_p1", "cycles_est_p3", "text_bytes", "per_core_instructions",
                "total_instructions_all_cores"):
        if key in result.extra:
            rec[key] = result.extra[key]
    work = rec.get("macs") or rec.get("elements")
    if rec["instructions"] is not None and work:
        rec["instructions_per_" + ("mac" if "macs" in rec else "element")] = round(rec["instructions"] / work, 4)
    return rec


def run_bench(sources: dict[str, KernelSource], isa: str, targets: Iterable[Target], only: str | None = None,
              progress=sys.stderr) -> list[dict[str, Any]]:
    records = []
    jobs = [(e["kernel"], shape) for e in bench_entries() for shape in e.get("shapes", [])
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
    return records


def write_json(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
