"""Generic IR rewriting: bottom-up maps, substitution and index simplification."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from .ir import (IDX, Alloc, Assign, Bin, Call, Cast, Const, Decl, Expr, For, If, Kernel, Load, Stmt,
                 Store, Un, Var, View, children)
from . import semantics as sem
from .memo import per_object


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
    return _map_stmt(s, lambda e: map_expr(e, fn, memo))


def map_body_exprs(body: tuple[Stmt, ...], fn: Callable[[Expr], Expr],
                   memo: dict[int, Expr] | None = None, only: frozenset[str] | None = None
                   ) -> tuple[Stmt, ...]:
    """Apply ``fn`` (bottom-up) to every expression of ``body``.  ``fn`` must be a pure function
    of the node: a subtree shared by several statements (common in unrolled code) is rewritten
    once and its result shared.  With ``only`` (operator and function names), ``fn`` promises to
    change nothing but such nodes, and expressions without any are not visited."""
    memo = {} if memo is None else memo
    if only is None:
        return _map_body(body, lambda e: map_expr(e, fn, memo))
    return _map_body(body, lambda e: map_expr(e, fn, memo) if only & _operators(e) else e)


@per_object
def _operators(e: Expr) -> frozenset[str]:
    """Names of the operators and functions in the subtree of ``e``."""
    t = type(e)
    own = e.op if t is Bin or t is Un else e.fn if t is Call else None
    kids = [_operators(c) for c in children(e)]
    out = frozenset().union(*kids) if kids else _NO_NAMES
    if own is not None and own not in out:
        out = out | {own}
    return out


def _map_body(body: tuple[Stmt, ...], m: Callable[[Expr], Expr]) -> tuple[Stmt, ...]:
    out = tuple([_map_stmt(s, m) for s in body])
    return body if _same(out, body) else out


def _map_stmt(s: Stmt, m: Callable[[Expr], Expr]) -> Stmt:
    """``s`` with every top-level expression (of it and its nested statements) passed through ``m``."""
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
        lo, hi, body = m(s.lo), m(s.hi), _map_body(s.body, m)
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
        cond, then, orelse = m(s.cond), _map_body(s.then, m), _map_body(s.orelse, m)
        if cond is s.cond and then is s.then and orelse is s.orelse:
            return s
        return replace(s, cond=cond, then=then, orelse=orelse)
    raise TypeError(s)


_NO_NAMES: frozenset[str] = frozenset()


@per_object
def _props(e: Expr) -> tuple[frozenset[str], bool]:
    """(index variables ``e`` reads, whether simplify_index leaves all of it unchanged)."""
    t = type(e)
    if t is Var:
        names = frozenset((e.name,)) if e.type == IDX else _NO_NAMES
        clean = True
    elif t is Const:
        names, clean = _NO_NAMES, True
    else:
        kids = [_props(c) for c in children(e)]
        names = frozenset().union(*(k[0] for k in kids)) if kids else _NO_NAMES
        clean = all(k[1] for k in kids) and simplify_index(e) is e
    return names, clean


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
    """:func:`substitute` in every expression of ``body``; subtrees that read none of the
    substituted variables and are already simplified are kept as they are (not visited)."""
    keys = frozenset(env)
    fn = _substituter(env)
    memo: dict[int, Expr] = {}

    def skip(x: Expr) -> Expr | None:
        names, clean = _props(x)
        return x if clean and not (names & keys) else None

    def sub(e: Expr) -> Expr:
        hit = memo.get(id(e))
        if hit is None:
            kept = skip(e)
            hit = memo[id(e)] = kept if kept is not None else _rebuild(e, sub, fn)
        return hit

    return _map_body(body, sub)


def _rebuild(e: Expr, sub: Callable[[Expr], Expr], fn: Callable[[Expr], Expr]) -> Expr:
    """``e`` with its children passed through ``sub``, then ``fn`` applied to it."""
    t = type(e)
    if t is Load:
        index = tuple([sub(i) for i in e.index])
        if any(x is not y for x, y in zip(index, e.index)):
            e = Load(e.buf, index, e.type, e.loc)
    elif t is Bin:
        a, b = sub(e.a), sub(e.b)
        if a is not e.a or b is not e.b:
            e = Bin(e.op, a, b, e.type, e.loc)
    elif t is Un or t is Cast:
        a = sub(e.a)
        if a is not e.a:
            e = replace(e, a=a)
    elif t is Call:
        args = tuple([sub(x) for x in e.args])
        if any(x is not y for x, y in zip(args, e.args)):
            e = Call(e.fn, args, e.type, e.flags, e.loc)
    return fn(e)


def simplify_index(e: Expr) -> Expr:
    """Local constant folding of index arithmetic (x+0, x*1, x*0, c1 op c2); ``e`` itself when
    nothing folds."""
    t = type(e)
    if (t is not Bin and t is not Call) or e.type != IDX:
        return e
    if t is Call:
        if e.fn in ("min", "max") and all(type(a) is Const for a in e.args):
            vals = [a.value for a in e.args]  # type: ignore[union-attr]
            return Const(min(vals) if e.fn == "min" else max(vals), IDX, e.loc)
        return e
    a, b, op = e.a, e.b, e.op
    ka, kb = type(a) is Const, type(b) is Const
    if not ka and not kb:
        return e
    if ka and kb and op in ("add", "sub", "mul", "div", "mod"):
        return Const(sem.apply_bin(op, a.value, b.value, IDX), IDX, e.loc)
    ca = a.value if ka and a.type == IDX else None
    cb = b.value if kb and b.type == IDX else None
    if op == "add":
        if ca == 0:
            return b
        if cb == 0:
            return a
    if op == "sub" and cb == 0:
        return a
    if op == "mul":
        if ca == 0 or cb == 0:
            return Const(0, IDX, e.loc)
        if ca == 1:
            return b
        if cb == 1:
            return a
    if op == "div" and cb == 1:
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

    return map_body_exprs(body, fn, only=frozenset({"requant"}))
