"""Exact narrowing of 64-bit arithmetic that provably fits in 32 bits (specialised kernels).

On a 32-bit core every ``i64`` addition costs three or four instructions and a division a
library routine.  Two rewrites keep every result bit-identical:

* :func:`narrow_accumulators` — an ``i64`` local that is only ever updated by ``x = x ± e`` becomes
  ``i32`` when its initial value, every term ``e`` and every partial sum fit in ``i32``.  Ranges are
  computed in program order over constant trip counts (a loop of T iterations adding terms in
  [a, b] moves the sum by at most T·a … T·b), starting from the declared ranges of the scalar
  parameters and the ranges of the element types; reads of the local become ``i64(x)``;
* :func:`narrow_divisions` — ``i64(a) / i64(b)`` with 32-bit ``a``, ``b`` is ``i64(a / b)`` unless
  ``a`` may be the most negative ``i32`` while ``b`` may be −1 (the one quotient that does not fit).
"""
from __future__ import annotations

from dataclasses import replace

from ..interp import eval_expr
from ..ir import (I32, I64, Assign, Bin, Cast, Const, Decl, Expr, For, If, Kernel, ScalarParam, Stmt, Var,
                  walk_expr, walk_stmts)
from ..ranges import Range, _Bottom, expr_range
from ..rewrite import map_body_exprs

FULL64 = (I64.min, I64.max)


def _fits32(r: Range | None) -> bool:
    return r is not None and I32.min <= r[0] and r[1] <= I32.max


def _update_term(s: Assign) -> tuple[Expr, int] | None:
    """``x = x + e`` → (e, +1), ``x = x - e`` → (e, -1), when ``e`` does not read ``x``."""
    v = s.value
    if isinstance(v, Bin) and v.op in ("add", "sub") and v.a == Var(s.name, v.type):
        if not any(isinstance(x, Var) and x.name == s.name for x in walk_expr(v.b)):
            return v.b, (1 if v.op == "add" else -1)
    return None


class _Ranges:
    """Program-order ranges; ``bound[x]``: the range every value of accumulator ``x`` stays in."""

    def __init__(self, kernel: Kernel) -> None:
        self.env: dict[str, Range] = {}
        for p in kernel.params:
            if isinstance(p, ScalarParam) and p.lo is not None and p.hi is not None:
                try:
                    self.env[p.name] = (eval_expr(p.lo, {}), eval_expr(p.hi, {}) - 1)
                except KeyError:
                    pass
        self.bound: dict[str, Range] = {}
        self.bad: set[str] = set()  # locals assigned other than by accumulation

    def rng(self, e: Expr) -> Range | None:
        return _range(e, self.env)

    def widen(self, name: str, r: Range | None) -> None:
        b = self.bound.get(name)
        if r is None:
            self.bound[name] = FULL64
        else:
            self.bound[name] = r if b is None else (min(b[0], r[0]), max(b[1], r[1]))

    def run(self, body: tuple[Stmt, ...]) -> None:
        for s in body:
            if isinstance(s, Decl) and s.type.is_data and s.type.lanes == 1:
                r = self.rng(s.init) if s.init is not None else (0, 0)
                self.env[s.name] = r if r is not None else (s.type.min, s.type.max)
                self.widen(s.name, self.env[s.name])
            elif isinstance(s, Assign) and s.value.type.is_data:
                term = _update_term(s)
                r = self.rng(term[0]) if term else None
                cur = self.env.get(s.name)
                if term is None or r is None or cur is None:
                    self.bad.add(s.name)
                    full = s.value.type
                    self.env[s.name] = (full.min, full.max)
                else:
                    lo, hi = (r if term[1] > 0 else (-r[1], -r[0]))
                    self.env[s.name] = (cur[0] + lo, cur[1] + hi)
                self.widen(s.name, self.env[s.name])
            elif isinstance(s, For):
                self.loop(s)
            elif isinstance(s, If):
                before = dict(self.env)
                self.run(s.then)
                after_then = dict(self.env)
                self.env = dict(before)
                self.run(s.orelse)
                for k, v in after_then.items():
                    w = self.env.get(k, v)
                    self.env[k] = (min(v[0], w[0]), max(v[1], w[1]))

    def loop(self, s: For) -> None:
        try:
            trip = eval_expr(s.hi, {}) - eval_expr(s.lo, {})
            lo = eval_expr(s.lo, {})
        except KeyError:
            trip, lo = -1, 0
        outer = {x.name for x in walk_stmts(s.body) if isinstance(x, Assign)} - \
            {x.name for x in walk_stmts(s.body) if isinstance(x, Decl)}
        if trip < 0:
            self.bad |= outer
            for name in outer:
                self.widen(name, None)
            return
        if trip == 0:
            return
        before = {n: self.env[n] for n in outer if n in self.env}
        saved = {n: self.bound.pop(n, None) for n in outer}
        # one iteration from zero gives the change of each accumulator per iteration (``d``) and the
        # extremes of its partial sums within an iteration (``p``), both relative to its start
        for n in outer:
            self.env[n] = (0, 0)
            self.bound[n] = (0, 0)
        self.env[s.var] = (lo, lo + trip - 1)
        self.run(s.body)
        for n in outer:
            d, p, b = self.env.get(n), self.bound.get(n), before.get(n)
            if saved[n] is not None:
                self.bound[n] = saved[n]  # type: ignore[assignment]
            else:
                self.bound.pop(n, None)
            if d is None or p is None or b is None or n in self.bad:
                self.bad.add(n)
                self.env[n] = FULL64
                self.widen(n, None)
                continue
            self.env[n] = (b[0] + trip * d[0], b[1] + trip * d[1])
            self.widen(n, (b[0] + (trip - 1) * min(d[0], 0) + min(p[0], 0),
                           b[1] + (trip - 1) * max(d[1], 0) + max(p[1], 0)))


def narrow_accumulators(kernel: Kernel) -> Kernel:
    """See the module docstring."""
    rs = _Ranges(kernel)
    rs.run(kernel.body)
    decls = {s.name: s for s in walk_stmts(kernel.body) if isinstance(s, Decl)}
    names = {n for n, d in decls.items() if d.type == I64 and n not in rs.bad and _fits32(rs.bound.get(n))}
    if not names:
        return kernel
    terms_ok = set(names)
    for s in walk_stmts(kernel.body):
        if isinstance(s, Assign) and s.name in names:
            term = _update_term(s)
            if term is None:
                terms_ok.discard(s.name)
    names = terms_ok
    if not names:
        return kernel

    def narrow(e: Expr) -> Expr:
        """``e`` (an i64 term whose values fit i32) as an i32 expression."""
        return _as32(e) or Cast(e, I32)

    def expr(e: Expr) -> Expr:
        if isinstance(e, Var) and e.name in names and e.type == I64:
            return Cast(Var(e.name, I32), I64)
        return e

    def stmt(s: Stmt) -> Stmt:
        if isinstance(s, Decl) and s.name in names:
            init = narrow(s.init) if s.init is not None else None
            return replace(s, type=I32, init=init)
        if isinstance(s, Assign) and s.name in names:
            term, sign = _update_term(s)  # type: ignore[misc]
            return Assign(s.name, Bin("add" if sign > 0 else "sub", Var(s.name, I32), narrow(term), I32), s.loc)
        if isinstance(s, For):
            return replace(s, body=tuple(stmt(x) for x in s.body))
        if isinstance(s, If):
            return replace(s, then=tuple(stmt(x) for x in s.then), orelse=tuple(stmt(x) for x in s.orelse))
        return s

    body = map_body_exprs(tuple(stmt(s) for s in kernel.body), expr)
    return replace(kernel, body=body)


def narrow_divisions(kernel: Kernel) -> Kernel:
    """See the module docstring (uses the same program-order ranges)."""
    rs = _Ranges(kernel)
    rs.run(kernel.body)
    env = {**rs.env, **rs.bound}

    def fn(e: Expr) -> Expr:
        if isinstance(e, Bin) and e.op == "div" and e.type == I64:
            a, b = _as32(e.a), _as32(e.b)
            if a is not None and b is not None:
                ra, rb = _range(a, env), _range(b, env)
                if ra is not None and rb is not None and not (ra[0] <= I32.min and rb[0] <= -1 <= rb[1]):
                    return Cast(Bin("div", a, b, I32), I64)
        return e

    return replace(kernel, body=map_body_exprs(kernel.body, fn, only=frozenset({"div"})))


def _as32(e: Expr) -> Expr | None:
    """A 32-bit expression whose i64 conversion is ``e`` (None when there is none at hand)."""
    if isinstance(e, Cast) and e.type == I64 and e.a.type == I32:
        return e.a
    if isinstance(e, Const) and e.type == I64 and I32.min <= e.value <= I32.max:
        return Const(e.value, I32)
    return None


def _fold(e: Expr) -> Expr:
    """Conversions of index constants (specialised sizes such as ``i32(E)``) as data constants."""
    if isinstance(e, Cast) and isinstance(e.a, Const) and e.type.is_data:
        return Const(e.type.wrap(e.a.value), e.type)
    return e


def _range(e: Expr, env: dict[str, Range]) -> Range | None:
    from ..rewrite import map_expr

    try:
        return expr_range(map_expr(e, _fold), env)
    except _Bottom:
        return None


__all__ = ["narrow_accumulators", "narrow_divisions"]
