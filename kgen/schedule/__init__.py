"""Schedule primitives: pure, checked functions ``(kernel, params) -> kernel`` that keep semantics.

Loops are named by their variable.  Each primitive raises :class:`ScheduleError` (naming the
primitive and the loop) when it does not apply.  The reference interpreter runs scheduled
kernels too, so every schedule can be checked against the original on data.

| primitive | before | after |
|---|---|---|
| ``specialize(k, {M: 64})`` | ``for m in 0..M`` | ``for m in 0..64`` |
| ``split(k, "k", 4, tail)`` | ``for k in 0..K { B(k) }`` | ``for k_o in 0..K/4 { for k_i in 0..4 { B(4*k_o + k_i) } }`` + tail |
| ``reorder(k, "m", "n")`` | ``for m { for n { B } }`` | ``for n { for m { B } }`` |
| ``unroll(k, "k_i")`` | ``for k_i in 0..4 { B(k_i) }`` | ``B(0) B(1) B(2) B(3)`` |
| ``unroll_jam(k, "n_i")`` | ``for n_i in 0..2 { P(n_i); for k {R(n_i)}; E(n_i) }`` | ``P(0) P(1); for k { R(0) R(1) }; E(0) E(1)`` |

Tail policies of ``split``: ``perfect`` (the trip count must be a multiple of the factor, proved
for all legal sizes), ``guard`` (round up, guard the body with ``if``), ``cut`` (full blocks, then a
remainder loop).
"""
from .primitives import (ScheduleError, distribute, fuse_updates, loop, reorder, specialize, split, unroll,
                         unroll_jam)

__all__ = ["ScheduleError", "distribute", "specialize", "split", "reorder", "unroll", "unroll_jam", "loop",
           "fuse_updates"]
