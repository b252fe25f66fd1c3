"""Index-set splitting: loops whose index guards hold for a leading range of iterations are split there.

Zero-padding copies (operand staging for odd extents) guard each element with conditions such as
``C·nb + c < N && L·kb + l < K``.  For a loop over ``v`` (constant bounds), every conjunct
``a·v + rest < c`` (or ``<=``) with ``a > 0`` holds for all ``v`` below ``ceil((c - max rest) / a)``,
``rest`` ranging over the loops inside and around (constant bounds).  The loop is split at the
smallest such point: in the first part those conjuncts are true and the guards they decide
disappear; the second part keeps them.  Loops are processed outside-in, so an outer split's
knowledge (``nb`` small enough) lets inner loops split too.  Pure rewrite: each iteration runs the
same statements as before.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..check import NotAffine, to_sympy
from ..ir import BOOL, IDX, Bin, Const, Expr, For, If, Kernel, Stmt, walk_stmts



def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, Bin) and e.op == "land":
        return _conjuncts(e.a) + _conjuncts(e.b)
    return [e]


def _bound(c: Expr, var: str, ranges: dict[str, tuple[int, int]]) -> int | None:
    """The first value of ``var`` for which conjunct ``c`` may be false (None when ``c`` is not an
    affine ``<``/``<=`` with a positive coefficient of ``var`` over known ranges)."""
    if not (isinstance(c, Bin) and c.op in ("lt", "le") and c.a.type == IDX):
        return None
    try:
        d = sp.expand(to_sympy(c.b, {}) - to_sympy(c.a, {}))  # c holds iff d > 0 (lt) / d >= 0 (le)
    except NotAffine:
        return None
    v = sp.Symbol(var, integer=True)
    a = -d.coeff(v)
    if not a.is_Integer or a <= 0:
        return None
    rest = sp.expand(d + a * v)
    worst = 0  # the smallest value of rest
    for term in sp.Add.make_args(rest):
        if term.is_Integer:
            worst += int(term)
            continue
        coeff, sym = term.as_coeff_Mul()
        if not (coeff.is_Integer and sym.is_Symbol) or str(sym) not in ranges:
            return None
        lo, hi = ranges[str(sym)]
        worst += min(int(coeff) * lo, int(coeff) * hi)
    # holds iff a·v < rest (lt) or a·v <= rest (le): for all v < t with t below
    limit = worst if c.op == "le" else worst - 1  # a·v <= limit
    return limit // int(a) + 1


def _assume(body: tuple[Stmt, ...], true: set[Expr]) -> tuple[Stmt, ...]:
    """Replace the conjuncts in ``true`` by true; drop guards that become true."""
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, If):
            left = [c for c in _conjuncts(s.cond) if c not in true]
            then, orelse = _assume(s.then, true), _assume(s.orelse, true)
            if not left:
                out.extend(then)
                continue
            cond = left[0]
            for c in left[1:]:
                cond = Bin("land", cond, c, BOOL)
            s = replace(s, cond=cond, then=then, orelse=orelse)
        elif isinstance(s, For):
            s = replace(s, body=_assume(s.body, true))
        out.append(s)
    return tuple(out)


def split_guards(kernel: Kernel) -> Kernel:
    """See the module docstring."""

    def body(stmts: tuple[Stmt, ...], ranges: dict[str, tuple[int, int]]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in stmts:
            if isinstance(s, For):
                out.extend(loop(s, ranges))
            elif isinstance(s, If):
                out.append(replace(s, then=body(s.then, ranges), orelse=body(s.orelse, ranges)))
            else:
                out.append(s)
        return tuple(out)

    def loop(s: For, ranges: dict[str, tuple[int, int]]) -> tuple[Stmt, ...]:
        if not (isinstance(s.lo, Const) and isinstance(s.hi, Const)) or s.hi.value <= s.lo.value or s.attrs:
            return (replace(s, body=body(s.body, ranges)),)
        lo, hi = s.lo.value, s.hi.value
        inner = dict(ranges)
        for x in walk_stmts(s.body):
            if isinstance(x, For) and isinstance(x.lo, Const) and isinstance(x.hi, Const) and x.hi.value > x.lo.value:
                inner[x.var] = (x.lo.value, x.hi.value - 1)
        conds = [c for x in walk_stmts(s.body) if isinstance(x, If) for c in _conjuncts(x.cond)]
        points = {c: _bound(c, s.var, inner) for c in conds}
        decided = {c: t for c, t in points.items() if t is not None}
        if not decided:
            return (replace(s, body=body(s.body, {**ranges, s.var: (lo, hi - 1)})),)
        t = min(decided.values())
        if t >= hi:  # every guard holds throughout
            new = replace(s, body=_assume(s.body, set(decided)))
            return (replace(new, body=body(new.body, {**ranges, s.var: (lo, hi - 1)})),)
        if t <= lo:
            return (replace(s, body=body(s.body, {**ranges, s.var: (lo, hi - 1)})),)
        first = replace(s, hi=Const(t, IDX), body=_assume(s.body, {c for c, x in decided.items() if x >= t}))
        rest = replace(s, lo=Const(t, IDX))
        return (replace(first, body=body(first.body, {**ranges, s.var: (lo, t - 1)})),
                replace(rest, body=body(rest.body, {**ranges, s.var: (t, hi - 1)})))

    return replace(kernel, body=body(kernel.body, {}))


__all__ = ["split_guards"]
