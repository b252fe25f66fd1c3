"""Pinned schedule choices: the chooser's decisions for the release variants, committed as data.

Choosing a schedule lowers every candidate tile (seconds per contraction), so a fresh clone
would rebuild slowly and a model change would silently move tiles in the release.  Instead the
decisions for ``kernels/variants.toml`` live in ``kernels/schedules.json`` (kernel, ISA and sizes →
tile, K-unroll), reviewed in git like the release itself.  :class:`kgen.model.auto.AutoBackend`
uses a pinned choice when one exists and runs the chooser otherwise.

``python3 -m kgen.model.pinned`` re-runs the chooser for every release variant and rewrites the
file (do this after changing a backend or the model, then rebuild the release).
"""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Mapping

FILE = "schedules.json"


def pin_key(kernel_name: str, isa: str, sizes: Mapping[str, int]) -> str:
    return f"{kernel_name}|{isa}|" + ",".join(f"{k}={int(v)}" for k, v in sorted(sizes.items()))


@lru_cache(maxsize=1)
def pinned() -> dict[str, dict]:
    try:
        text = resources.files("kgen.kernels").joinpath(FILE).read_text()
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)


def lookup(kernel_name: str, isa: str, sizes: Mapping[str, int]) -> dict | None:
    return pinned().get(pin_key(kernel_name, isa, sizes))


def repin() -> dict[str, dict]:
    """Choose afresh for every specialised release variant (single-core choice, as AutoBackend)."""
    from ..library import builtin_sources
    from ..variants import release_requests
    from .auto import FORCED
    from .chooser import choose_schedule

    out: dict[str, dict] = {}
    sources = list(builtin_sources().values())
    for isa in ("armv7em", "xpulpv2"):
        for req in release_requests(isa, sources):
            key = pin_key(req.source.kernel.name, isa, req.sizes)
            if key in out:
                continue
            sched = choose_schedule(req.source.kernel, req.sizes, isa, 1, tile=FORCED["tile"],
                                    k_unroll=FORCED["k_unroll"])
            out[key] = {"tile": list(sched.chosen.tile) if sched.chosen else None,
                        "k_unroll": sched.chosen.k_unroll if sched.chosen else None, "source": sched.source}
            print(f"{key}: {out.get(key)}", file=sys.stderr, flush=True)
    return out


def main() -> int:
    path = Path(str(resources.files("kgen.kernels").joinpath(FILE)))
    path.write_text(json.dumps(repin(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
