"""The variant matrix (``kernels/variants.toml``, plus user files given with ``--variants``): the
kernels and shapes of each ISA's release, and the benchmark shapes."""
from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Sequence

from .emit import KernelSource
from .errors import KgenError
from .release import VariantRequest


def _load_toml(text: str, name: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KgenError(f"{name}: {exc}") from None


def load_tables(table: str, extra: Sequence[str] = ()) -> list[dict]:
    """The ``[[table]]`` entries of ``kernels/variants.toml`` followed by those of the ``extra``
    matrix files (``--variants FILE``: a user's kernels, same format)."""
    text = resources.files("kgen.kernels").joinpath("variants.toml").read_text()
    entries = list(_load_toml(text, "kernels/variants.toml").get(table, []))
    for path in extra:
        try:
            user = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise KgenError(f"cannot read {path}: {exc}") from None
        entries.extend(_load_toml(user, str(path)).get(table, []))
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("kernel"), str):
            raise KgenError(f"variant matrix: every [[{table}]] needs kernel = \"name\" (got {e!r})")
    return entries


def load_matrix(extra: Sequence[str] = ()) -> list[dict]:
    return load_tables("variant", extra)


def release_requests(isa: str, selected: list[KernelSource], extra: Sequence[str] = ()) -> list[VariantRequest]:
    """Requests for ``isa``: generic takes every kernel with run-time sizes; others the matrix."""
    from .backends import get_backend

    backend = get_backend(isa)
    if not backend.specializes:
        return [VariantRequest(s, {}) for s in selected]
    by_name = {s.kernel.name: s for s in selected}
    out = []
    for entry in load_matrix(extra):
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
