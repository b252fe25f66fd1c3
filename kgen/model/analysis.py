"""Symbolic analysis of a DSL kernel with sympy: trip counts, MACs, memory accesses and footprints.

Everything is a sympy expression in the kernel's shape symbols (``M``, ``K``, ``N``, ...): loop
trip counts (``hi - lo``, summed over enclosing loops when a bound depends on an outer variable),
multiply-accumulates (products of two loaded values), loads and stores per buffer (statements of
both branches of data-dependent ifs count), and bytes per buffer (parameters and local arrays).
:func:`contraction_footprints` adds the buffers a register-blocked lowering introduces, as
functions of the shape symbols and the tile symbols ``R``, ``C`` and the lane group ``G``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import sympy as sp

from ..check import NotAffine, to_sympy
from ..ir import (Alloc, BufferParam, Cast, Decl, Expr, For, If, Kernel, Load, Stmt, Store, Bin, View,
                  stmt_exprs, walk_expr)


@dataclass(frozen=True)
class LoopInfo:
    var: str
    depth: int
    trip: sp.Expr          # iterations per execution of the loop
    executions: sp.Expr    # iterations in one call (all executions)


@dataclass(frozen=True)
class BufferInfo:
    name: str
    kind: str              # in | out | inout | local
    type: str
    bytes: sp.Expr
    loads: sp.Expr
    stores: sp.Expr


@dataclass(frozen=True)
class Analysis:
    kernel: str
    symbols: tuple[str, ...]
    loops: tuple[LoopInfo, ...]
    macs: sp.Expr
    outputs: sp.Expr
    buffers: tuple[BufferInfo, ...]

    def at(self, e: sp.Expr, sizes: Mapping[str, int]) -> int:
        return int(sp.sympify(e).subs({sp.Symbol(k, integer=True): v for k, v in sizes.items()}))


def _sym(e: Expr, syms: dict[str, sp.Symbol]) -> sp.Expr:
    try:
        return to_sympy(e, syms)
    except NotAffine:
        return sp.Symbol("unknown", positive=True)


def _strip(e: Expr) -> Expr:
    while isinstance(e, Cast):
        e = e.a
    return e


def _is_mac(e: Expr) -> bool:
    return isinstance(e, Bin) and e.op == "mul" and e.type.is_data and \
        isinstance(_strip(e.a), Load) and isinstance(_strip(e.b), Load)


@lru_cache(maxsize=64)
def analyze(kernel: Kernel) -> Analysis:
    """The symbolic counts of one call of ``kernel`` (a DSL kernel with symbolic sizes); cached,
    every variant of a kernel asks for the same analysis."""
    syms: dict[str, sp.Symbol] = {n: sp.Symbol(n, integer=True) for n in kernel.sizes}
    loops: list[LoopInfo] = []
    loads: dict[str, sp.Expr] = {}
    stores: dict[str, sp.Expr] = {}
    macs = [sp.Integer(0)]
    local_bytes: dict[str, tuple[str, sp.Expr]] = {}
    base: dict[str, str] = {}  # view -> the buffer whose storage it re-indexes

    counted: dict[tuple, sp.Expr] = {}

    def count(weight: sp.Expr, outer: list[tuple[sp.Symbol, sp.Expr, sp.Expr]]) -> sp.Expr:
        """Sum ``weight`` over the iteration space of the enclosing loops (innermost first)."""
        key = (weight, tuple(outer))
        if key not in counted:
            counted[key] = _count(weight, outer)
        return counted[key]

    def _count(weight: sp.Expr, outer: list[tuple[sp.Symbol, sp.Expr, sp.Expr]]) -> sp.Expr:
        total = weight
        for var, lo, hi in reversed(outer):
            if total.has(var):
                total = sp.summation(total, (var, lo, hi - 1))
            else:
                total = total * (hi - lo)
        return sp.simplify(total)

    def walk(body: tuple[Stmt, ...], outer: list[tuple[sp.Symbol, sp.Expr, sp.Expr]]) -> None:
        for s in body:
            for e in stmt_exprs(s) if not isinstance(s, For) else ():
                for x in walk_expr(e):
                    if isinstance(x, Load):
                        b = base.get(x.buf, x.buf)
                        loads[b] = loads.get(b, sp.Integer(0)) + count(sp.Integer(1), outer)
                    if _is_mac(x):
                        macs[0] += count(sp.Integer(1), outer)
            if isinstance(s, Store):
                b = base.get(s.buf, s.buf)
                stores[b] = stores.get(b, sp.Integer(0)) + count(sp.Integer(1), outer)
            elif isinstance(s, View):
                base[s.name] = base.get(s.base, s.base)
            elif isinstance(s, Alloc):
                n = sp.Integer(1)
                for d in s.shape:
                    n *= _sym(d, syms)
                local_bytes[s.name] = (s.type.name, n * max(1, s.type.bits // 8))
            elif isinstance(s, For):
                var = sp.Symbol(s.var, integer=True)
                syms.setdefault(s.var, var)
                lo, hi = _sym(s.lo, syms), _sym(s.hi, syms)
                loops.append(LoopInfo(s.var, len(outer), sp.simplify(hi - lo),
                                      count(hi - lo, outer)))
                walk(s.body, outer + [(var, lo, hi)])
            elif isinstance(s, If):
                walk(s.then, outer)
                walk(s.orelse, outer)

    walk(kernel.body, [])
    bufs = []
    for p in kernel.buffers:
        n = sp.Integer(1)
        for d in p.shape:
            n *= _sym(d, syms)
        bufs.append(BufferInfo(p.name, p.direction, p.type.name, sp.expand(n * max(1, p.type.bits // 8)),
                               sp.expand(loads.get(p.name, 0)), sp.expand(stores.get(p.name, 0))))
    for name, (t, b) in local_bytes.items():
        bufs.append(BufferInfo(name, "local", t, sp.expand(b), sp.expand(loads.get(name, 0)),
                               sp.expand(stores.get(name, 0))))
    outputs = sum((b.bytes / max(1, _bits(b.type) // 8) for b in bufs if b.kind in ("out", "inout")), sp.Integer(0))
    return Analysis(kernel.name, tuple(kernel.sizes), tuple(loops), sp.expand(macs[0]), sp.expand(outputs), tuple(bufs))


def _bits(t: str) -> int:
    from ..ir import SCALAR_TYPES

    return SCALAR_TYPES[t].bits if t in SCALAR_TYPES else 8


def contraction_footprints(kernel: Kernel, lowered: Kernel) -> dict[str, sp.Expr]:
    """Bytes of the buffers of a register-blocked lowering as functions of the shape symbols and the
    tile symbols ``R`` and ``C`` (the lane group ``G`` and element sizes are read off the lowering):
    packed operand ``[ceil(N/C)][ceil(K/G)][C][G]``, staged rows ``[ceil(K/G)][R][G]``."""
    from ..backends.contraction import find_contraction

    c = find_contraction(kernel)
    if c is None:
        return {}
    syms: dict[str, sp.Symbol] = {n: sp.Symbol(n, integer=True) for n in kernel.sizes}
    R, C = sp.Symbol("R", positive=True, integer=True), sp.Symbol("C", positive=True, integer=True)
    a, b = kernel.param(c.a), kernel.param(c.b)
    N = _sym(b.shape[c.b_dims.index(c.n)], syms)  # type: ignore[union-attr]
    K = _sym(b.shape[c.b_dims.index(c.k)], syms)  # type: ignore[union-attr]
    out: dict[str, sp.Expr] = {}
    for p in lowered.buffers:
        if p.name not in {q.name for q in kernel.buffers} and len(p.shape) == 4:
            G = p.shape[3].value  # type: ignore[union-attr]
            out[p.name] = sp.ceiling(N / C) * sp.ceiling(K / G) * C * G * max(1, p.type.bits // 8)
    from ..ir import walk_stmts

    for s in walk_stmts(lowered.body):
        if isinstance(s, Alloc) and len(s.shape) == 3 and s.name.startswith(c.a) and s.name not in out:
            G = s.shape[2].value  # type: ignore[union-attr]
            rows = R if s.name.endswith(("_wide", "_quads")) else s.shape[1].value  # type: ignore[union-attr]
            out[s.name] = sp.ceiling(K / G) * rows * G * max(1, s.type.bits // 8)
    del a
    return out


__all__ = ["Analysis", "BufferInfo", "LoopInfo", "analyze", "contraction_footprints", "BufferParam", "Decl"]
