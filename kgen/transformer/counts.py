"""Operation and parameter counts read off the kernels themselves (not hand-typed formulas).

:func:`count_ops` walks a kernel's loop nest with concrete sizes and multiplies loop trip counts:
a *MAC* is a multiplication whose two operands are buffer or array loads (``acc += i32(X[..]) *
i32(W[..])``), so index arithmetic, requant multipliers and the softmax polynomial are not MACs.
Loops whose bounds depend on an enclosing loop variable are enumerated; other loops are multiplied
out, so the walk stays cheap for real model dimensions.  Branches with index-only conditions are
evaluated; data-dependent branches count their costlier side.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Iterable, Mapping

from ..interp import eval_expr
from ..ir import (IDX, Alloc, Bin, BufferParam, Call, Cast, Expr, For, If, Kernel, Load, Stmt, Var,
                  stmt_exprs, walk_expr, walk_stmts)


@dataclass(frozen=True)
class OpCounts:
    """Dynamic operation counts of one kernel call."""

    macs: int = 0  # load × load multiplications
    divs: int = 0  # data-typed divisions (softmax reciprocal, LayerNorm, ...)
    requants: int = 0  # requant() evaluations

    def __add__(self, other: "OpCounts") -> "OpCounts":
        return OpCounts(self.macs + other.macs, self.divs + other.divs, self.requants + other.requants)

    def scale(self, n: int) -> "OpCounts":
        return OpCounts(self.macs * n, self.divs * n, self.requants * n)


def _strip(e: Expr) -> Expr:
    while isinstance(e, Cast):
        e = e.a
    return e


def _expr_ops(e: Expr) -> OpCounts:
    macs = divs = req = 0
    for sub in walk_expr(e):
        if isinstance(sub, Bin) and sub.op == "mul" and sub.type.is_data:
            if isinstance(_strip(sub.a), Load) and isinstance(_strip(sub.b), Load):
                macs += 1
        elif isinstance(sub, Bin) and sub.op == "div" and sub.type.is_data:
            divs += 1
        elif isinstance(sub, Call) and sub.fn == "requant":
            req += 1
    return OpCounts(macs, divs, req)


def _idx_names(e: Expr) -> set[str]:
    return {v.name for v in walk_expr(e) if isinstance(v, Var) and v.type == IDX}


def _depends_on(body: tuple[Stmt, ...], var: str) -> bool:
    """True when some loop bound or branch condition inside ``body`` uses loop variable ``var``."""
    for s in walk_stmts(body):
        if isinstance(s, For) and (var in _idx_names(s.lo) or var in _idx_names(s.hi)):
            return True
        if isinstance(s, If) and var in _idx_names(s.cond):
            return True
    return False


def _count(body: tuple[Stmt, ...], env: dict[str, int]) -> OpCounts:
    total = OpCounts()
    for s in body:
        if isinstance(s, For):
            lo, hi = eval_expr(s.lo, env), eval_expr(s.hi, env)
            if hi <= lo:
                continue
            header = _expr_ops(s.lo) + _expr_ops(s.hi)
            if _depends_on(s.body, s.var):
                for i in range(lo, hi):
                    total = total + _count(s.body, {**env, s.var: i})
            else:
                total = total + _count(s.body, {**env, s.var: lo}).scale(hi - lo)
            total = total + header
        elif isinstance(s, If):
            total = total + _expr_ops(s.cond)
            names = [v for v in walk_expr(s.cond) if isinstance(v, Var)]
            if all(v.type == IDX and v.name in env for v in names):
                total = total + _count(s.then if eval_expr(s.cond, env) else s.orelse, env)
            else:
                a, b = _count(s.then, env), _count(s.orelse, env)
                total = total + (a if (a.macs, a.divs, a.requants) >= (b.macs, b.divs, b.requants) else b)
        else:
            for e in stmt_exprs(s):
                total = total + _expr_ops(e)
    return total


def count_ops(kernel: Kernel, sizes: Mapping[str, int]) -> OpCounts:
    """Operation counts of one call of ``kernel`` at ``sizes``."""
    missing = [n for n in kernel.sizes if n not in sizes]
    if missing:
        raise ValueError(f"kernel {kernel.name}: missing sizes {', '.join(missing)}")
    return _count(kernel.body, {n: int(sizes[n]) for n in kernel.sizes})


def macs(kernel: Kernel, sizes: Mapping[str, int]) -> int:
    """Multiply-accumulates of one call of ``kernel`` at ``sizes``."""
    return count_ops(kernel, sizes).macs


def buffer_elements(kernel: Kernel, sizes: Mapping[str, int], names: Iterable[str]) -> int:
    """Total number of elements of the named buffer parameters (e.g. the weights) at ``sizes``."""
    total = 0
    for n in names:
        p = kernel.param(n)
        if not isinstance(p, BufferParam):
            raise ValueError(f"{kernel.name}.{n} is a scalar, not a buffer")
        total += prod(eval_expr(d, sizes) for d in p.shape)
    return total


def buffer_bytes(kernel: Kernel, sizes: Mapping[str, int], name: str) -> int:
    """Bytes of buffer parameter ``name`` (logical shape × element size) at ``sizes``."""
    p = kernel.param(name)
    assert isinstance(p, BufferParam)
    return prod(eval_expr(d, sizes) for d in p.shape) * (p.type.bits // 8)


def local_arrays(kernel: Kernel, sizes: Mapping[str, int]) -> dict[str, int]:
    """Bytes of every local array (``var x: T[...]``) of ``kernel`` at ``sizes``."""
    out: dict[str, int] = {}
    for s in walk_stmts(kernel.body):
        if isinstance(s, Alloc):
            out[s.name] = prod(eval_expr(d, sizes) for d in s.shape) * (s.type.bits // 8)
    return out


def weight_names(kernel: Kernel) -> list[str]:
    """The int8 input buffers whose name starts with W or M (the library's weight convention)."""
    return [p.name for p in kernel.buffers
            if p.direction == "in" and p.type.bits == 8 and p.name[:1] in ("W", "M")]


__all__ = ["OpCounts", "count_ops", "macs", "buffer_elements", "buffer_bytes", "local_arrays",
           "weight_names"]
