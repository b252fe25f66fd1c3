"""Loop-nest passes of the XpulpV2 backend, applied to the register-blocked contraction.

Each pass keeps the kernel's results bit-identical (loop fission and interchange of independent
iterations, loop-invariant code motion of pure scalar arithmetic, grouping of four byte stores
into one packed store built with the ISA file's pack instructions); only where instructions are
spent changes:

- :func:`interchange_blocks`: ``for m_o { for n_o {tile}; column tail }`` becomes
  ``for n_o { for m_o {tile} }; for m_o {column tail}``, so that everything that depends on the
  column block only (weights base, ``bias * mul``) is set up once per column block;
- :func:`hoist_invariant_products`: ``bias[4*n_o + c] * mul`` leaves the row-block loop;
- :func:`mark_loops`: loop annotations for C emission: ``@pointer_ivs`` (buffer addresses
  become pointer induction variables, see :mod:`kgen.backends.pointer_loops`) and
  ``@hwloop(level)`` (the loop is a CV32E40P hardware loop in PULP GCC builds);
- :func:`pack_row_stores`: four ``i8`` stores to consecutive, word-aligned elements become
  ``kgen_st32(pv.packhi.b(pv.packlo.b(v0, v1, v0), v3, v2))``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import (I8, I8X4, I32, IDX, Alloc, Assign, Attr, Bin, Call, Cast, Const, Decl, Expr, For, If,
                  Kernel, Load, Stmt, Store, Var, View, stmt_exprs, walk_expr, walk_stmts)
from ..isafile import Isa
from ..rewrite import map_expr
from ..schedule import ScheduleError, reorder
from .contraction import divmod_index

# ------------------------------------------------------------------------------ helpers


def _declared(body: tuple[Stmt, ...]) -> set[str]:
    return {s.name for s in walk_stmts(body) if isinstance(s, (Decl, Alloc, View))} | \
        {s.var for s in walk_stmts(body) if isinstance(s, For)}


def _assigned(body: tuple[Stmt, ...]) -> set[str]:
    return {s.name for s in walk_stmts(body) if isinstance(s, (Assign, Decl))}


def _stored(body: tuple[Stmt, ...]) -> set[str]:
    return {s.buf for s in walk_stmts(body) if isinstance(s, Store)}


def _loaded(body: tuple[Stmt, ...]) -> set[str]:
    return {x.buf for s in walk_stmts(body) for e in stmt_exprs(s) for x in walk_expr(e) if isinstance(x, Load)}


def _names(body: tuple[Stmt, ...]) -> set[str]:
    out = _declared(body)
    for s in walk_stmts(body):
        for e in stmt_exprs(s):
            out |= {x.name for x in walk_expr(e) if isinstance(x, Var)}
    return out


# ------------------------------------------------------------------------- interchange


def _fission_first(lp: For) -> tuple[For, ...] | None:
    """``for v { L; S... }`` → ``for v { L }; for v { S... }`` when L is a loop and the parts are
    independent (no part reads what the other writes; each part assigns only its own locals)."""
    if len(lp.body) < 2 or not isinstance(lp.body[0], For):
        return None
    a, b = lp.body[:1], lp.body[1:]
    for p, q in ((a, b), (b, a)):
        if _assigned(p) - _declared(p) or _stored(p) & (_loaded(q) | _stored(q)):
            return None
        if _declared(p) & _names(q):
            return None
    return replace(lp, body=a), replace(lp, body=b)


def interchange_blocks(kernel: Kernel, m: str, n: str) -> Kernel:
    """Make the column-block loop ``n`` the outer loop of the tile nest (see the module docstring).

    Returns the kernel unchanged when the nest does not have the expected shape."""
    out: list[Stmt] = []
    for s in kernel.body:
        if isinstance(s, For) and s.var == m and s.body and isinstance(s.body[0], For) and s.body[0].var == n:
            parts = _fission_first(s) if len(s.body) > 1 else (s,)
            if parts is not None:
                out.extend(parts)
                continue
        out.append(s)
    k = replace(kernel, body=tuple(out))
    try:
        return reorder(k, m, n)
    except ScheduleError:
        return kernel


# --------------------------------------------------------------------------- hoisting


def _invariant(e: Expr, inside: set[str], written: set[str]) -> bool:
    for x in walk_expr(e):
        if isinstance(x, Var) and x.name in inside:
            return False
        if isinstance(x, Load) and (x.buf in written or x.type.lanes > 1):
            return False
        if isinstance(x, Call) and x.fn.startswith("isa."):
            return False
    return True


def hoist_invariant_products(kernel: Kernel, var: str) -> Kernel:
    """Move the maximal scalar products in loops over ``var`` that do not depend on anything the
    loop binds or writes (e.g. ``bias[4*n_o + c] * mul`` in the row-block loop) into locals
    declared just before the loop.  Only loops with a constant, non-zero trip count are
    touched, so every hoisted expression is one the loop evaluated anyway."""
    taken = _names(kernel.body) | {p.name for p in kernel.params}

    def block(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in body:
            if isinstance(s, For):
                s = replace(s, body=block(s.body))
                if s.var == var and isinstance(s.lo, Const) and isinstance(s.hi, Const) and s.hi.value > s.lo.value:
                    decls, s = _hoist(s)
                    out.extend(decls)
            elif isinstance(s, If):
                s = replace(s, then=block(s.then), orelse=block(s.orelse))
            out.append(s)
        return tuple(out)

    def _hoist(lp: For) -> tuple[list[Stmt], For]:
        inside = _declared(lp.body) | _assigned(lp.body) | {lp.var}
        written = _stored(lp.body)
        found: dict[Expr, str] = {}

        def fn(e: Expr) -> Expr:
            if isinstance(e, Bin) and e.op == "mul" and e.type == I32 and _invariant(e, inside, written):
                if e not in found:
                    name = f"{lp.var}_inv{len(found)}"
                    while name in taken:
                        name += "_"
                    taken.add(name)
                    found[e] = name
                return Var(found[e], I32)
            return e

        body = _map_top_down(lp.body, fn)
        return [Decl(n, I32, e) for e, n in found.items()], replace(lp, body=body)

    return replace(kernel, body=block(kernel.body))


def _map_top_down(body: tuple[Stmt, ...], fn) -> tuple[Stmt, ...]:
    """Apply ``fn`` to each expression node top-down (a replaced node is not descended into), in
    the statements that always execute (not inside ``if`` branches nor loops that may not run)."""

    def ex(e: Expr) -> Expr:
        r = fn(e)
        if r is not e:
            return r
        if isinstance(e, Bin):
            return replace(e, a=ex(e.a), b=ex(e.b))
        if isinstance(e, Cast):
            return replace(e, a=ex(e.a))
        if isinstance(e, Call):
            return replace(e, args=tuple(ex(a) for a in e.args))
        if isinstance(e, Load):
            return e
        from ..ir import Un

        if isinstance(e, Un):
            return replace(e, a=ex(e.a))
        return e

    out: list[Stmt] = []
    for s in body:
        if isinstance(s, For):
            if isinstance(s.lo, Const) and isinstance(s.hi, Const) and s.hi.value > s.lo.value:
                s = replace(s, body=_map_top_down(s.body, fn))
        elif isinstance(s, If):  # conditional code may not run: only its condition is always evaluated
            s = replace(s, cond=ex(s.cond))
        elif isinstance(s, Decl) and s.init is not None:
            s = replace(s, init=ex(s.init))
        elif isinstance(s, Assign):
            s = replace(s, value=ex(s.value))
        elif isinstance(s, Store):
            s = replace(s, value=ex(s.value))
        out.append(s)
    return tuple(out)


# ------------------------------------------------------------------------ annotations


def _has_loop(body: tuple[Stmt, ...]) -> bool:
    return any(isinstance(s, For) for s in walk_stmts(body))


def mark_loops(kernel: Kernel, pointer_vars: set[str]) -> Kernel:
    """Annotate loops for C emission.

    * ``@pointer_ivs`` on loops over ``pointer_vars`` whose body has no loop;
    * ``@hwloop(0)`` on innermost loops and ``@hwloop(1)`` on loops whose only loop is a
      ``@hwloop(0)`` one (CV32E40P has two hardware-loop register sets), when the trip count is a
      constant >= 2 and the loop is not a multi-core ``@parallel`` chunk loop (whose bounds are
      per core; PULP GCC still makes it a hardware loop with a register count, see
      :mod:`kgen.sim.riscv_timing`, but kgen does not promise it).
    """

    def trip(s: For) -> int:
        return s.hi.value - s.lo.value if isinstance(s.lo, Const) and isinstance(s.hi, Const) else 0

    def visit(s: Stmt) -> Stmt:
        if isinstance(s, If):
            return replace(s, then=tuple(visit(x) for x in s.then), orelse=tuple(visit(x) for x in s.orelse))
        if not isinstance(s, For):
            return s
        body = tuple(visit(x) for x in s.body)
        attrs = list(s.attrs)
        loops = [x for x in walk_stmts(body) if isinstance(x, For)]
        if s.var in pointer_vars and not loops:
            attrs.append(Attr("pointer_ivs"))
        if trip(s) >= 2 and not s.has("parallel"):
            if not loops:
                attrs.append(Attr("hwloop", (Const(0, IDX),)))
            elif all(x.has("hwloop") and not _has_loop(x.body) for x in loops) and \
                    all(isinstance(x, For) or not _has_loop((x,)) for x in body):
                attrs.append(Attr("hwloop", (Const(1, IDX),)))
        return replace(s, body=body, attrs=tuple(attrs))

    return replace(kernel, body=tuple(visit(s) for s in kernel.body))


def hwloop_note(kernel: Kernel) -> str | None:
    """Documentation line naming the loops that PULP GCC builds run as hardware loops."""
    loops = [s for s in walk_stmts(kernel.body) if isinstance(s, For) and s.has("hwloop")]
    if not loops:
        return None

    def desc(s: For) -> str:
        level = next(a for a in s.attrs if a.name == "hwloop").args[0].value  # type: ignore[union-attr]
        return f"`{s.var}` ({s.hi.value - s.lo.value} iterations, level {level})"  # type: ignore[union-attr]

    what = ("are counted loops with constant trip counts and branch-free bodies, which PULP GCC (GAP SDK "
            "builds) turns into CV32E40P hardware loops" if len(loops) > 1 else
            "is a counted loop with a constant trip count and a branch-free body, which PULP GCC (GAP SDK "
            "builds) turns into a CV32E40P hardware loop")
    return (f"Hardware loops: {', '.join(desc(s) for s in loops)} {what} (lp.setup/lp.setupi); clang-19 builds "
            "close them with branches. `kgen bench` reports the executed branch form and the modelled "
            "hardware-loop form (cycles_est_hwloop).")


# ---------------------------------------------------------------------- packed stores


def _pack_instrs(isa: Isa) -> tuple[str, str] | None:
    """Mnemonics (lo, hi) of the ISA file's byte-pack pair, checked on its declared semantics:
    hi(lo(d, x1, x0), x3, x2) must be the lanes [x0, x1, x2, x3] for any d."""
    lo = [i for i in isa.instrs if i.cls == "pack_lo_i8x4" and i.executable]
    hi = [i for i in isa.instrs if i.cls == "pack_hi_i8x4" and i.executable]
    if not lo or not hi:
        return None
    rng = np.random.default_rng(4)
    for _ in range(32):
        d = [int(v) for v in rng.integers(-128, 128, 4)]
        x = [int(v) for v in rng.integers(-2**31, 2**31, 4)]
        w = lo[0].evaluate([d, x[1], x[0]])
        r = hi[0].evaluate([w, x[3], x[2]])
        if r != [I8.wrap(v) for v in x]:
            return None
    return lo[0].mnemonic, hi[0].mnemonic


def pack_row_stores(kernel: Kernel, isa: Isa) -> tuple[Kernel, frozenset[str]]:
    """Group ``B[.., e] = i8(v0); B[.., e+1] = i8(v1); …; B[.., e+3] = i8(v3)`` (in one
    straight-line block, any order, ``e`` a multiple of 4 and the row length of ``B`` too) into
    one packed store.  Returns the kernel and the buffers that now have packed stores."""
    pair = _pack_instrs(isa)
    if pair is None:
        return kernel, frozenset()
    lo_fn, hi_fn = (f"isa.{isa.name}.{m}" for m in pair)
    params = {p.name: p for p in kernel.buffers}
    counter = [0]

    def aligned(buf: str, index: tuple[Expr, ...]) -> Expr | None:
        p = params.get(buf)
        if p is None or p.type != I8 or p.strides or not isinstance(p.shape[-1], Const) or p.shape[-1].value % 4:
            return None
        q = divmod_index(index[-1], 4)
        return index[-1] if q is not None and q[1] == 0 else None

    def block(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        body = tuple(replace(s, body=block(s.body)) if isinstance(s, For) else s for s in body)
        stores = {i: s for i, s in enumerate(body) if isinstance(s, Store) and isinstance(s.value, Cast)
                  and s.value.type == I8 and s.value.a.type == I32}
        groups: dict[int, list[int]] = {}
        used: set[int] = set()
        for i, s in stores.items():
            if aligned(s.buf, s.index) is None:
                continue
            members = [i]
            for c in (1, 2, 3):
                want = s.index[:-1] + (_plus(s.index[-1], c),)
                j = next((j for j, t in stores.items() if j not in used and t.buf == s.buf
                          and _same(t.index, want)), None)
                if j is None:
                    break
                members.append(j)
            if len(members) == 4 and not used & set(members) and _can_sink(body, members):
                groups[max(members)] = members
                used.update(members)
        if not groups:
            return body
        out: list[Stmt] = []
        for i, s in enumerate(body):
            if i in used and i not in groups:
                continue
            if i in groups:
                members = groups[i]
                first = body[members[0]]
                names = []
                for j in members:
                    names.append(f"packed{counter[0]}_{len(names)}")
                    out.append(Decl(names[-1], I32, body[j].value.a))  # type: ignore[union-attr]
                counter[0] += 1
                v = [Var(n, I32) for n in names]
                low = Call(lo_fn, (Cast(v[0], I8X4), v[1], v[0]), I8X4)
                out.append(Store(first.buf, first.index, Call(hi_fn, (low, v[3], v[2]), I8X4), first.loc))
                continue
            out.append(s)
        return tuple(out)

    new = replace(kernel, body=block(kernel.body))
    return new, frozenset(s.buf for s in walk_stmts(new.body) if isinstance(s, Store) and s.value.type.lanes > 1)


def _can_sink(body: tuple[Stmt, ...], members: list[int]) -> bool:
    """The member stores' values may be computed at the last member: nothing in between changes
    what they read, and they do not read the stored buffer."""
    values = [body[j].value for j in members]  # type: ignore[union-attr]
    names = {x.name for v in values for x in walk_expr(v) if isinstance(x, Var)}
    bufs = {x.buf for v in values for x in walk_expr(v) if isinstance(x, Load)}
    if body[members[0]].buf in bufs:  # type: ignore[union-attr]
        return False
    between = tuple(s for i, s in enumerate(body) if min(members) < i < max(members) and i not in members)
    return not (_assigned(between) & names) and not (_stored(between) & bufs)


def _plus(e: Expr, c: int) -> Expr:
    return Bin("add", e, Const(c, IDX), IDX)


def _same(a: tuple[Expr, ...], b: tuple[Expr, ...]) -> bool:
    from ..check import to_sympy

    if len(a) != len(b):
        return False
    try:
        return all((to_sympy(x, {}) - to_sympy(y, {})).expand() == 0 for x, y in zip(a, b))
    except Exception:  # noqa: BLE001 - not affine: not the same element for our purpose
        return False


__all__ = ["interchange_blocks", "hoist_invariant_products", "mark_loops", "pack_row_stores", "hwloop_note",
           "map_expr"]
