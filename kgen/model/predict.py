"""Predicted instructions and cycles of a generated kernel (what ``kgen bench`` measures).

The prediction lowers the kernel with the backend kgen would use, counts the lowered IR with the
toolchain model (:mod:`kgen.model.cost`) and prices the count vector with the platform's cycle
table.  Nothing is measured or fitted per kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from ..ir import Kernel
from .cost import Counts, LoopReport, count_kernel
from .platform import Platform, Toolchain, cycles_of, instructions_of, platform_for, toolchain_for


@dataclass(frozen=True)
class Prediction:
    """Predicted cost of one call (one core's critical path with ``cores`` > 1)."""

    instructions: int
    cycles: int
    counts: dict[str, float]
    loops: tuple[LoopReport, ...] = field(default=(), compare=False)


@lru_cache(maxsize=None)
def asm_lines(isa: str) -> dict[str, int]:
    """Instructions per ISA instruction spelling (multi-instruction inline-asm templates)."""
    from ..isafile import load_isa

    if isa == "generic":
        return {}
    return {i.mnemonic: (i.insn or i.asm).count("\n") + 1 for i in load_isa(isa).instrs}


def allocatable(isa: str) -> int:
    """The register budget of ``isa`` (ISA file ``[registers] allocatable``; 14 for generic C)."""
    from ..isafile import load_isa

    return load_isa(isa).allocatable if isa != "generic" else 14


def price(counts: Counts, platform: Platform, toolchain: Toolchain) -> tuple[Any, Any]:
    """(instructions, cycles) of a count vector."""
    return (instructions_of(counts, toolchain, asm_lines(platform.isa)),
            cycles_of(counts, platform, toolchain))


def predict_lowered(lowered_kernel: Kernel, isa: str, paired=(), compiler: str | None = None,
                    platform: str | None = None, sizes: Mapping[str, int] | None = None) -> Prediction:
    """Prediction for an already lowered kernel."""
    plat = platform_for(isa, platform)
    tc = toolchain_for(isa, compiler)
    counts, loops = count_kernel(lowered_kernel, tc, paired, sizes, allocatable(plat.isa))
    ins, cyc = price(counts, plat, tc)
    return Prediction(int(round(float(ins))), int(round(float(cyc))), {k: float(v) for k, v in counts.items()},
                      tuple(loops))


def predict(kernel: Kernel, isa: str, sizes: Mapping[str, int], cores: int = 1, compiler: str | None = None,
            platform: str | None = None, backend: Any = None) -> Prediction:
    """Lower ``kernel`` for ``isa`` at ``sizes`` (with ``backend`` or kgen's default) and predict it."""
    from ..backends import get_backend

    b = backend or get_backend(isa, cores)
    low = b.lower(kernel, dict(sizes))
    return predict_lowered(low.kernel, isa, low.paired, compiler, platform, low.sizes)


#: The platform whose cycle table matches a bench target's cpu.
CPU_PLATFORM = {"cortex-m4": "stm32l4", "cortex-m7": "stm32h7"}


def bench_prediction(kernel: Kernel, isa: str, sizes: Mapping[str, int], compiler: str, cpu: str = "",
                     cores: int = 1) -> dict[str, int | None]:
    """``predicted_instructions`` and ``predicted_cycles`` of a ``kgen bench`` record (the code bench
    measures: kgen's default backend for ``isa`` and ``cores``)."""
    from ..errors import KgenError

    try:
        p = predict(kernel, isa, sizes, cores, compiler, CPU_PLATFORM.get(cpu))
    except KgenError:
        return {"predicted_instructions": None, "predicted_cycles": None}
    return {"predicted_instructions": p.instructions, "predicted_cycles": p.cycles}


__all__ = ["Prediction", "predict", "predict_lowered", "price", "asm_lines", "bench_prediction"]
