"""Loop restructuring that turns row-at-a-time code into contraction nests (specialised kernels).

Two semantics-preserving rewrites expose matrix-matrix nests to the register-blocking driver
(:func:`kgen.backends.nests.block_nests`):

* :func:`split_reductions` — a reduction loop that updates several independent accumulators
  (``aq += x·wq; ak += x·wk; av += x·wv``) is split into one loop per accumulator, and the loops
  around it are split the same way while the parts stay independent (each part assigns only its
  own scalars and no part touches a buffer another part writes), so each accumulator gets a
  nest of its own;
* :func:`block_rows` — a loop ``for i`` whose body computes matrix-vector products for one row
  (``for j { acc = Σ_p A[i, p]·B[j, p] }``, reading either a row of ``A`` indexed by ``i`` or a
  per-row buffer) is strip-mined by R rows; arrays private to an iteration
  (:func:`kgen.backends.loopdeps.private_arrays`) get a leading dimension R (array expansion), and
  the R-row loop is distributed over the body's statements.  The iterations are independent
  (:func:`kgen.backends.loopdeps.independent_iterations`), so running each part for all R rows
  before the next keeps every result; the matrix-vector products become R-row contractions.  The
  M % R leftover rows run the original body.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir import (IDX, Alloc, Assign, Bin, Const, Decl, Expr, For, If, Kernel, Load, Stmt, Store, Var, View,
                  stmt_exprs, walk_expr, walk_stmts)
from ..rewrite import map_body_exprs, substitute_body
from ..schedule import ScheduleError, split
from .contraction import _product_loads
from .loopdeps import accesses, independent_iterations, private_arrays
from .nests import _role, _uses, uniquify_loops

# ------------------------------------------------------------------------------ helpers


def _scalars_read(s: Stmt) -> set[str]:
    return {x.name for st in walk_stmts((s,)) for e in stmt_exprs(st) for x in walk_expr(e) if isinstance(x, Var)}


def _scalars_set(s: Stmt) -> set[str]:
    return {st.name for st in walk_stmts((s,)) if isinstance(st, (Assign, Decl))}


def _groups(body: tuple[Stmt, ...], kernel: Kernel, contiguous: bool) -> list[list[int]]:
    """Statement indices of ``body`` grouped so that no two groups share a scalar or an array
    declared in ``body`` (views are not grouped: they are copied into every group that uses
    them); with ``contiguous``, each group is a run of consecutive statements."""
    n = len(body)
    owner = list(range(n))

    def find(i: int) -> int:
        while owner[i] != i:
            owner[i] = owner[owner[i]]
            i = owner[i]
        return i

    local = {s.name: i for i, s in enumerate(body) if isinstance(s, (Decl, Alloc))}
    views = {s.name: s for s in body if isinstance(s, View)}
    for i, s in enumerate(body):
        if isinstance(s, View):
            continue
        names = _scalars_read(s) | _scalars_set(s)
        bufs = {a.buf for a in accesses(kernel, (s,))} | {x.buf for x in walk_stmts((s,)) if isinstance(x, Store)}
        bufs |= {x.buf for st in walk_stmts((s,)) for e in stmt_exprs(st) for x in walk_expr(e) if isinstance(x, Load)}
        bufs |= {views[b].base for b in bufs if b in views}
        for name in (names | bufs) & set(local):
            owner[find(i)] = find(local[name])
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(body):
        if not isinstance(s, View):
            groups.setdefault(find(i), []).append(i)
    out = sorted(groups.values())
    if not contiguous:
        return out
    merged: list[list[int]] = []
    for g in out:
        lo, hi = g[0], g[-1]
        if merged and lo <= merged[-1][-1]:
            merged[-1] = list(range(merged[-1][0], max(merged[-1][-1], hi) + 1))
        else:
            merged.append(list(range(lo, hi + 1)))
    return [[i for i in g if not isinstance(body[i], View)] for g in merged]


def _distribute(lp: For, kernel: Kernel) -> tuple[For, ...]:
    """``for v { S1 … Sn }`` → one loop over ``v`` per segment (views copied where used).  The
    caller guarantees that the iterations are independent."""
    groups = _groups(lp.body, kernel, contiguous=True)
    if len(groups) < 2:
        return (lp,)
    views = [(i, s) for i, s in enumerate(lp.body) if isinstance(s, View)]
    out = []
    for g in groups:
        part = [lp.body[i] for i in g]
        used = {a.buf for a in accesses(kernel, tuple(part))}
        needed: list[Stmt] = []
        for _, v in views:
            if v.name in used or any(w.base == v.name for _, w in views if w.name in used):
                needed.append(v)
        out.append(replace(lp, body=tuple(needed) + tuple(part)))
    return tuple(out)


# -------------------------------------------------------------------------- split reductions


def _independent_parts(parts: list[tuple[Stmt, ...]], kernel: Kernel) -> bool:
    """No part touches a buffer another part writes, and each part assigns only scalars no other
    part reads or assigns."""
    for i, p in enumerate(parts):
        wr = {a.root for a in accesses(kernel, p) if a.store}
        sc = {n for s in p for n in _scalars_set(s)}
        for j, q in enumerate(parts):
            if i == j:
                continue
            if wr & {a.root for a in accesses(kernel, q)}:
                return False
            if sc & {n for s in q for n in _scalars_read(s) | _scalars_set(s)}:
                return False
    return True


def split_reductions(kernel: Kernel) -> Kernel:
    """See the module docstring.  Loops are only split where a multi-accumulator reduction is."""

    def is_multi(lp: For) -> bool:
        ups = [s for s in lp.body if isinstance(s, Assign)]
        return len(ups) >= 2 and len(ups) == len(lp.body) and len({s.name for s in ups}) == len(ups)

    def rewrite(body: tuple[Stmt, ...]) -> tuple[tuple[Stmt, ...], bool]:
        out: list[Stmt] = []
        changed = False
        for s in body:
            if isinstance(s, For):
                inner, ch = rewrite(s.body)
                s = replace(s, body=inner)
                if is_multi(s):
                    parts = [(u,) for u in s.body]
                    if _independent_parts(parts, kernel):
                        out.extend(replace(s, body=p) for p in parts)
                        changed = True
                        continue
                if ch:
                    parts = [tuple(s.body[i] for i in g) for g in _groups(s.body, kernel, contiguous=False)]
                    if len(parts) >= 2 and not any(isinstance(x, View) for x in s.body) and \
                            _independent_parts(parts, kernel):
                        out.extend(replace(s, body=p) for p in parts)
                        changed = True
                        continue
                changed = changed or ch
            elif isinstance(s, If):
                t, c1 = rewrite(s.then)
                e, c2 = rewrite(s.orelse)
                s = replace(s, then=t, orelse=e)
                changed = changed or c1 or c2
            out.append(s)
        return tuple(out), changed

    body, changed = rewrite(kernel.body)
    return uniquify_loops(replace(kernel, body=body)) if changed else kernel


# ------------------------------------------------------------------------------- block rows


def _matvec(lp: For, private: set[str] | None, kernel: Kernel) -> bool:
    """``lp``'s body holds ``for j { var acc …; for k { acc += A·B }; … }`` with B indexed by
    (j, k) and A by (lp.var, k) or a private array indexed by k (any local array when ``private``
    is None: a cheap test before the proof)."""
    from .nests import storages

    st = storages(kernel)
    for j in lp.body:
        if not isinstance(j, For):
            continue
        reds = [s for s in j.body if isinstance(s, For)]
        if len(reds) != 1 or len(reds[0].body) != 1 or not isinstance(reds[0].body[0], Assign):
            continue
        upd = reds[0].body[0]
        if not (isinstance(upd.value, Bin) and upd.value.op == "add"):
            continue
        loads = _product_loads(upd.value.b)
        if loads is None:
            continue
        k = reds[0].var
        for a, b in (loads, loads[::-1]):
            if a.type.bits != 8 or b.type.bits != 8 or not _role(b, j.var, k) or _uses(a, {j.var}):
                continue
            if _role(a, lp.var, k):
                return True
            local = st[a.buf].root not in {p.name for p in kernel.buffers} if a.buf in st else False
            if local and (private is None or st[a.buf].root in private) and k in _uses(a, {k}) \
                    and not _uses(a, {lp.var}):
                return True
    return False


def _expand(body: tuple[Stmt, ...], arrays: dict[str, str], sizes: dict[str, int], var: str) -> tuple[Stmt, ...]:
    """Accesses of ``arrays`` (old name -> expanded name) become ``new[var, …]``; views of them are
    rebased onto the expanded storage at ``var · size``."""
    v = Var(var, IDX)

    def fn(e: Expr) -> Expr:
        if isinstance(e, Load) and e.buf in arrays:
            return Load(arrays[e.buf], (v,) + e.index, e.type, e.loc)
        return e

    def stmt(s: Stmt) -> Stmt:
        if isinstance(s, Store) and s.buf in arrays:
            s = Store(arrays[s.buf], (v,) + s.index, s.value, s.loc)
        if isinstance(s, View) and s.base in arrays:
            off = Bin("add", s.offset, Bin("mul", v, Const(sizes[s.base], IDX), IDX), IDX)
            s = replace(s, base=arrays[s.base], offset=off)
        if isinstance(s, For):
            return replace(s, body=tuple(stmt(x) for x in s.body))
        if isinstance(s, If):
            return replace(s, then=tuple(stmt(x) for x in s.then), orelse=tuple(stmt(x) for x in s.orelse))
        return s

    return tuple(stmt(s) for s in map_body_exprs(body, fn))


def block_rows(kernel: Kernel, R: int, cores: int = 1) -> Kernel:
    """Strip-mine every loop that computes matrix-vector products per row (module docstring);
    with several cores, blocks shrink so that every core gets one where the rows allow."""
    k = uniquify_loops(kernel)
    done: set[str] = set()
    for _ in range(16):
        cand = None
        for lp in walk_stmts(k.body):
            if not isinstance(lp, For) or lp.var in done or lp.has("parallel"):
                continue
            if not (isinstance(lp.lo, Const) and isinstance(lp.hi, Const)) or lp.lo.value != 0:
                continue
            if lp.hi.value < 2 or any(isinstance(s, For) and s.var in done for s in walk_stmts(lp.body)):
                continue
            if len(lp.body) == 1 and isinstance(lp.body[0], For):
                continue  # already the row loop of a nest
            if not _matvec(lp, None, k):
                continue
            private = private_arrays(k, lp)
            inside = {id(s) for s in walk_stmts(lp.body)}
            private -= {s.base for s in walk_stmts(k.body) if isinstance(s, View) and id(s) not in inside}
            if _matvec(lp, private, k) and independent_iterations(k, lp, private):
                cand = (lp, private)
                break
        if cand is None:
            return k
        lp, private = cand
        done |= {lp.var, f"{lp.var}_b", f"{lp.var}_r", f"{lp.var}_l"}
        rows = min(R, lp.hi.value, max(1, lp.hi.value // cores) if cores > 1 else R)  # type: ignore[union-attr]
        if rows < 2:
            continue
        k = _block(k, lp, private, rows)
    return k


def _block(k: Kernel, lp: For, private: set[str], R: int) -> Kernel:
    names = (f"{lp.var}_b", f"{lp.var}_r", f"{lp.var}_l")
    try:
        k = split(k, lp.var, R, "cut", names)
    except ScheduleError:
        return k
    allocs = {s.name: s for s in walk_stmts(k.body) if isinstance(s, Alloc) and s.name in private}
    taken = {s.name for s in walk_stmts(k.body) if isinstance(s, (Alloc, View, Decl))}
    new: dict[str, str] = {}
    for name in sorted(allocs):
        n = f"{name}_{lp.var}"
        while n in taken:
            n += "_"
        taken.add(n)
        new[name] = n
    sizes = {}
    for name, a in allocs.items():
        count = 1
        for d in a.shape:
            count *= d.value  # type: ignore[union-attr]
        sizes[name] = count

    def body(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in stmts:
            if isinstance(s, Alloc) and s.name in new:
                out.append(s)
                out.append(Alloc(new[s.name], s.type, (Const(R, IDX),) + s.shape, s.loc))
                continue
            if isinstance(s, For) and s.var == names[1]:
                s = replace(s, body=_expand(s.body, new, sizes, s.var))
                out.extend(_distribute(s, k))
                continue
            if isinstance(s, For) and s.var == names[2] and isinstance(s.lo, Const):
                # the leftover rows: one more (shorter) block over the first rows of the expanded arrays
                lo = s.lo
                shifted = substitute_body(s.body, {s.var: Bin("add", Var(s.var, IDX), lo, IDX)})
                s = replace(s, lo=Const(0, IDX), hi=Const(s.hi.value - lo.value, IDX),  # type: ignore[union-attr]
                            body=_expand(shifted, new, sizes, s.var))
                out.extend(_distribute(s, k))
                continue
            if isinstance(s, For):
                s = replace(s, body=body(s.body))
            elif isinstance(s, If):
                s = replace(s, then=body(s.then), orelse=body(s.orelse))
            out.append(s)
        return tuple(out)

    k = replace(k, body=body(k.body))
    # drop the original arrays when no leftover rows use them
    used = {a.root for a in accesses(k, k.body)}
    k = replace(k, body=_drop_allocs(k.body, set(new) - used))
    return uniquify_loops(k)


def _drop_allocs(body: tuple[Stmt, ...], names: set[str]) -> tuple[Stmt, ...]:
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, Alloc) and s.name in names:
            continue
        if isinstance(s, For):
            s = replace(s, body=_drop_allocs(s.body, names))
        elif isinstance(s, If):
            s = replace(s, then=_drop_allocs(s.then, names), orelse=_drop_allocs(s.orelse, names))
        out.append(s)
    return tuple(out)


__all__ = ["split_reductions", "block_rows"]
