"""The backend kgen uses by default: the ISA backend with a model-chosen schedule and overflow refusal.

:func:`kgen.backends.get_backend` wraps every ISA backend in :class:`AutoBackend`.  Its ``lower``

1. refuses accumulations that can overflow at the given sizes (:mod:`kgen.model.overflow`);
2. for specialising ISAs, lowers with the register tile and K-unroll of
   :func:`kgen.model.chooser.choose_schedule` (or those forced by the DSL / command line);
   multi-core variants use the single-core choice.

Everything else (``name``, ``specializes``, ``intrinsic``, ...) is the wrapped backend's.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import KgenError
from ..ir import Kernel
from . import cache, pinned
from .overflow import check_overflow

#: Schedule choices forced for the whole run (``--tile`` / ``--k-unroll`` of build and verify).
FORCED: dict[str, Any] = {"tile": None, "k_unroll": None}


@lru_cache(maxsize=64)
def source_text(file: str) -> str | None:
    """The text of a DSL file named in a location (library kernels or a user path)."""
    if file.startswith("kernels/"):
        try:
            return resources.files("kgen.kernels").joinpath(file.split("/", 1)[1]).read_text()
        except (FileNotFoundError, OSError):
            return None
    try:
        return Path(file).read_text()
    except OSError:
        return None


def refuse_overflow(kernel: Kernel, sizes: Mapping[str, int]) -> None:
    """:func:`check_overflow` with the offending source line in the error."""
    try:
        check_overflow(kernel, sizes)
    except KgenError as exc:
        if exc.loc is not None and exc.source is None:
            exc.source = source_text(exc.loc.file)
        raise


class AutoBackend:
    """An ISA backend whose schedule comes from the model unless one is forced."""

    def __init__(self, isa: str, cores: int, cls: Callable[..., Any], tile: tuple[int, int] | None = None,
                 k_unroll: int | None = None) -> None:
        self.isa = isa
        self.cores = cores
        self._cls = cls
        self.tile = tile
        self.k_unroll = k_unroll
        self._default = cls(cores=cores) if cores != 1 else cls()
        self.name = self._default.name
        self.specializes = self._default.specializes

    def __getattr__(self, item: str) -> Any:
        return getattr(self.__dict__["_default"], item)

    def make(self, cores: int | None = None) -> Callable[..., Any]:
        n = self.cores if cores is None else cores

        def build(**kw: Any) -> Any:
            return self._cls(cores=n, **kw) if n != 1 else self._cls(**kw)
        return build

    def lower(self, kernel: Kernel, sizes: Mapping[str, int]):
        from .chooser import choose_schedule

        known = {s: int(sizes[s]) for s in kernel.sizes if s in sizes}
        if len(known) == len(kernel.sizes):
            refuse_overflow(kernel, known)
        if not self.specializes:
            return self._default.lower(kernel, sizes)
        tile, k_unroll = self.tile or FORCED["tile"], self.k_unroll or FORCED["k_unroll"]
        hit = None if tile or k_unroll else pinned.lookup(kernel.name, self.isa, known)
        k = cache.key(kernel, ("schedule", tuple(sorted(known.items())), self.isa, tile, k_unroll))
        if hit is None:
            hit = cache.lookup(k)
        if hit is None:
            sched = choose_schedule(kernel, known, self.isa, 1, tile=tile, k_unroll=k_unroll)
            hit = {"tile": list(sched.chosen.tile) if sched.chosen else None,
                   "k_unroll": sched.chosen.k_unroll if sched.chosen else None, "source": sched.source}
            cache.store(k, hit)
            if self.cores == 1 and sched.lowered is not None:
                return _with_model(kernel, sched.lowered, self.isa, hit, self.cores)
        if hit["tile"] is None:
            low = self._default.lower(kernel, sizes)
        else:
            low = self.make()(tile=tuple(hit["tile"]), k_unroll=hit["k_unroll"]).lower(kernel, sizes)
        return _with_model(kernel, low, self.isa, hit, self.cores)


def _with_model(kernel: Kernel, low, isa: str, choice: dict, cores: int):
    """``low`` carrying its model summary (manifest, build report) and the matching documentation line."""
    model = model_summary(kernel, low, isa, choice, cores)
    return replace(low, notes=low.notes + (cost_note(model),), model=model)


def model_summary(kernel: Kernel, low, isa: str, choice: dict, cores: int) -> dict:
    """The schedule, the predicted cost of one call at the lowered sizes on the ISA's default
    platform (one core's critical path when ``cores`` > 1) and the formulas symbolic in the shape."""
    from .formula import kernel_formula
    from .platform import platform_for, toolchain_for

    f = kernel_formula(kernel, low.kernel, isa, low.sizes, low.paired)
    plat = platform_for(isa)
    at = {_sym(k): v for k, v in low.sizes.items()}
    return {"platform": plat.name, "cpu": plat.cpu, "toolchain": toolchain_for(isa).name, "cores": cores,
            "tile": list(choice["tile"]) if choice.get("tile") is not None else None,
            "k_unroll": choice.get("k_unroll"), "schedule_source": choice.get("source"),
            "predicted_instructions": int(round(float(f.instructions.subs(at)))),
            "predicted_cycles": int(round(float(f.cycles.subs(at)))),
            "formula": {"instructions": f.text(), "cycles": f.text("cycles"),
                        "macs": str(f.analysis.macs), "outputs": str(f.analysis.outputs)}}


def cost_note(model: dict) -> str:
    """The schedule and the predicted cost formula, for the kernel's documentation."""
    tile = (f"register tile {model['tile'][0]}x{model['tile'][1]}, K-unroll {model['k_unroll']} "
            f"({model['schedule_source']}); " if model["tile"] is not None else "")
    core = f" per core ({model['cores']} cores)" if model["cores"] > 1 else ""
    return (f"Model (kgen explain): {tile}predicted{core} on {model['cpu']} ({model['toolchain']} model) "
            f"{model['predicted_instructions']} instructions, {model['predicted_cycles']} cycles; "
            f"instructions = {model['formula']['instructions']}, cycles = {model['formula']['cycles']}.")


def _sym(name: str):
    import sympy as sp

    return sp.Symbol(name, integer=True)


__all__ = ["AutoBackend", "refuse_overflow", "source_text", "model_summary", "cost_note"]


def schedule_choice(kernel: Kernel, sizes: Mapping[str, int], isa: str) -> dict | None:
    """The remembered choice of :class:`AutoBackend` for ``kernel`` at ``sizes`` (None before a build)."""
    known = {s: int(sizes[s]) for s in kernel.sizes if s in sizes}
    if not (FORCED["tile"] or FORCED["k_unroll"]):
        hit = pinned.lookup(kernel.name, isa, known)
        if hit is not None:
            return hit
    return cache.lookup(cache.key(kernel, ("schedule", tuple(sorted(known.items())), isa, FORCED["tile"],
                                           FORCED["k_unroll"])))
