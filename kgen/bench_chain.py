"""Benchmarks of kernel chains: an attention head as the sequence of generated kernels an
application calls (``[[bench_chain]]`` in ``kernels/variants.toml``).

Each step is measured like any ``kgen bench`` record (exact counts of one call, outputs checked
bit-exactly in the same run); the chain's figures are the sums over its steps.  Counts are
deterministic, so the sum equals what one program calling the steps in a row would count (the
CMSIS-NN head baseline in ``../shared/baselines/`` was checked the same way).
"""
from __future__ import annotations

import sys
from typing import Any, Iterable, Mapping

from .emit import KernelSource
from .verify import Target


def chain_entries() -> list[dict]:
    from .variants import load_tables

    return load_tables("bench_chain", ())


def step_sizes(kernel_sizes: tuple[str, ...], shape: Mapping[str, int]) -> dict[str, int]:
    """Sizes of one step from the chain's shape: S, E, P, H, F as given, softmax rows R = C = S,
    depth-first blocks NB = S / BLK."""
    known = dict(shape)
    if "S" in shape:
        known.setdefault("R", shape["S"])
        known.setdefault("C", shape["S"])
        if "BLK" in shape:
            known.setdefault("NB", shape["S"] // shape["BLK"])
    missing = [s for s in kernel_sizes if s not in known]
    if missing:
        raise KeyError(f"chain shape {dict(shape)} does not define {missing}")
    return {s: int(known[s]) for s in kernel_sizes}


def chain_record(entry: dict, sources: Mapping[str, KernelSource], isa: str, target: Target,
                 measured: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    """One record for the chain ``entry``; ``measured`` caches step records across chains."""
    from .bench import bench_record

    shape = {k: int(v) for k, v in entry["shape"].items()}
    steps = []
    for step in entry["steps"]:
        src = sources[step["kernel"]]
        sizes = step_sizes(src.kernel.sizes, shape)
        key = (step["kernel"], tuple(sorted(sizes.items())), str(target))
        if key not in measured:
            measured[key] = bench_record(src, isa, sizes, target)
        rec = measured[key]
        steps.append({"label": step.get("label", step["kernel"]), "kernel": step["kernel"], "shape": sizes,
                      **{k: rec.get(k) for k in ("instructions", "cycles_est", "macs", "elements", "bit_exact")}})
    first = measured[next(iter(k for k in measured if k[2] == str(target)))]
    out: dict[str, Any] = {
        "kernel": entry["kernel"], "isa": isa, "shape": {k: v for k, v in shape.items() if k in ("S", "E", "P", "H")},
        "chain": steps, "description": entry.get("description", ""),
        "bit_exact": all(s["bit_exact"] for s in steps),
        "compiler": first["compiler"], "flags": first["flags"], "cpu": first["cpu"], "cores": first.get("cores", 1),
    }
    for key in ("instructions", "cycles_est", "macs"):
        values = [s.get(key) for s in steps]
        if all(v is not None for v in values):
            out[key] = sum(values)  # type: ignore[arg-type]
    if "instructions" in out and out.get("macs"):
        out["instructions_per_mac"] = round(out["instructions"] / out["macs"], 4)
    return out


def run_chains(sources: Mapping[str, KernelSource], isa: str, targets: Iterable[Target], only: str | None = None,
               progress=sys.stderr) -> list[dict[str, Any]]:
    entries = [e for e in chain_entries() if only is None or only in e["kernel"]]
    entries = [e for e in entries if all(s["kernel"] in sources for s in e["steps"])]
    measured: dict[tuple, dict[str, Any]] = {}
    out = []
    for t in targets:
        for i, e in enumerate(entries, 1):
            print(f"[chain {i}/{len(entries)}] {e['kernel']} on {t}", file=progress, flush=True)
            out.append(chain_record(e, sources, isa, t, measured))
    return out
