"""Exact algebraic rewrites that expose instruction patterns.

Integer arithmetic that wraps modulo 2**32 is a commutative ring, so re-association and
distribution are exact (not approximations).  Each rewrite here keeps the kernel's results
bit-identical; the test suite checks each against the reference interpreter.
"""
from __future__ import annotations

from dataclasses import replace

from .ir import (I32, Assign, Bin, Call, Const, Decl, Expr, For, Kernel, Load, ScalarParam, Stmt,
                 Store, Var, stmt_reads, walk_expr, walk_stmts)
from .memo import per_object
from .rewrite import map_body_exprs, map_expr


def _stmt_vars(s: Stmt) -> frozenset[str]:
    """Names of the variables ``s`` (nested statements included) reads."""
    return stmt_reads(s)[0]


def _uses(stmts: tuple[Stmt, ...], name: str) -> bool:
    """True when any statement of ``stmts`` (nested ones included) reads variable ``name``."""
    return any(name in _stmt_vars(s) for s in stmts)


def _chain_without(v: Expr, name: str) -> Expr | None:
    """For ``((name + t1) + t2) + …`` (terms not reading ``name``) return ``(t1 + t2) + …``."""
    terms: list[Expr] = []
    while isinstance(v, Bin) and v.op == "add" and v.type == I32:
        terms.append(v.b)
        v = v.a
    if v != Var(name, I32) or not terms or any(_uses((Assign("_", t),), name) for t in terms):
        return None
    terms.reverse()
    out = terms[0]
    for t in terms[1:]:
        out = Bin("add", out, t, I32)
    return out


def _is_update_of(s: Stmt, name: str) -> bool:
    """``name = name + e1 + e2 …`` where no ``e`` reads ``name``."""
    return isinstance(s, Assign) and s.name == name and _chain_without(s.value, name) is not None


@per_object
def _blocked_names(s: Stmt) -> tuple[bool, frozenset[str]]:
    """(``s`` stops every accumulator, the accumulators it stops), computed once per statement.
    An accumulator ``n`` passes a declaration whose initialiser does not read it, an assignment
    that does not read it or is an additive update of it (``n = n + e …``), and a loop whose
    statements all let it pass; anything else (a store, a branch) stops every accumulator."""
    if isinstance(s, Decl):
        out = (False, _stmt_vars(s) if s.init is not None else frozenset())
    elif isinstance(s, Assign):
        names = _stmt_vars(s)
        out = (False, names - {s.name} if _is_update_of(s, s.name) else names)
    elif isinstance(s, For):
        parts = [_blocked_names(x) for x in s.body]
        out = (any(p[0] for p in parts), frozenset().union(*(p[1] for p in parts)))
    else:
        out = (True, frozenset())
    return out


def sink_accumulator_init(kernel: Kernel) -> Kernel:
    """``var acc = init; (acc = acc + e)*; use(acc)`` → ``var acc = 0; (acc = acc + e)*; use(acc + init)``.

    Applies when, up to its first real use, ``acc`` is only updated additively, and ``init`` reads
    no variable and no buffer the block writes.  The first update then starts from zero (matching
    non-accumulating dot-product instructions) and the init joins the epilogue.
    """

    def block(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out = [replace(s, body=block(s.body)) if isinstance(s, For) else s for s in body]
        # the rewrite below changes expressions only: names assigned and buffers written stay the same
        assigned = {x.name for x in walk_stmts(tuple(out)) if isinstance(x, (Assign, Decl))}
        written = _written_bufs(tuple(out))
        # names each statement assigns (nested ones included); the rewrite below keeps them
        assigns = [frozenset(x.name for x in walk_stmts((st,)) if isinstance(x, Assign)) for st in out]
        for i, s in enumerate(list(out)):
            if not (isinstance(s, Decl) and s.type == I32 and s.init is not None and s.init != Const(0, I32)):
                continue
            init = s.init
            if any(isinstance(x, Var) and x.name in assigned for x in walk_expr(init)) or \
                    written & _loaded(init):
                continue
            j = i + 1
            while j < len(out):
                every, names = _blocked_names(out[j])
                if every or s.name in names:
                    break
                j += 1
            if any(s.name in assigns[k] for k in range(j, len(out))):
                continue
            if not any(s.name in assigns[k] for k in range(i + 1, j)):
                continue  # not an accumulator: nothing to sink the initial value past
            out[i] = replace(s, init=Const(0, I32))
            acc_plus = Bin("add", Var(s.name, I32), init, I32)
            for k in range(j, len(out)):
                out[k] = _replace_var(out[k], s.name, acc_plus)
        return tuple(out)

    return replace(kernel, body=block(kernel.body))


def _loaded(e: Expr) -> set[str]:
    return {x.buf for x in walk_expr(e) if isinstance(x, Load)}


def _written_bufs(body: tuple[Stmt, ...]) -> set[str]:
    return {s.buf for s in walk_stmts(body) if isinstance(s, Store)}


def _replace_var(s: Stmt, name: str, value: Expr) -> Stmt:
    if not _uses((s,), name):
        return s
    return map_body_exprs((s,), lambda x: value if isinstance(x, Var) and x.name == name else x)[0]


def peel_zero_updates(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
    """In a straight-line block: ``var acc = 0; … acc = acc + e; …`` → ``var acc = e`` at the first update."""
    out: list[Stmt | None] = []
    pending: dict[str, int] = {}
    for s in body:
        if isinstance(s, For):
            s = replace(s, body=peel_zero_updates(s.body))
        if isinstance(s, Decl) and s.init == Const(0, I32):
            pending[s.name] = len(out)
            out.append(s)
            continue
        if isinstance(s, Assign) and s.name in pending and _is_update_of(s, s.name):
            out[pending.pop(s.name)] = None
            out.append(Decl(s.name, I32, _chain_without(s.value, s.name), s.loc))
            continue
        for n in [n for n in pending if _uses((s,), n)]:
            pending.pop(n)
        out.append(s)
    return tuple(x for x in out if x is not None)


def distribute_requant_bias(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
    """``((a + b) * m) >> s`` → ``(a * m + b * m) >> s`` (exact modulo 2**32)."""

    def fn(e: Expr) -> Expr:
        if isinstance(e, Bin) and e.op == "shr" and isinstance(e.a, Bin) and e.a.op == "mul":
            prod = e.a
            if isinstance(prod.a, Bin) and prod.a.op == "add" and prod.type == I32:
                a, b, m = prod.a.a, prod.a.b, prod.b
                return replace(e, a=Bin("add", Bin("mul", a, m, I32), Bin("mul", b, m, I32), I32))
        return e

    return map_body_exprs(body, fn, only=frozenset({"shr"}))


def mask_ranged_shifts(kernel: Kernel) -> Kernel:
    """``x >> s`` → ``x >> (s & 31)`` where scalar ``s`` is declared ``in 0..32`` (or narrower)."""
    from .interp import eval_expr

    ranged = set()
    for p in kernel.scalars:
        if isinstance(p, ScalarParam) and p.type == I32 and p.lo is not None and p.hi is not None:
            if eval_expr(p.lo, {}) >= 0 and eval_expr(p.hi, {}) <= 32:
                ranged.add(p.name)

    def fn(e: Expr) -> Expr:
        if isinstance(e, Bin) and e.op == "shr" and e.type == I32 and isinstance(e.b, Var) and e.b.name in ranged:
            return replace(e, b=Bin("and", e.b, Const(31, I32), I32))
        return e

    return replace(kernel, body=map_body_exprs(kernel.body, fn, only=frozenset({"shr"})))


__all__ = ["sink_accumulator_init", "peel_zero_updates", "distribute_requant_bias", "mask_ranged_shifts",
           "Call", "map_expr"]
