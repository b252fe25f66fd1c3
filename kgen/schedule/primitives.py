"""The schedule primitives (see the package docstring for before/after pictures)."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from ..interp import eval_expr
from ..ir import (IDX, Alloc, Assign, Bin, Const, Decl, Expr, For, If, Kernel, Load, Stmt, Store, Var,
                  View, stmt_exprs, sub_bodies, walk_expr, walk_stmts)
from ..printer import print_expr
from ..rewrite import map_body_exprs, map_expr, simplify_index, substitute_body


class ScheduleError(Exception):
    """A primitive does not apply; the message names the primitive and the loop."""


# ------------------------------------------------------------------------------------- helpers


def _names(body: tuple[Stmt, ...]) -> set[str]:
    out = set()
    for s in walk_stmts(body):
        if isinstance(s, For):
            out.add(s.var)
        elif isinstance(s, (Decl, Alloc, View)):
            out.add(s.name)
    return out


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name = f"{base}{i}"
        i += 1
    taken.add(name)
    return name


def loop(kernel: Kernel, var: str) -> For:
    """The loop over ``var`` (ScheduleError if absent)."""
    for s in walk_stmts(kernel.body):
        if isinstance(s, For) and s.var == var:
            return s
    raise ScheduleError(f"no loop over '{var}' in kernel {kernel.name}")


def _replace_loop(body: tuple[Stmt, ...], var: str, fn: Callable[[For], tuple[Stmt, ...]]) -> tuple[tuple[Stmt, ...], bool]:
    out: list[Stmt] = []
    done = False
    for s in body:
        if isinstance(s, For) and s.var == var:
            new = fn(s)
            if new is None:  # this occurrence does not have the required shape: keep it
                out.append(s)
            else:
                out.extend(new)
                done = True
            continue
        if isinstance(s, For):
            nb, d = _replace_loop(s.body, var, fn)
            s = replace(s, body=nb) if d else s
            done = done or d
        elif isinstance(s, If):
            nt, d1 = _replace_loop(s.then, var, fn)
            ne, d2 = _replace_loop(s.orelse, var, fn)
            s = replace(s, then=nt, orelse=ne) if d1 or d2 else s
            done = done or d1 or d2
        out.append(s)
    return tuple(out), done


def _apply(kernel: Kernel, var: str, fn: Callable[[For], tuple[Stmt, ...] | None]) -> Kernel:
    """Rewrite every loop over ``var`` (after a split, a loop may exist in the main nest and in tails).

    ``fn`` may return None for an occurrence it does not apply to; at least one must apply.
    """
    if not any(isinstance(s, For) and s.var == var for s in walk_stmts(kernel.body)):
        raise ScheduleError(f"no loop over '{var}' in kernel {kernel.name}")
    errors: list[ScheduleError] = []

    def guarded(lp: For) -> tuple[Stmt, ...] | None:
        try:
            return fn(lp)
        except ScheduleError as exc:
            errors.append(exc)
            return None

    body, done = _replace_loop(kernel.body, var, guarded)
    if not done:
        raise errors[0] if errors else ScheduleError(f"no loop over '{var}' in kernel {kernel.name}")
    return replace(kernel, body=body)


def _const(e: Expr) -> int | None:
    return e.value if isinstance(e, Const) else None


def _add(a: Expr, b: Expr) -> Expr:
    return simplify_index(Bin("add", a, b, IDX))


def _mul(a: Expr, b: Expr) -> Expr:
    return simplify_index(Bin("mul", a, b, IDX))


def _sub(a: Expr, b: Expr) -> Expr:
    return simplify_index(Bin("sub", a, b, IDX))


def _div(a: Expr, b: Expr) -> Expr:
    return simplify_index(Bin("div", a, b, IDX))


# ---------------------------------------------------------------------------------- primitives


def specialize(kernel: Kernel, sizes: Mapping[str, int]) -> Kernel:
    """Replace size symbols by constants everywhere (shapes, strides, bounds, indices)."""
    if not kernel.sizes and not kernel.where:
        return kernel  # already specialised (schedules call this on their input again)
    for w in kernel.where:
        env = dict(sizes)
        if all(n in env for n in kernel.sizes) and not eval_expr(w, env):
            raise ScheduleError(f"specialize: sizes {dict(sizes)} violate '{print_expr(w)}'")
    env = {n: Const(int(v), IDX) for n, v in sizes.items()}

    def sub(e: Expr) -> Expr:
        return map_expr(e, lambda x: env[x.name] if isinstance(x, Var) and x.name in env and x.type == IDX
                        else simplify_index(x))

    params = []
    for p in kernel.params:
        if hasattr(p, "shape"):
            p = replace(p, shape=tuple(sub(d) for d in p.shape),  # type: ignore[arg-type]
                        strides=tuple(sub(s) for s in p.strides) if p.strides else None)  # type: ignore[union-attr]
        params.append(p)
    body = substitute_body(kernel.body, env)
    where = []
    for w in (sub(w) for w in kernel.where):
        if any(isinstance(x, Var) for x in walk_expr(w)):
            where.append(w)
        elif not eval_expr(w, {}):  # constant now: holds (checked above) or is violated
            raise ScheduleError(f"specialize: sizes {dict(sizes)} violate '{print_expr(w)}'")
    return replace(kernel, params=tuple(params), body=body, where=tuple(where))


def split(kernel: Kernel, var: str, factor: int, tail: str = "cut",
          names: tuple[str, str, str] | None = None) -> Kernel:
    """Split loop ``var`` by ``factor`` (tail policy: perfect | guard | cut)."""
    if factor < 1:
        raise ScheduleError(f"split({var}): factor must be >= 1")
    if tail not in ("perfect", "guard", "cut"):
        raise ScheduleError(f"split({var}): unknown tail policy '{tail}'")
    taken = _names(kernel.body) | set(kernel.sizes) | {p.name for p in kernel.params}
    outer_n, inner_n, tail_n = names or (_fresh(f"{var}_o", taken), _fresh(f"{var}_i", taken),
                                         _fresh(f"{var}_t", taken))
    f = Const(factor, IDX)

    def rewrite(lp: For) -> tuple[Stmt, ...]:
        trip = _sub(lp.hi, lp.lo)
        trip_c = _const(trip)
        if tail == "perfect":
            if trip_c is None or trip_c % factor:
                raise ScheduleError(f"split({var}, {factor}, perfect): trip count {print_expr(trip)} "
                                    f"is not provably a multiple of {factor}")
        v = _add(lp.lo, _add(_mul(f, Var(outer_n, IDX)), Var(inner_n, IDX)))
        inner_body = substitute_body(lp.body, {var: v})
        if tail == "guard":
            n_outer = _div(_add(trip, Const(factor - 1, IDX)), f)
            cond = Bin("lt", v, lp.hi, _bool())
            inner = For(inner_n, Const(0, IDX), f, (If(cond, inner_body),), (), lp.loc)
            return (For(outer_n, Const(0, IDX), n_outer, (inner,), lp.attrs, lp.loc),)
        n_outer = _div(trip, f)
        inner = For(inner_n, Const(0, IDX), f, inner_body, (), lp.loc)
        out: list[Stmt] = []
        if _const(n_outer) != 0:
            out.append(For(outer_n, Const(0, IDX), n_outer, (inner,), lp.attrs, lp.loc))
        if tail == "cut" and not (trip_c is not None and trip_c % factor == 0):
            start = _add(lp.lo, _mul(f, n_outer))
            tail_body = substitute_body(lp.body, {var: Var(tail_n, IDX)})
            out.append(For(tail_n, start, lp.hi, tail_body, (), lp.loc))
        return tuple(out)

    return _apply(kernel, var, rewrite)


def _bool():
    from ..ir import BOOL

    return BOOL


def _written(body: tuple[Stmt, ...]) -> tuple[set[str], set[str]]:
    """(scalars assigned, buffers stored) anywhere in ``body``."""
    scalars, bufs = set(), set()
    for s in walk_stmts(body):
        if isinstance(s, Assign):
            scalars.add(s.name)
        elif isinstance(s, Store):
            bufs.add(s.buf)
    return scalars, bufs


def _read_buffers(body: tuple[Stmt, ...]) -> set[str]:
    out = set()
    for s in walk_stmts(body):
        for e in stmt_exprs(s):
            for x in walk_expr(e):
                if isinstance(x, Load):
                    out.add(x.buf)
    return out


def reorder(kernel: Kernel, outer: str, inner: str) -> Kernel:
    """Interchange two perfectly nested loops whose iterations are independent."""

    def rewrite(lp: For) -> tuple[Stmt, ...]:
        if len(lp.body) != 1 or not isinstance(lp.body[0], For) or lp.body[0].var != inner:
            raise ScheduleError(f"reorder({outer}, {inner}): '{inner}' is not the only statement of '{outer}'")
        il = lp.body[0]
        for e in (il.lo, il.hi):
            if any(isinstance(x, Var) and x.name == outer for x in walk_expr(e)):
                raise ScheduleError(f"reorder({outer}, {inner}): bounds of '{inner}' depend on '{outer}'")
        declared = _names(il.body)
        scalars, bufs = _written(il.body)
        if scalars - declared:
            raise ScheduleError(f"reorder({outer}, {inner}): the body updates '{sorted(scalars - declared)[0]}' "
                                f"across iterations")
        if bufs & _read_buffers(il.body) - declared:
            raise ScheduleError(f"reorder({outer}, {inner}): the body reads a buffer it writes")
        return (replace(il, body=(replace(lp, body=il.body),)),)

    return _apply(kernel, outer, rewrite)


def _rename_locals(body: tuple[Stmt, ...], suffix: str) -> tuple[Stmt, ...]:
    """Give every local declared in ``body`` (scalars, arrays, views) a new name."""
    names = {s.name for s in walk_stmts(body) if isinstance(s, (Decl, Alloc, View))}
    if not names:
        return body

    def ren_expr(e: Expr) -> Expr:
        if isinstance(e, Var) and e.name in names:
            return replace(e, name=e.name + suffix)
        if isinstance(e, Load) and e.buf in names:
            return replace(e, buf=e.buf + suffix)
        return e

    def ren(s: Stmt) -> Stmt:
        if isinstance(s, (Decl, Alloc)) and s.name in names:
            s = replace(s, name=s.name + suffix)
        elif isinstance(s, View):
            s = replace(s, name=s.name + suffix if s.name in names else s.name,
                        base=s.base + suffix if s.base in names else s.base)
        elif isinstance(s, Assign) and s.name in names:
            s = replace(s, name=s.name + suffix)
        elif isinstance(s, Store) and s.buf in names:
            s = replace(s, buf=s.buf + suffix)
        if isinstance(s, For):
            return replace(s, body=tuple(ren(x) for x in s.body))
        if isinstance(s, If):
            return replace(s, then=tuple(ren(x) for x in s.then), orelse=tuple(ren(x) for x in s.orelse))
        return s

    return map_body_exprs(tuple(ren(s) for s in body), ren_expr)


def _trip(lp: For, prim: str) -> tuple[int, int]:
    lo, hi = _const(lp.lo), _const(lp.hi)
    if lo is None or hi is None:
        raise ScheduleError(f"{prim}({lp.var}): bounds {print_expr(lp.lo)}..{print_expr(lp.hi)} are not "
                            f"constant (specialize the kernel first)")
    return lo, hi


def unroll(kernel: Kernel, var: str) -> Kernel:
    """Replace a constant-trip loop by copies of its body (locals renamed per copy)."""

    def rewrite(lp: For) -> tuple[Stmt, ...]:
        lo, hi = _trip(lp, "unroll")
        out: list[Stmt] = []
        for i in range(lo, hi):
            copy = substitute_body(lp.body, {var: Const(i, IDX)})
            out.extend(_rename_locals(copy, f"_{i}") if hi - lo > 1 else copy)
        return tuple(out)

    return _apply(kernel, var, rewrite)


def unroll_jam(kernel: Kernel, var: str) -> Kernel:
    """Unroll ``var`` and fuse the copies of each inner loop into one loop.

    Legal when every inner loop only updates locals of its own copy (so the copies commute);
    the copies of the other statements stay in order.
    """

    def rewrite(lp: For) -> tuple[Stmt, ...]:
        lo, hi = _trip(lp, "unroll_jam")
        copies = [_rename_locals(substitute_body(lp.body, {var: Const(i, IDX)}), f"_{i}")
                  for i in range(lo, hi)]
        if not copies:
            return ()
        declared = [{s.name for s in walk_stmts(c) if isinstance(s, (Decl, Alloc))} for c in copies]
        out: list[Stmt] = []
        for pos, s in enumerate(copies[0]):
            if isinstance(s, For):
                bodies = []
                for ci, c in enumerate(copies):
                    inner = c[pos]
                    assert isinstance(inner, For)
                    if (inner.lo, inner.hi) != (s.lo, s.hi):
                        raise ScheduleError(f"unroll_jam({var}): bounds of '{s.var}' depend on '{var}'")
                    scalars, bufs = _written(inner.body)
                    local = declared[ci] | _names(inner.body)
                    if scalars - local or bufs - local:
                        what = sorted((scalars | bufs) - local)[0]
                        raise ScheduleError(f"unroll_jam({var}): loop '{s.var}' writes '{what}', which is "
                                            f"shared between the copies")
                    bodies.extend(inner.body)
                out.append(replace(s, body=tuple(bodies)))
            else:
                out.extend(c[pos] for c in copies)
        return tuple(out)

    return _apply(kernel, var, rewrite)


def distribute(kernel: Kernel, var: str) -> Kernel:
    """Loop fission: ``for v { A; B }`` → ``for v { A }; for v { B }`` (one loop per statement).

    Legal when no part reads what another part writes, and parts only assign their own locals.
    """

    def rewrite(lp: For) -> tuple[Stmt, ...]:
        if len(lp.body) < 2 or any(isinstance(s, (Decl, Alloc, View)) for s in lp.body):
            raise ScheduleError(f"distribute({var}): the body must be two or more non-declaration statements")
        parts = [(s,) for s in lp.body]
        for i, p in enumerate(parts):
            scalars, bufs = _written(p)
            if scalars - _names(p):
                raise ScheduleError(f"distribute({var}): a part updates '{sorted(scalars)[0]}' declared outside it")
            for j, q in enumerate(parts):
                if i != j and bufs & _read_buffers(q):
                    raise ScheduleError(f"distribute({var}): a part reads '{sorted(bufs & _read_buffers(q))[0]}' "
                                        f"written by another")
        return tuple(replace(lp, body=p) for p in parts)

    return _apply(kernel, var, rewrite)


def fuse_updates(kernel: Kernel) -> Kernel:
    """Merge consecutive ``x = f(x)`` assignments: ``x = x + a; x = x + b`` → ``x = (x + a) + b``."""

    def fuse(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in body:
            if isinstance(s, For):
                s = replace(s, body=fuse(s.body))
            elif isinstance(s, If):
                s = replace(s, then=fuse(s.then), orelse=fuse(s.orelse))
            prev = out[-1] if out else None
            if isinstance(s, Assign) and isinstance(prev, Assign) and prev.name == s.name:
                uses = sum(1 for x in walk_expr(s.value) if isinstance(x, Var) and x.name == s.name)
                if uses == 1:
                    value = map_expr(s.value, lambda x: prev.value if isinstance(x, Var) and x.name == s.name else x)
                    out[-1] = replace(s, value=value)
                    continue
            out.append(s)
        return tuple(out)

    return replace(kernel, body=fuse(kernel.body))


__all__ = ["ScheduleError", "specialize", "split", "reorder", "unroll", "unroll_jam", "fuse_updates", "distribute",
           "loop", "sub_bodies"]
