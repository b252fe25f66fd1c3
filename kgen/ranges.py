"""Value ranges of integer expressions: a conservative interval analysis over the IR.

Used to prove data-dependent indices (``table[idx(x - m + 255)]``) in bounds.  Scalar parameters
contribute their declared ``in lo..hi`` range, buffer elements their type's range, and a local
variable the union of the ranges of everything ever assigned to it (flow-insensitive, iterated
to a fixpoint; a variable that keeps growing is widened to its type's full range).  Arithmetic
that may wrap gets the full range of its type, so every result is sound for kgen's wrapping
semantics.
"""
from __future__ import annotations

from typing import Mapping

from .interp import eval_expr
from .ir import (Assign, Bin, Call, Cast, Const, Decl, Expr, Kernel, Load, ScalarParam, Un, Var,
                 walk_stmts)

Range = tuple[int, int]


class _Bottom(Exception):
    pass


def _full(e: Expr) -> Range:
    return (e.type.min, e.type.max)


def _clamp(e: Expr, r: Range) -> Range:
    """``r`` when the exact result fits the type of ``e``, else the type's full range (wraps)."""
    return r if e.type.min <= r[0] and r[1] <= e.type.max else _full(e)


def _bin(e: Bin, a: Range, b: Range) -> Range:
    if e.op == "add":
        return _clamp(e, (a[0] + b[0], a[1] + b[1]))
    if e.op == "sub":
        return _clamp(e, (a[0] - b[1], a[1] - b[0]))
    if e.op == "mul":
        p = [x * y for x in a for y in b]
        return _clamp(e, (min(p), max(p)))
    if e.op == "shr" and 0 <= b[0] and b[1] < e.type.bits:
        ends = [x >> s for x in a for s in b]
        return (min(ends), max(ends))
    if e.op == "shl" and 0 <= b[0] and b[1] < e.type.bits:
        ends = [x << s for x in a for s in b]
        return _clamp(e, (min(ends), max(ends)))
    if e.op == "and" and (a[0] >= 0 or b[0] >= 0):
        return (0, min(x[1] for x in (a, b) if x[0] >= 0))
    if e.op == "div" and b[0] > 0:
        ends = [int(x / y) for x in a for y in b]  # truncation toward zero is monotone per sign
        return _clamp(e, (min(ends + [0]) if a[0] < 0 < a[1] else min(ends), max(ends)))
    return _full(e)


def expr_range(e: Expr, env: Mapping[str, Range], pending: frozenset[str] = frozenset()) -> Range | None:
    """Range of a data expression (None for index and bool expressions).  Reading a name in
    ``pending`` (a local with no value yet) raises ``_Bottom``."""
    t = e.type
    if not t.is_data or t.lanes > 1:
        return None
    if isinstance(e, Const):
        return (e.value, e.value)
    if isinstance(e, Var):
        if e.name not in env and e.name in pending:
            raise _Bottom(e.name)
        return env.get(e.name, _full(e))
    if isinstance(e, Load):
        return _full(e)
    if isinstance(e, Cast):
        inner = expr_range(e.a, env, pending)
        if inner is None:
            return _full(e)
        return _clamp(e, inner)
    if isinstance(e, Bin):
        a, b = expr_range(e.a, env, pending), expr_range(e.b, env, pending)
        if a is None or b is None:
            return _full(e)
        return _bin(e, a, b)
    if isinstance(e, Un) and e.op == "neg":
        a = expr_range(e.a, env, pending)
        return _full(e) if a is None else _clamp(e, (-a[1], -a[0]))
    if isinstance(e, Call):
        rs = [expr_range(x, env, pending) for x in e.args]
        if e.fn in ("min", "max") and all(r is not None for r in rs):
            pick = min if e.fn == "min" else max
            return (pick(r[0] for r in rs), pick(r[1] for r in rs))  # type: ignore[index]
        if e.fn == "clip" and all(r is not None for r in rs):
            (x, lo, hi) = rs  # type: ignore[misc]
            return (min(max(x[0], lo[0]), hi[0]), min(max(x[1], lo[1]), hi[1]))
        if e.fn == "select" and rs[1] is not None and rs[2] is not None:
            return (min(rs[1][0], rs[2][0]), max(rs[1][1], rs[2][1]))
        if e.fn == "requant":
            return (-128, 127)
    return _full(e)


def variable_ranges(kernel: Kernel, sizes: Mapping[str, int] | None = None, rounds: int = 8
                    ) -> dict[str, Range]:
    """Range of every scalar parameter and local variable of ``kernel`` (see module docstring)."""
    env: dict[str, Range] = {}
    for p in kernel.params:
        if isinstance(p, ScalarParam) and p.lo is not None and p.hi is not None:
            try:
                env[p.name] = (eval_expr(p.lo, sizes or {}), eval_expr(p.hi, sizes or {}) - 1)
            except KeyError:
                pass
    writes: dict[str, list[Expr]] = {}
    for s in walk_stmts(kernel.body):
        if isinstance(s, Decl) and s.type.is_data and s.type.lanes == 1:
            writes.setdefault(s.name, []).append(s.init if s.init is not None else Const(0, s.type))
        elif isinstance(s, Assign) and s.value.type.is_data and s.value.type.lanes == 1:
            writes.setdefault(s.name, []).append(s.value)
    return _fixpoint(writes, env, set(), rounds)


def _fixpoint(writes: Mapping[str, list[Expr]], env: dict[str, Range], widened: set[str], rounds: int
              ) -> dict[str, Range]:
    changed: set[str] = set()
    for _ in range(2):
        for _ in range(rounds):
            changed = _propagate(writes, env, widened)
            if not changed:
                return env
        for name in changed:  # no fixpoint: widen what still grows to its type's range
            t = writes[name][0].type
            env[name] = (t.min, t.max)
            widened.add(name)
    return {**env, **{n: (w[0].type.min, w[0].type.max) for n, w in writes.items()}}


def _propagate(writes: Mapping[str, list[Expr]], env: dict[str, Range], frozen: set[str]) -> set[str]:
    """One round of the fixpoint; returns the names whose range grew."""
    changed = set()
    pending = frozenset(writes)
    for name, values in writes.items():
        if name in frozen:
            continue
        rs = []
        for v in values:
            try:
                rs.append(expr_range(v, env, pending))
            except _Bottom:
                continue  # reads a local that has no value yet: contributes nothing this round
        if not rs or any(r is None for r in rs):
            continue
        new = (min(r[0] for r in rs), max(r[1] for r in rs))  # type: ignore[index]
        if name in env:
            new = (min(new[0], env[name][0]), max(new[1], env[name][1]))
        if env.get(name) != new:
            env[name] = new
            changed.add(name)
    return changed
