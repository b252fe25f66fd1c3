"""Generic IR rewriting: bottom-up maps, substitution and index simplification."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from .ir import (IDX, Alloc, Assign, Bin, Call, Cast, Const, Decl, Expr, For, If, Kernel, Load, Stmt,
                 Store, Un, Var, View)
from . import semantics as sem


def map_expr(e: Expr, fn: Callable[[Expr], Expr], memo: dict[int, Expr] | None = None) -> Expr:
    """Rebuild ``e`` bottom-up, applying ``fn`` to every node after its children.

    A node whose children come back unchanged (the same objects) is not copied.  ``memo`` (object
    id -> result) lets one pass over a body visit a shared subtree once; ``fn`` must then be a
    pure function of the node, and the trees must stay alive while the memo is in use."""
    key = id(e)
    if memo is not None:
        hit = memo.get(key)
        if hit is not None:
            return hit
    t = type(e)
    if t is Load:
        index = tuple([map_expr(i, fn, memo) for i in e.index])
        if any(x is not y for x, y in zip(index, e.index)):
            e = Load(e.buf, index, e.type, e.loc)
    elif t is Bin:
        a, b = map_expr(e.a, fn, memo), map_expr(e.b, fn, memo)
        if a is not e.a or b is not e.b:
            e = Bin(e.op, a, b, e.type, e.loc)
    elif t is Un or t is Cast:
        a = map_expr(e.a, fn, memo)
        if a is not e.a:
            e = replace(e, a=a)
    elif t is Call:
        args = tuple([map_expr(x, fn, memo) for x in e.args])
        if any(x is not y for x, y in zip(args, e.args)):
            e = Call(e.fn, args, e.type, e.flags, e.loc)
    out = fn(e)
    if memo is not None:
        memo[key] = out
    return out


def _same(xs: tuple, ys: tuple) -> bool:
    return all(x is y for x, y in zip(xs, ys))


def map_stmt_exprs(s: Stmt, fn: Callable[[Expr], Expr], memo: dict[int, Expr] | None = None) -> Stmt:
    """Apply ``fn`` (bottom-up) to every expression of ``s`` and its nested statements; a
    statement whose expressions and bodies all come back unchanged is returned as is."""
    def m(e: Expr) -> Expr:
        return map_expr(e, fn, memo)

    def ms(es: tuple[Expr, ...]) -> tuple[Expr, ...]:
        out = tuple([m(e) for e in es])
        return es if _same(out, es) else out

    t = type(s)
    if t is Assign:
        value = m(s.value)
        return s if value is s.value else replace(s, value=value)
    if t is Store:
        index, value = ms(s.index), m(s.value)
        return s if index is s.index and value is s.value else replace(s, index=index, value=value)
    if t is For:
        lo, hi, body = m(s.lo), m(s.hi), map_body_exprs(s.body, fn, memo)
        attrs = tuple(a if not a.args else replace(a, args=ms(a.args)) for a in s.attrs)
        if lo is s.lo and hi is s.hi and body is s.body and _same(attrs, s.attrs):
            return s
        return replace(s, lo=lo, hi=hi, body=body, attrs=attrs)
    if t is Decl:
        if s.init is None:
            return s
        init = m(s.init)
        return s if init is s.init else replace(s, init=init)
    if t is Alloc:
        shape = ms(s.shape)
        return s if shape is s.shape else replace(s, shape=shape)
    if t is View:
        shape, strides, offset = ms(s.shape), ms(s.strides), m(s.offset)
        if shape is s.shape and strides is s.strides and offset is s.offset:
            return s
        return replace(s, shape=shape, strides=strides, offset=offset)
    if t is If:
        cond, then, orelse = m(s.cond), map_body_exprs(s.then, fn, memo), map_body_exprs(s.orelse, fn, memo)
        if cond is s.cond and then is s.then and orelse is s.orelse:
            return s
        return replace(s, cond=cond, then=then, orelse=orelse)
    raise TypeError(s)


def map_body_exprs(body: tuple[Stmt, ...], fn: Callable[[Expr], Expr],
                   memo: dict[int, Expr] | None = None) -> tuple[Stmt, ...]:
    """Apply ``fn`` (bottom-up) to every expression of ``body``.  ``fn`` must be a pure function
    of the node: a subtree shared by several statements (common in unrolled code) is rewritten
    once and its result shared."""
    if memo is None:
        memo = {}
    out = tuple([map_stmt_exprs(s, fn, memo) for s in body])
    return body if _same(out, body) else out


def _substituter(env: Mapping[str, Expr]) -> Callable[[Expr], Expr]:
    def fn(x: Expr) -> Expr:
        if type(x) is Var and x.name in env and x.type == IDX:
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
