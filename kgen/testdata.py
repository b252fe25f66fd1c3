"""Test inputs for verification: random data plus the edge cases that break kernels.

Every case fills all input buffers and scalars of a kernel.  Scalars respect their declared
``in lo..hi`` range.  Expected outputs come from the reference interpreter; output buffers start
filled with :data:`kgen.interp.CANARY` so that writes outside a strided output's view are caught.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from .interp import buffer_shape, eval_expr, run_reference
from .ir import BufferParam, Kernel, ScalarParam, Type

@dataclass(frozen=True)
class Case:
    name: str
    args: dict[str, object]  # buffer name -> np.ndarray, scalar name -> int
    expected: dict[str, np.ndarray]


def _dtype(t: Type) -> np.dtype:
    return np.dtype(f"{'' if t.signed else 'u'}int{t.bits}")


def _scalar_range(p: ScalarParam) -> tuple[int, int]:
    lo = eval_expr(p.lo, {}) if p.lo is not None else p.type.min
    hi = eval_expr(p.hi, {}) - 1 if p.hi is not None else p.type.max
    return lo, hi


def _fill(p: BufferParam, shape: tuple[int, ...], mode: str, rng: np.random.Generator) -> np.ndarray:
    t = p.type
    lo, hi = t.min, t.max
    if t.bits > 16 and mode == "random":
        # Wide inputs (biases) in a range that keeps accumulators meaningful, plus full range rarely.
        lo, hi = max(lo, -(1 << 20)), min(hi, 1 << 20)
    if mode == "random":
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64).astype(_dtype(t))
    if mode == "min":
        return np.full(shape, lo, dtype=_dtype(t))
    if mode == "max":
        return np.full(shape, hi, dtype=_dtype(t))
    if mode == "alternating":
        flat = np.where(np.arange(int(np.prod(shape))) % 2 == 0, lo, hi)
        return flat.reshape(shape).astype(_dtype(t))
    if mode == "full-range":
        return rng.integers(t.min, t.max, size=shape, endpoint=True, dtype=np.int64).astype(_dtype(t))
    raise ValueError(mode)


def _scalar(p: ScalarParam, mode: str, rng: np.random.Generator) -> int:
    lo, hi = _scalar_range(p)
    if mode in ("min", "max"):
        # Extremes of the declared range, but keep the classic requant pair meaningful.
        return lo if mode == "min" else hi
    typical_lo, typical_hi = max(lo, 1), min(hi, 1 << 15)
    if "shift" in p.name:
        typical_lo, typical_hi = max(lo, 6), min(hi, 20)
    if typical_lo > typical_hi:
        typical_lo, typical_hi = lo, hi
    return int(rng.integers(typical_lo, typical_hi, endpoint=True))


CASE_MODES = ("random", "full-range", "min", "max", "alternating")


def make_cases(kernel: Kernel, sizes: Mapping[str, int], seed: int = 0,
               modes: tuple[str, ...] = CASE_MODES, overrides: Mapping[str, object] | None = None
               ) -> list[Case]:
    """One case per mode; expected outputs are computed by the reference interpreter (memoised:
    verifying one kernel on several targets computes the reference once)."""
    if overrides:
        return _make_cases(kernel, sizes, seed, modes, overrides)
    return list(_cached_cases(kernel, tuple(sorted(sizes.items())), seed, tuple(modes)))


@lru_cache(maxsize=16)
def _cached_cases(kernel: Kernel, sizes: tuple[tuple[str, int], ...], seed: int, modes: tuple[str, ...]
                  ) -> tuple[Case, ...]:
    return tuple(_make_cases(kernel, dict(sizes), seed, modes, None))


def _make_cases(kernel: Kernel, sizes: Mapping[str, int], seed: int, modes: tuple[str, ...],
                overrides: Mapping[str, object] | None) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for mode in modes:
        args: dict[str, object] = {}
        for p in kernel.params:
            if isinstance(p, BufferParam):
                if p.direction == "out":
                    continue
                args[p.name] = _fill(p, buffer_shape(p, sizes), mode, rng)
            else:
                args[p.name] = _scalar(p, mode if mode in ("min", "max") else "random", rng)
        if overrides:
            args.update(overrides)
        expected = run_reference(kernel, sizes, args)
        cases.append(Case(mode, args, expected))
    return cases
