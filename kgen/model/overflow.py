"""Accumulator overflow bounds from value ranges of the IR.

kgen's data types wrap (``kgen/semantics.py``: two's complement), so an int32 accumulator that
exceeds its range gives a *defined* result — but surely not the intended one.  This module finds
every reduction ``acc = acc + t`` (or ``acc += t``), computes the range of the term ``t`` by
interval analysis (an ``i8 × i8`` product lies in [-16256, 16384]), multiplies it by the number of
updates between the accumulator's declaration and its use (the product of the trip counts of the
loops in between, a sympy expression in the shape symbols), and compares the resulting range
with the accumulator's type:

- if the *terms alone* can leave the type at the given sizes, the kernel is refused with a
  located :class:`KgenError` (the CLI exits with status 2) that states the largest safe extent;
- the initial value (e.g. an int32 bias) is not bounded by the DSL, so what is left of the type's
  range is reported as a precondition on it (``headroom``), not refused.

Opt-outs: annotate one of the reduction loops ``@wraps`` (wrapping is intended), or build with
``--allow-overflow`` (:func:`set_policy`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

import sympy as sp

from ..errors import KgenError
from ..interp import eval_expr
from ..ir import (Assign, Bin, Call, Cast, Const, Decl, Expr, For, If, Kernel, Load, Loc, ScalarParam, Stmt,
                  Type, Un, Var, walk_expr)

Range = tuple[int, int]
_POLICY = {"allow": False}


def set_policy(allow: bool) -> None:
    """``allow=True``: report overflow-prone accumulations but do not refuse them (``--allow-overflow``)."""
    _POLICY["allow"] = bool(allow)


@contextmanager
def policy(allow: bool) -> Iterator[None]:
    old = _POLICY["allow"]
    _POLICY["allow"] = allow
    try:
        yield
    finally:
        _POLICY["allow"] = old


@dataclass(frozen=True)
class Accumulation:
    """One accumulator: its updates, how often they run and what they can add up to."""

    name: str
    type: Type
    loc: Loc | None
    term: str                  # the accumulated term, as DSL text
    term_range: Range
    count: sp.Expr             # updates per initialisation (symbolic in the shape symbols)
    loops: tuple[str, ...]     # the reduction loops
    init_range: Range | None   # range of the initial value (None: unbounded int32 data such as a bias)
    wraps_ok: bool             # a reduction loop is annotated @wraps

    def sum_range(self, sizes: Mapping[str, int]) -> Range:
        n = int(_subs(self.count, sizes))
        return (n * min(self.term_range[0], 0), n * max(self.term_range[1], 0))

    def limit(self) -> int:
        """Largest number of updates whose terms alone cannot leave the type."""
        lo, hi = self.term_range
        a = self.type.max // hi if hi > 0 else None
        b = self.type.min // lo if lo < 0 else None
        vals = [v for v in (a, b) if v is not None]
        return min(vals) if vals else 2 ** 63

    def headroom(self, sizes: Mapping[str, int]) -> Range:
        """Range the initial value must stay in so that the accumulation cannot wrap."""
        lo, hi = self.sum_range(sizes)
        return (self.type.min - lo, self.type.max - hi)


def _subs(e: sp.Expr, sizes: Mapping[str, int]) -> sp.Expr:
    return sp.sympify(e).subs({sp.Symbol(k, integer=True): v for k, v in sizes.items()})


def _trip(f: For) -> sp.Expr:
    from ..check import NotAffine, to_sympy

    try:
        return to_sympy(f.hi, {}) - to_sympy(f.lo, {})
    except NotAffine:
        return sp.Symbol(f"trip_{f.var}", integer=True, positive=True)


def expr_range(e: Expr, env: Mapping[str, Range]) -> Range | None:
    """Interval of ``e`` (None for index/bool expressions or unknown names); results that may wrap
    get their type's full range."""
    t = e.type
    if not t.is_data or t.lanes > 1:
        return None
    full = (t.min, t.max)
    if isinstance(e, Const):
        return (e.value, e.value)
    if isinstance(e, Var):
        return env.get(e.name, full)
    if isinstance(e, Load):
        return full
    if isinstance(e, Cast):
        r = expr_range(e.a, env)
        return r if r is not None and t.min <= r[0] and r[1] <= t.max else full
    if isinstance(e, Bin) and e.op in ("add", "sub", "mul"):
        a, b = expr_range(e.a, env), expr_range(e.b, env)
        if a is None or b is None:
            return full
        if e.op == "add":
            r = (a[0] + b[0], a[1] + b[1])
        elif e.op == "sub":
            r = (a[0] - b[1], a[1] - b[0])
        else:
            p = [x * y for x in a for y in b]
            r = (min(p), max(p))
        return r if t.min <= r[0] and r[1] <= t.max else full
    if isinstance(e, Un) and e.op == "neg":
        a = expr_range(e.a, env)
        return (-a[1], -a[0]) if a is not None and t.min <= -a[1] and -a[0] <= t.max else full
    if isinstance(e, Call) and e.fn in ("clip", "min", "max"):
        rs = [expr_range(x, env) for x in e.args]
        if any(r is None for r in rs):
            return full
        if e.fn == "clip":
            return (max(rs[0][0], rs[1][0]), min(rs[0][1], rs[2][1])) if rs[1][0] <= rs[2][1] else full
        f = min if e.fn == "min" else max
        return (f(r[0] for r in rs), f(r[1] for r in rs))
    if isinstance(e, Call) and e.fn == "requant":
        return (-128, 127)
    return full


def _scalar_env(kernel: Kernel) -> dict[str, Range]:
    env: dict[str, Range] = {}
    for p in kernel.scalars:
        if isinstance(p, ScalarParam) and p.lo is not None and p.hi is not None:
            try:
                env[p.name] = (eval_expr(p.lo, {}), eval_expr(p.hi, {}) - 1)
            except (KeyError, ValueError):
                pass
    return env


def _update_term(s: Stmt) -> Expr | None:
    if isinstance(s, Assign) and isinstance(s.value, Bin) and s.value.op in ("add", "sub") \
            and s.value.a == Var(s.name, s.value.type):
        term = s.value.b
        if not any(isinstance(x, Var) and x.name == s.name for x in walk_expr(term)):
            return term if s.value.op == "add" else Un("neg", term, term.type)
    return None


def accumulations(kernel: Kernel) -> list[Accumulation]:
    """Every reduction of ``kernel`` (the DSL kernel, so locations point into its source)."""
    from ..printer import print_expr

    from ..ir import walk_stmts

    env = _scalar_env(kernel)
    reassigned = {s.name for s in walk_stmts(kernel.body) if isinstance(s, Assign)}
    found: list[Accumulation] = []
    decls: dict[str, tuple[Decl, int]] = {}

    def walk(body: tuple[Stmt, ...], loops: list[For]) -> None:
        for s in body:
            if isinstance(s, Decl):
                decls[s.name] = (s, len(loops))
                r = expr_range(s.init, env) if s.init is not None else (0, 0)
                if r is not None and s.name not in reassigned and r != (s.type.min, s.type.max):
                    env[s.name] = r  # a value that is never reassigned keeps its initial range
            elif isinstance(s, For):
                walk(s.body, loops + [s])
            elif isinstance(s, If):
                walk(s.then, loops)
                walk(s.orelse, loops)
            term = _update_term(s)
            if term is None or s.name not in decls or not decls[s.name][0].type.is_data:
                continue
            d, depth = decls[s.name]
            red = loops[depth:]
            if not red:
                continue
            tr = expr_range(term, env)
            if tr is None or tr == (term.type.min, term.type.max):
                continue  # nothing known about the term: no bound to state
            count = sp.Integer(1)
            for f in red:
                count *= _trip(f)
            init = expr_range(d.init, env) if d.init is not None else (0, 0)
            if init == (d.type.min, d.type.max):
                init = None
            found.append(Accumulation(s.name, d.type, s.loc, print_expr(term), tr, sp.simplify(count),
                                      tuple(f.var for f in red), init, any(f.has("wraps") for f in red)))

    walk(kernel.body, [])
    # an accumulator whose range is known is not a source of unbounded ranges for later terms
    return found


def check_overflow(kernel: Kernel, sizes: Mapping[str, int], source: str | None = None) -> list[Accumulation]:
    """Refuse (KgenError at the update) an accumulation whose terms can leave its type at ``sizes``;
    returns every accumulation (for reports).  No-op on sizes that are not all known."""
    accs = accumulations(kernel)
    if not all(n in sizes for n in kernel.sizes):
        return accs
    for a in accs:
        n = int(_subs(a.count, sizes))
        lo, hi = a.sum_range(sizes)
        if a.type.min <= lo and hi <= a.type.max:
            continue
        if a.wraps_ok or _POLICY["allow"]:
            continue
        ext = ", ".join(f"{k} = {v}" for k, v in sizes.items() if sp.Symbol(k, integer=True) in a.count.free_symbols)
        raise KgenError(
            f"{a.type} accumulator '{a.name}' can overflow: {n} updates of '{a.term}' (each in "
            f"[{a.term_range[0]}, {a.term_range[1]}]) sum to a value in [{lo}, {hi}], outside {a.type} "
            f"[{a.type.min}, {a.type.max}]" + (f" at {ext}" if ext else "")
            + f"; at most {a.limit()} updates ({sp.sstr(a.count)} <= {a.limit()}) are safe",
            a.loc, source,
            notes=(f"{a.type} arithmetic wraps in kgen (two's complement), so the result would be defined "
                   f"but wrong",
                   "split the reduction, use a wider accumulator, annotate the reduction loop with @wraps "
                   "if wrapping is intended, or pass --allow-overflow"))
    return accs


__all__ = ["Accumulation", "accumulations", "check_overflow", "expr_range", "set_policy", "policy"]
