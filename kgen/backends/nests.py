"""Contraction nests anywhere in a kernel: batched (per head), over views and local arrays.

:func:`kgen.backends.contraction.find_contraction` covers a plain 2-D ``m × n × k`` nest whose
operands are kernel parameters.  Attention kernels contract *inside* other loops (per head h, per
query block) with operands that carry extra, loop-invariant index components (``Q[h, i, p]``,
``Wh[h, p, e]``) or are views and local arrays.  This module brings such nests to the plain form:

1. :func:`uniquify_loops` gives every loop its own variable name (schedule primitives address
   loops by name);
2. :func:`find_nests` finds the nests, and matrix-vector products (``for n { acc; for k }`` with
   a vector operand) as nests of one row, whose row loop :func:`expose_row` adds;
3. :func:`flatten_operands` replaces, per nest, each operand access by a 2-D view ``[rows][k]``
   of the operand's storage whose offset holds the invariant components, so the nest becomes
   ``A2[m, k] · B2[n, k]``; the view is declared before the outermost statement around the nest
   that does not write the operand and outside of which its offset is defined;
4. :func:`stage_b` copies ``B2`` at run time into the packed, widened layout the ISA's dot product
   wants (the offline packing of constant weights does the same once, ahead of time), where the
   view is declared: once per head (or per value of a local operand), not once per row block.

Every step is a semantics-preserving rewrite; the reference interpreter runs the result.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil
from typing import Callable, Mapping

import sympy as sp

from ..check import to_sympy
from ..interp import eval_const
from ..ir import (IDX, Alloc, Assign, Bin, Cast, Const, Decl, Expr, For, If, Kernel, Load,
                  Stmt, Store, Type, Var, View, stmt_exprs, walk_expr, walk_stmts)
from ..memo import per_object
from ..rewrite import map_body_exprs, substitute_body
from ..schedule import specialize
from .contraction import Contraction, Packing, _product_loads, from_sympy, tile_contraction, unroll_k
from .padding import PadBound, padded_fill


# --------------------------------------------------------------------------- loop names


def uniquify_loops(kernel: Kernel) -> Kernel:
    """Rename loop variables so that no two loops share one (the first keeps its name), and give
    each scalar declared in a loop body its own name (unrolling a one-trip loop may later put two
    such declarations in one C scope)."""
    taken: set[str] = set(kernel.sizes) | {p.name for p in kernel.params}
    taken |= {s.name for s in walk_stmts(kernel.body) if isinstance(s, (Decl, Alloc, View))}
    seen_decls: set[str] = set()

    def body(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out = []
        for s in stmts:
            if isinstance(s, For):
                new = s.var
                i = 1
                while new in taken:
                    new = f"{s.var}{i}"
                    i += 1
                taken.add(new)
                inner = s.body if new == s.var else substitute_body(s.body, {s.var: Var(new, IDX)})
                for d in [x for x in inner if isinstance(x, Decl)]:
                    if d.name in seen_decls:
                        inner = _rename_local(inner, d.name, taken)
                    seen_decls.add(d.name)
                s = replace(s, var=new, body=body(inner))
            elif isinstance(s, If):
                s = replace(s, then=body(s.then), orelse=body(s.orelse))
            out.append(s)
        return tuple(out)

    return replace(kernel, body=body(kernel.body))


def _rename_local(body: tuple[Stmt, ...], name: str, taken: set[str]) -> tuple[Stmt, ...]:
    i = 1
    while f"{name}{i}" in taken:
        i += 1
    taken.add(f"{name}{i}")

    def ren_expr(e: Expr) -> Expr:
        return replace(e, name=f"{name}{i}") if isinstance(e, Var) and e.name == name else e

    def ren(st: Stmt) -> Stmt:
        if isinstance(st, (Decl, Assign)) and st.name == name:
            st = replace(st, name=f"{name}{i}")
        if isinstance(st, For):
            return replace(st, body=tuple(ren(x) for x in st.body))
        if isinstance(st, If):
            return replace(st, then=tuple(ren(x) for x in st.then), orelse=tuple(ren(x) for x in st.orelse))
        return st

    return map_body_exprs(tuple(ren(x) for x in body), ren_expr)


# ------------------------------------------------------------------------------ finding nests


@dataclass(frozen=True)
class Nest:
    m: str
    n: str
    k: str
    acc: str
    a: Load  # the access indexed by m and k
    b: Load  # the access indexed by n and k
    M: int
    N: int
    K: int
    #: a matrix-vector product: A has no row index and ``m`` names the one-trip row loop to add
    matvec: bool = False


def _trip(lp: For) -> int | None:
    try:
        return eval_const(lp.hi) - eval_const(lp.lo) if eval_const(lp.lo) == 0 else None
    except KeyError:
        return None


def _uses(e: Expr, names: set[str]) -> set[str]:
    return {x.name for x in walk_expr(e) if isinstance(x, Var) and x.name in names}


def _role(ld: Load, outer: str, k: str) -> bool:
    """Each of ``outer`` and ``k`` appears in exactly one index component, as ``invariant + var``."""
    for v in (outer, k):
        comps = [c for c in ld.index if v in _uses(c, {outer, k})]
        if len(comps) != 1 or _uses(comps[0], {outer, k}) != {v}:
            return False
        s = sp.expand(to_sympy(comps[0], {}))
        if s.coeff(sp.Symbol(v, integer=True)) != 1 and s.coeff(sp.Symbol(v)) != 1:
            return False
    return True


def _reduction(inner: For) -> tuple[str, For, Load, Load] | None:
    """``for n { var acc = init; …; for k { acc += i32(A) * i32(B) }; … }`` → (acc, the k loop, A, B)."""
    decls = [s for s in inner.body if isinstance(s, Decl)]
    loops = [s for s in inner.body if isinstance(s, For)]
    if len(loops) != 1 or not decls or len(loops[0].body) != 1:
        return None
    red = loops[0]
    upd = red.body[0]
    if not (isinstance(upd, Assign) and isinstance(upd.value, Bin) and upd.value.op == "add"
            and isinstance(upd.value.a, Var) and upd.value.a.name == upd.name
            and upd.name in {d.name for d in decls}):
        return None
    loads = _product_loads(upd.value.b)
    return None if loads is None else (upd.name, red, *loads)


def _k_role(ld: Load, n: str, k: str) -> bool:
    """``k`` appears in exactly one index component, as ``invariant + k``, and ``n`` in none."""
    comps = [c for c in ld.index if _uses(c, {n, k})]
    if len(comps) != 1 or _uses(comps[0], {n, k}) != {k}:
        return False
    s = sp.expand(to_sympy(comps[0], {}))
    return s.coeff(sp.Symbol(k, integer=True)) == 1 or s.coeff(sp.Symbol(k)) == 1


def find_nests(kernel: Kernel) -> list[Nest]:
    """Every ``for m { for n { var acc = init; for k { acc += A*B } ; … } }`` nest with constant
    trip counts (a specialised kernel), whose two operands are indexed by (m, k) and (n, k); and
    every matrix-vector product ``for n { var acc = init; for k { acc += A*B }; … }`` (A indexed by
    k alone) outside such a nest, as a nest of one row (``matvec``: :func:`expose_row` gives it its
    one-trip row loop ``m``)."""
    out = []
    inners = set()
    for outer in walk_stmts(kernel.body):
        if not (isinstance(outer, For) and len(outer.body) == 1 and isinstance(outer.body[0], For)):
            continue
        inner = outer.body[0]
        found = _reduction(inner)
        if found is None:
            continue
        acc, red, la, lb = found
        trips = [_trip(lp) for lp in (outer, inner, red)]
        if any(t is None for t in trips):
            continue
        m, n, k = outer.var, inner.var, red.var
        if _role(lb, m, k) and _role(la, n, k):
            la, lb = lb, la
        if not (_role(la, m, k) and _role(lb, n, k)):
            continue
        if {m, n} & (_uses(la, {n}) | _uses(lb, {m})):
            continue
        out.append(Nest(m, n, k, acc, la, lb, *trips))  # type: ignore[arg-type]
        inners.add(n)
    for inner in walk_stmts(kernel.body):
        if not isinstance(inner, For) or inner.var in inners:
            continue
        found = _reduction(inner)
        if found is None:
            continue
        acc, red, la, lb = found
        trips = [_trip(lp) for lp in (inner, red)]
        if any(t is None for t in trips):
            continue
        n, k = inner.var, red.var
        if _role(la, n, k) and _k_role(lb, n, k):
            la, lb = lb, la
        if _k_role(la, n, k) and _role(lb, n, k):
            out.append(Nest(f"{n}_row", n, k, acc, la, lb, 1, *trips, matvec=True))  # type: ignore[arg-type]
    return out


def expose_row(kernel: Kernel, nest: Nest) -> Kernel:
    """Wrap a matrix-vector product's ``n`` loop in its one-trip row loop ``nest.m`` (exact)."""
    def body(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in stmts:
            if isinstance(s, For) and s.var == nest.n:
                s = For(nest.m, Const(0, IDX), Const(1, IDX), (s,), (), s.loc)
            elif isinstance(s, For):
                s = replace(s, body=body(s.body))
            elif isinstance(s, If):
                s = replace(s, then=body(s.then), orelse=body(s.orelse))
            out.append(s)
        return tuple(out)

    return replace(kernel, body=body(kernel.body)) if nest.matvec else kernel


# ------------------------------------------------------------------------------ 2-D operands


@dataclass(frozen=True)
class _Storage:
    root: str
    type: Type
    strides: tuple[sp.Expr, ...]
    offset: sp.Expr


@per_object  # the analyses of one lowering step ask for the same kernel many times
def storages(kernel: Kernel) -> dict[str, _Storage]:
    """Root storage, element strides and offset of every parameter, local array and view
    (shared: callers must not modify the mapping)."""
    return _storages(kernel)


def _storages(kernel: Kernel) -> dict[str, _Storage]:
    out: dict[str, _Storage] = {}

    def row_major(shape: tuple[Expr, ...]) -> tuple[sp.Expr, ...]:
        dims = [to_sympy(d, {}) for d in shape]
        return tuple(sp.Mul(*dims[i + 1:]) for i in range(len(dims)))

    for p in kernel.buffers:
        strides = tuple(to_sympy(x, {}) for x in p.strides) if p.strides else row_major(p.shape)
        out[p.name] = _Storage(p.name, p.type, strides, sp.Integer(0))
    for s in walk_stmts(kernel.body):
        if isinstance(s, Alloc):
            out[s.name] = _Storage(s.name, s.type, row_major(s.shape), sp.Integer(0))
        elif isinstance(s, View):
            base = out[s.base]
            out[s.name] = _Storage(base.root, base.type, tuple(to_sympy(x, {}) for x in s.strides),
                                   base.offset + to_sympy(s.offset, {}))
    return out


def _flat_view(ld: Load, outer: str, k: str, rows: int, K: int, st: _Storage, name: str) -> tuple[View, Load]:
    """``ld`` (indexed by invariant + outer and invariant + k) as ``name[outer, k]``."""
    off = st.offset
    row_stride = k_stride = None
    for comp, stride in zip(ld.index, st.strides):
        s = sp.expand(to_sympy(comp, {}))
        used = _uses(comp, {outer, k})
        if outer in used:
            row_stride = stride
            s = s - sp.Symbol(outer, integer=True)
        elif k in used:
            k_stride = stride
            s = s - sp.Symbol(k, integer=True)
        off += s * stride
    if row_stride is None:  # a vector (one row): any row stride
        row_stride = K
    view = View(name, st.root, (Const(rows, IDX), Const(K, IDX)),
                (from_sympy(sp.sympify(row_stride)), from_sympy(sp.sympify(k_stride))), from_sympy(sp.expand(off)))
    return view, Load(name, (Var(outer, IDX), Var(k, IDX)), ld.type, ld.loc)


def flatten_operands(kernel: Kernel, nest: Nest, a_name: str, b_name: str) -> tuple[Kernel, Contraction]:
    """Rewrite the nest's operand accesses as 2-D views (see module docstring)."""
    st = storages(kernel)
    va, la = _flat_view(nest.a, nest.m, nest.k, nest.M, nest.K, st[nest.a.buf], a_name)
    vb, lb = _flat_view(nest.b, nest.n, nest.k, nest.N, nest.K, st[nest.b.buf], b_name)

    def fn(e: Expr) -> Expr:
        if e == nest.a:
            return la
        if e == nest.b:
            return lb
        return e

    loops = {x.var for x in walk_stmts(kernel.body) if isinstance(x, For)}

    def writes(stmt: Stmt, root: str) -> bool:
        """``stmt`` stores into (or declares) the storage ``root``."""
        for x in walk_stmts((stmt,)):
            name = x.buf if isinstance(x, Store) else x.name if isinstance(x, Alloc) else None
            if name in st and st[name].root == root:
                return True
        return False

    def holds_nest(stmt: Stmt) -> bool:
        return any(isinstance(x, For) and x.var == nest.m for x in walk_stmts((stmt,)))

    def place(body: tuple[Stmt, ...], pending: list[View], defined: set[str]) -> tuple[Stmt, ...]:
        """Declare each view right before the outermost statement around the nest that does not
        write its array and that its offset's loop variables are defined outside of: a copy made
        there runs once per value of the array, not once per iteration of the loops around the
        nest, and lives only as long as that statement."""
        out: list[Stmt] = []
        for stmt in body:
            if isinstance(stmt, For) and stmt.var == nest.m:
                out.extend(pending)
                out.append(replace(stmt, body=map_body_exprs(stmt.body, fn)))
            elif isinstance(stmt, (For, If)) and holds_nest(stmt):
                before = [v for v in pending if _uses(v.offset, loops) <= defined and not writes(stmt, v.base)]
                out.extend(before)
                pending = [v for v in pending if v not in before]
                if isinstance(stmt, For):
                    out.append(replace(stmt, body=place(stmt.body, pending, defined | {stmt.var})))
                else:
                    out.append(replace(stmt, then=place(stmt.then, pending, defined),
                                       orelse=place(stmt.orelse, pending, defined)))
            else:
                out.append(stmt)
        return tuple(out)

    body = place(kernel.body, [va, vb], set())
    c = Contraction(nest.m, nest.n, nest.k, nest.acc, a_name, (nest.m, nest.k), b_name, (nest.n, nest.k))
    return replace(kernel, body=body), c


def hoist_view(kernel: Kernel, name: str) -> Kernel:
    """Move the declaration of view ``name`` out of the loops around it that neither bind a variable
    of its offset nor write its storage (so what is staged where the view is declared — see
    :func:`stage_b` — is copied once per value of the loops it really depends on)."""
    st = storages(kernel)
    if name not in st:
        return kernel
    root = st[name].root

    def writes_root(body: tuple[Stmt, ...]) -> bool:
        return any(isinstance(x, Store) and x.buf in st and st[x.buf].root == root for x in walk_stmts(body))

    def lift(body: tuple[Stmt, ...]) -> tuple[tuple[Stmt, ...], bool]:
        out: list[Stmt] = []
        moved = False
        for x in body:
            if isinstance(x, For):
                view = next((v for v in x.body if isinstance(v, View) and v.name == name), None)
                if view is not None and x.var not in _uses(view.offset, {x.var}) and not writes_root(x.body):
                    out.append(view)
                    out.append(replace(x, body=tuple(v for v in x.body if v is not view)))
                    moved = True
                    continue
                inner, m = lift(x.body)
                x = replace(x, body=inner)
                moved = moved or m
            elif isinstance(x, If):
                t, m1 = lift(x.then)
                e, m2 = lift(x.orelse)
                x = replace(x, then=t, orelse=e)
                moved = moved or m1 or m2
            out.append(x)
        return tuple(out), moved

    body, moved = lift(kernel.body)
    while moved:
        body, moved = lift(body)
    return replace(kernel, body=body)


# ------------------------------------------------------------------------- run-time B staging


def stage_b(kernel: Kernel, c: Contraction, p: Packing, t: Type) -> Kernel:
    """Copy view ``p.src`` ([N][K]) into a local ``p.dst`` [N/C][K/L][C][L] of type ``t`` (zero
    padded, without index guards) right after the view's declaration, and read it from there.  The
    local is declared there too, so copies of different nests can share scratch memory (arrays
    above ``kgen.scratch.STACK_LIMIT`` bytes live in the caller's scratch buffer wherever they are
    declared)."""
    names = (f"{p.dst}_nb", f"{p.dst}_kb", f"{p.dst}_c", f"{p.dst}_l")
    v = {x: Var(x, IDX) for x in names}
    n_ix = Bin("add", Bin("mul", Const(p.C, IDX), v[names[0]], IDX), v[names[2]], IDX)
    k_ix = Bin("add", Bin("mul", Const(p.L, IDX), v[names[1]], IDX), v[names[3]], IDX)
    src_t = storages(kernel)[p.src].type
    fill = Store(p.dst, tuple(v[x] for x in names), Cast(Load(p.src, (n_ix, k_ix), src_t), t))
    zero = Store(p.dst, tuple(v[x] for x in names), Const(0, t))
    bounds = tuple(b for b in (PadBound(names[0], p.C, names[2], p.N), PadBound(names[1], p.L, names[3], p.K))
                   if b.extent % b.factor)
    nest = padded_fill(tuple((x, 0, extent) for x, extent in zip(names, p.shape)), bounds, fill, zero)
    alloc = Alloc(p.dst, t, tuple(Const(d, IDX) for d in p.shape))

    def fn(e: Expr) -> Expr:
        if isinstance(e, Load) and e.buf == p.src:
            idx = p.index(e)
            if idx is None:
                raise ValueError(f"stage_b({p.src}): index {e.index} is not decomposable")
            return Load(p.dst, idx, t, e.loc)
        return e

    def body(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in stmts:
            if isinstance(s, View) and s.name == p.src:
                out.extend((s, alloc) + nest)
                continue
            if isinstance(s, For):
                s = replace(s, body=body(s.body))
            elif isinstance(s, If):
                s = replace(s, then=body(s.then), orelse=body(s.orelse))
            out.append(s)
        return tuple(out)

    return replace(kernel, body=body(map_body_exprs(kernel.body, fn)))


# ------------------------------------------------------------------------------ the driver


def _unguarded_loads(body: tuple[Stmt, ...], bufs: set[str], copies: frozenset[str] = frozenset()) -> bool:
    """Some statement outside every ``if`` loads from ``bufs``, other than a store into one of
    ``copies`` (the staging copies: guarded, or split by :func:`~kgen.backends.padding.padded_fill`
    so that they read real elements only)."""
    for x in body:
        if isinstance(x, If):
            continue
        if isinstance(x, For):
            if _unguarded_loads(x.body, bufs, copies):
                return True
            continue
        if isinstance(x, Store) and x.buf in copies:
            continue
        if any(isinstance(y, Load) and y.buf in bufs for e in stmt_exprs(x) for y in walk_expr(e)):
            return True
    return False


def _extend_loop(kernel: Kernel, var: str, hi: int) -> Kernel:
    """Loop ``var`` runs to ``hi`` (the caller guarantees the extra iterations add nothing)."""

    def go(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for x in body:
            if isinstance(x, For):
                x = replace(x, body=go(x.body), hi=Const(hi, IDX) if x.var == var else x.hi)
            elif isinstance(x, If):
                x = replace(x, then=go(x.then), orelse=go(x.orelse))
            out.append(x)
        return tuple(out)

    return replace(kernel, body=go(kernel.body))

#: ISA-specific part of :func:`block_nests`: ``(kernel, nest, contraction, R, C) -> (kernel, names, note)``
#: packs or stages the tiled nest's operands; ``names`` are the buffers it created or now reads
#: (never contraction nests of their own) and ``note`` documents the choice.
Stager = Callable[[Kernel, Nest, Contraction, int, int], tuple[Kernel, set[str], str]]


def block_nests(kernel: Kernel, sizes: Mapping[str, int], tile: tuple[int, int], group: int, k_unroll: int,
                stage: Stager, max_nests: int = 64) -> tuple[Kernel, set[str], list[str]]:
    """Register-block every 8-bit contraction nest of ``kernel`` (specialised at ``sizes``): operands
    flattened to 2-D views, an R×C tile (R at most the nest's rows, leftover rows jammed into one
    block), K split by ``group`` and unrolled by ``k_unroll`` groups, then ``stage``.  Returns the
    kernel, every buffer name the stagers reported (plus the flattened views) and their notes."""
    s = uniquify_loops(specialize(kernel, sizes))
    C = tile[1]
    staged: set[str] = set()
    notes: list[str] = []
    for i in range(max_nests):
        nests = [n for n in find_nests(s) if n.a.buf not in staged and n.b.buf not in staged
                 and n.a.type.bits == 8 and n.b.type.bits == 8]
        if not nests:
            break
        nest = nests[0]
        s = expose_row(s, nest)
        R = min(tile[0], nest.M)  # a block of fewer rows than the tile: one block of all of them
        before = s
        pad = getattr(stage, "pads_k", None)
        for padded in (True, False):
            s, c = flatten_operands(before, nest, f"{nest.a.buf}_v{i}", f"{nest.b.buf}_v{i}")
            padded = padded and pad is not None and nest.K % group != 0 and pad(s, c)
            if padded:
                # both operands are staged zero padded: the reduction runs over whole groups
                s = _extend_loop(s, c.k, ceil(nest.K / group) * group)
            s = tile_contraction(s, sizes, c, R, C, group, jam_row_tail=True)
            s = unroll_k(s, f"{c.k}_o", ceil(nest.K / group), k_unroll)
            s, names, note = stage(s, nest, c, R, C)
            if not padded or not _unguarded_loads(s.body, {c.a, c.b}, frozenset(names - {c.a, c.b})):
                break  # (padding needs every operand access staged: otherwise lower without it)
        staged |= names | {c.a, c.b}
        notes.append(note)
    return s, staged, notes


__all__ = ["uniquify_loops", "find_nests", "expose_row", "flatten_operands", "stage_b", "storages", "Nest",
           "block_nests", "Stager", "hoist_view"]
