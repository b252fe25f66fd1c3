"""Generic IR rewriting: bottom-up maps, substitution and index simplification."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from .ir import (IDX, Alloc, Assign, Bin, Call, Cast, Const, Decl, Expr, For, If, Kernel, Load, Stmt,
                 Store, Un, Var, View)
from . import semantics as sem


def map_expr(e: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """Rebuild ``e`` bottom-up, applying ``fn`` to every node after its children.

    A node whose children come back unchanged (the same objects) is not copied."""
    if isinstance(e, Load):
        index = tuple(map_expr(i, fn) for i in e.index)
        if any(x is not y for x, y in zip(index, e.index)):
            e = replace(e, index=index)
    elif isinstance(e, Bin):
        a, b = map_expr(e.a, fn), map_expr(e.b, fn)
        if a is not e.a or b is not e.b:
            e = replace(e, a=a, b=b)
    elif isinstance(e, (Un, Cast)):
        a = map_expr(e.a, fn)
        if a is not e.a:
            e = replace(e, a=a)
    elif isinstance(e, Call):
        args = tuple(map_expr(x, fn) for x in e.args)
        if any(x is not y for x, y in zip(args, e.args)):
            e = replace(e, args=args)
    return fn(e)


def map_stmt_exprs(s: Stmt, fn: Callable[[Expr], Expr]) -> Stmt:
    """Apply ``fn`` (bottom-up) to every expression of ``s`` and its nested statements."""
    m = lambda e: map_expr(e, fn)  # noqa: E731
    if isinstance(s, For):
        return replace(s, lo=m(s.lo), hi=m(s.hi), body=map_body_exprs(s.body, fn),
                       attrs=tuple(replace(a, args=tuple(m(x) for x in a.args)) for a in s.attrs))
    if isinstance(s, Decl):
        return replace(s, init=m(s.init)) if s.init is not None else s
    if isinstance(s, Alloc):
        return replace(s, shape=tuple(m(d) for d in s.shape))
    if isinstance(s, View):
        return replace(s, shape=tuple(m(d) for d in s.shape), strides=tuple(m(d) for d in s.strides),
                       offset=m(s.offset))
    if isinstance(s, Assign):
        return replace(s, value=m(s.value))
    if isinstance(s, Store):
        return replace(s, index=tuple(m(i) for i in s.index), value=m(s.value))
    if isinstance(s, If):
        return replace(s, cond=m(s.cond), then=map_body_exprs(s.then, fn), orelse=map_body_exprs(s.orelse, fn))
    raise TypeError(s)


def map_body_exprs(body: tuple[Stmt, ...], fn: Callable[[Expr], Expr]) -> tuple[Stmt, ...]:
    return tuple(map_stmt_exprs(s, fn) for s in body)


def _substituter(env: Mapping[str, Expr]) -> Callable[[Expr], Expr]:
    def fn(x: Expr) -> Expr:
        if isinstance(x, Var) and x.name in env and x.type == IDX:
            return env[x.name]
        return simplify_index(x)
    return fn


def substitute(e: Expr, env: Mapping[str, Expr]) -> Expr:
    """Replace index variables (loop variables, sizes) by expressions, then simplify."""
    return map_expr(e, _substituter(env))


def substitute_body(body: tuple[Stmt, ...], env: Mapping[str, Expr]) -> tuple[Stmt, ...]:
    return map_body_exprs(body, _substituter(env))


def simplify_index(e: Expr) -> Expr:
    """Local constant folding of index arithmetic (x+0, x*1, x*0, c1 op c2)."""
    if not isinstance(e, (Bin, Call)) or e.type != IDX:
        return e
    if isinstance(e, Call):
        if e.fn in ("min", "max") and all(isinstance(a, Const) for a in e.args):
            vals = [a.value for a in e.args]  # type: ignore[union-attr]
            return Const(min(vals) if e.fn == "min" else max(vals), IDX, e.loc)
        return e
    a, b = e.a, e.b
    if isinstance(a, Const) and isinstance(b, Const) and e.op in ("add", "sub", "mul", "div", "mod"):
        return Const(sem.apply_bin(e.op, a.value, b.value, IDX), IDX, e.loc)
    if e.op == "add":
        if a == Const(0, IDX):
            return b
        if b == Const(0, IDX):
            return a
    if e.op == "sub" and b == Const(0, IDX):
        return a
    if e.op == "mul":
        if Const(0, IDX) in (a, b):
            return Const(0, IDX, e.loc)
        if a == Const(1, IDX):
            return b
        if b == Const(1, IDX):
            return a
    if e.op == "div" and b == Const(1, IDX):
        return a
    return e


def replace_body(kernel: Kernel, body: tuple[Stmt, ...]) -> Kernel:
    return replace(kernel, body=body)


def expand_requant(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
    """Replace ``requant`` by its definition, so its parts can be matched to instructions:
    ``i8(clip((acc * mul [+ rounding]) >> shift, -128, 127))`` with 32-bit wrapping arithmetic."""
    from .ir import BOOL, I8, I32

    def fn(e: Expr) -> Expr:
        if not (isinstance(e, Call) and e.fn == "requant"):
            return e
        acc, mul, shift = e.args
        t: Expr = Bin("mul", acc, mul, I32)
        if e.flags[0] == "nearest":
            one = Const(1, I32)
            rnd = Call("select", (Bin("gt", shift, Const(0, I32), BOOL),
                                  Bin("shl", one, Bin("sub", shift, one, I32), I32), Const(0, I32)), I32)
            t = Bin("add", t, rnd, I32)
        clipped = Call("clip", (Bin("shr", t, shift, I32), Const(-128, I32), Const(127, I32)), I32)
        return Cast(clipped, I8, e.loc)

    return map_body_exprs(body, fn)
