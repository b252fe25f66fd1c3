"""The variant matrix (``kernels/variants.toml``): the kernels and shapes of each ISA's release."""
from __future__ import annotations

import tomllib
from importlib import resources

from .emit import KernelSource
from .errors import KgenError
from .release import VariantRequest


def load_matrix() -> list[dict]:
    text = resources.files("kgen.kernels").joinpath("variants.toml").read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KgenError(f"kernels/variants.toml: {exc}") from None
    return list(data.get("variant", []))


def release_requests(isa: str, selected: list[KernelSource]) -> list[VariantRequest]:
    """Requests for ``isa``: generic takes every kernel with run-time sizes; others the matrix."""
    from .backends import get_backend

    backend = get_backend(isa)
    if not backend.specializes:
        return [VariantRequest(s, {}) for s in selected]
    by_name = {s.kernel.name: s for s in selected}
    out = []
    for entry in load_matrix():
        if isa not in entry.get("isa", []) or entry["kernel"] not in by_name:
            continue
        src = by_name[entry["kernel"]]
        for shape in entry.get("shapes", []):
            missing = [s for s in src.kernel.sizes if s not in shape]
            if missing:
                raise KgenError(f"kernels/variants.toml: {entry['kernel']} shape {shape} lacks {missing}")
            for cores in entry.get("cores", [1]) if isa == "xpulpv2" else [1]:
                out.append(VariantRequest(src, {s: int(shape[s]) for s in src.kernel.sizes}, int(cores)))
    return out
