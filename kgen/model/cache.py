"""A persistent memo of schedule choices (the chooser lowers every candidate tile: seconds per kernel).

The key hashes everything a choice depends on — the kernel (printed DSL), the sizes, the ISA,
platform, toolchain, budget and forced options, and the text of every generator, model, ISA and
platform file — so a hit returns exactly what a fresh choice would.  Entries live in
``$KGEN_CACHE_DIR`` (default ``~/.cache/kgen/schedules``); ``KGEN_CACHE_DIR=off`` disables the cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..ir import Kernel


def _directory() -> Path | None:
    env = os.environ.get("KGEN_CACHE_DIR")
    if env is not None and env.strip().lower() in ("", "off", "0", "none"):
        return None
    return Path(env) if env else Path.home() / ".cache" / "kgen" / "schedules"


@lru_cache(maxsize=1)
def _sources_digest() -> str:
    """Hash of the files that decide lowering and cost (generator, model, ISA and platform data)."""
    h = hashlib.sha256()
    roots = [(resources.files("kgen"), ("*.py", "backends/*.py", "schedule/*.py", "model/*.py")),
             (resources.files("kgen.isa"), ("*.toml", "platforms/*.toml", "platforms/toolchains/*.toml"))]
    for root, patterns in roots:
        base = Path(str(root))
        for pat in patterns:
            for p in sorted(base.glob(pat)):
                h.update(p.name.encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def key(kernel: Kernel, parts: tuple) -> str:
    from ..printer import print_kernel

    h = hashlib.sha256()
    h.update(print_kernel(kernel).encode())
    h.update(repr(parts).encode())
    h.update(_sources_digest().encode())
    return h.hexdigest()


def lookup(k: str) -> dict[str, Any] | None:
    d = _directory()
    if d is None:
        return None
    try:
        return json.loads((d / f"{k}.json").read_text())
    except (OSError, ValueError):
        return None


def store(k: str, value: dict[str, Any]) -> None:
    d = _directory()
    if d is None:
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
        os.replace(tmp, d / f"{k}.json")
    except OSError:
        pass  # a cache that cannot be written is only slower


__all__ = ["key", "lookup", "store"]
