"""Automatic schedule steps for kernels that no ISA pattern covers (element-wise and row-wise code).

With shapes known at generation time, the innermost loops have constant trip counts: unrolling
them by a small factor removes the loop-closing compare and branch from most iterations and turns
the pointer increments into immediate offsets — work a compiler at -O3 often leaves undone (gcc
does not unroll without -funroll-loops).
"""
from __future__ import annotations

from typing import Callable

from ..interp import eval_const
from ..ir import Expr, For, Kernel, stmt_exprs, walk_expr, walk_stmts
from .primitives import ScheduleError, split, unroll

#: Innermost loops whose body has more expression nodes than this are left rolled (code size).
MAX_BODY_NODES = 48


def _trip(lp: For) -> int | None:
    try:
        return eval_const(lp.hi) - eval_const(lp.lo)
    except KeyError:
        return None


def _size(lp: For) -> int:
    return sum(1 for s in walk_stmts(lp.body) for e in stmt_exprs(s) for _ in walk_expr(e))


def unroll_innermost(kernel: Kernel, factor: int = 8, heavy: Callable[[Expr], bool] | None = None) -> Kernel:
    """Unroll every innermost constant-trip loop by ``factor`` (completely when its trip count is at
    most ``factor``); loops with large bodies or non-constant trips are left alone, and so are
    loops with an expression ``heavy`` selects (an operation the target expands into a long
    inline sequence, whose copies would only add register pressure)."""
    loops = [s for s in walk_stmts(kernel.body) if isinstance(s, For)]
    by_var: dict[str, list[For]] = {}
    for lp in loops:
        by_var.setdefault(lp.var, []).append(lp)
    for var, group in sorted(by_var.items()):
        innermost = all(not any(isinstance(x, For) for x in walk_stmts(lp.body)) for lp in group)
        trips = [_trip(lp) for lp in group]
        if not innermost or any(t is None or t < 2 for t in trips) or any(lp.attrs for lp in group):
            continue
        if max(_size(lp) for lp in group) > MAX_BODY_NODES:
            continue
        if heavy is not None and any(heavy(x) for lp in group for st in walk_stmts(lp.body)
                                     for e in stmt_exprs(st) for x in walk_expr(e)):
            continue
        try:
            if max(trips) <= factor:  # type: ignore[type-var]
                kernel = unroll(kernel, var)
            else:
                names = (f"{var}_uo", f"{var}_ui", f"{var}_ut")
                kernel = split(kernel, var, factor, "cut", names)
                kernel = unroll(kernel, names[1])
                try:
                    kernel = unroll(kernel, names[2])
                except ScheduleError:
                    pass  # no remainder loop
        except ScheduleError:
            continue
    return kernel


__all__ = ["unroll_innermost"]
