"""The kernel library: DSL sources shipped with kgen (``kernels/*.kg``) plus user files."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .emit import KernelSource
from .errors import KgenError
from .parser import parse_kernels


def _load_text(text: str, name: str) -> list[KernelSource]:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return [KernelSource(k, name, digest) for k in parse_kernels(text, name)]


def builtin_sources() -> dict[str, KernelSource]:
    """Every kernel of the shipped library, by kernel name (sorted, deterministic; a fresh dict
    per call, the files are parsed and checked once per process)."""
    return dict(_builtin_sources())


@lru_cache(maxsize=1)
def _builtin_sources() -> dict[str, KernelSource]:
    out: dict[str, KernelSource] = {}
    root = resources.files("kgen.kernels")
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".kg"):
            for src in _load_text(entry.read_text(), f"kernels/{entry.name}"):
                out[src.kernel.name] = src
    return out


def load_sources(paths: list[str] | None = None) -> dict[str, KernelSource]:
    """Library kernels plus kernels from user DSL files (which may shadow library names)."""
    out = builtin_sources()
    for p in paths or []:
        path = Path(p)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise KgenError(f"cannot read {path}: {exc}") from None
        for src in _load_text(text, str(path)):
            out[src.kernel.name] = src
    return out


def resolve(names: list[str], sources: dict[str, KernelSource]) -> list[KernelSource]:
    if not names:
        return list(sources.values())
    out = []
    for n in names:
        if n in sources:
            out.append(sources[n])
        elif n.endswith(".kg") and Path(n).exists():
            out.extend(s for s in load_sources([n]).values() if s.source_name == str(Path(n)))
        else:
            raise KgenError(f"unknown kernel '{n}'; available: {', '.join(sorted(sources))}")
    return out
