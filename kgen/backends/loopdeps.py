"""Dependence facts about one loop of a specialised kernel, proved conservatively.

The transformations that reorder or distribute loop iterations (row blocking with array expansion,
:mod:`kgen.backends.rowblock`; the multi-core split, :mod:`kgen.backends.spmd`) need two facts:

* **private arrays** (:func:`private_arrays`): local arrays used only inside the loop whose every
  element read in an iteration was written earlier in the same iteration.  Their contents never
  flow between iterations, so each iteration (or core) may use its own copy.  Proved by executing
  the index arithmetic of one iteration (data-dependent conditions count as "may not run" for
  writes and "may run" for reads); indices must not depend on the loop variable or on anything
  bound outside the loop;
* **independent iterations** (:func:`independent_iterations`): apart from private arrays and
  arrays declared inside the loop, every buffer the loop writes is *partitioned* by the loop
  variable: all its accesses in the loop (reads and writes, through any view) have flat storage
  offsets ``c·v + g + e`` with the same ``c`` and ``g`` (``g`` bound outside the loop) and inner
  parts ``e`` spanning fewer than ``|c|`` elements, so iterations touch disjoint storage; scalars
  the loop assigns are declared inside it.

Anything that cannot be proved (non-affine indices, data-dependent indices into written buffers,
budgets exceeded) answers "no", which callers turn into "leave the loop alone".
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Mapping

import sympy as sp

from ..affine import affine_form
from ..check import NotAffine, to_sympy
from ..interp import eval_expr
from ..ir import (Alloc, Assign, Const, Decl, Expr, For, If, Kernel, Load, Stmt, Store, Var,
                  stmt_exprs, walk_expr, walk_stmts)
from ..memo import by_identity, per_object
from .nests import storages

#: statement instances one private-array proof may execute
BUDGET = 400_000


@dataclass(frozen=True, eq=False)
class Access:
    buf: str
    root: str
    storage: object  # the buffer's storage (kgen.backends.nests)
    index: tuple[Expr, ...]
    store: bool

    @cached_property
    def offset(self) -> sp.Expr | None:
        """Flat element offset in the root storage; None when not affine."""
        return _offset(self.storage, self.index)


@per_object
def _storage_form(st) -> tuple[tuple[int, dict[str, int]], tuple[int, ...]] | None:
    """The offset and strides of storage ``st`` as integer linear forms, or None."""
    form = None
    if all(x.is_Integer for x in st.strides):
        const, terms = 0, {}
        for term, coeff in sp.expand(st.offset).as_coefficients_dict().items():
            if term == 1 and coeff.is_Integer:
                const += int(coeff)
            elif term.is_Symbol and coeff.is_Integer:
                terms[str(term)] = int(coeff)
            else:
                break
        else:
            form = ((const, terms), tuple(int(x) for x in st.strides))
    return form


def _linear_form(st, index: tuple[Expr, ...]) -> tuple[int, dict[str, int]] | None:
    """The flat offset of ``st[index]`` as an integer linear form, when storage and index allow."""
    form = _storage_form(st)
    if form is None:
        return None
    (const, base), strides = form
    terms = dict(base)
    for ix, stride in zip(index, strides):
        a = affine_form(ix)
        if a is None:
            return None
        const += a[0] * stride
        for v, x in a[1].items():
            terms[v] = terms.get(v, 0) + x * stride
    return const, {v: x for v, x in terms.items() if x}


def _offset(st, index: tuple[Expr, ...]) -> sp.Expr | None:
    lin = _linear_form(st, index)
    if lin is not None:
        return sp.Add(sp.Integer(lin[0]), *(sp.Integer(x) * sp.Symbol(v, integer=True)
                                            for v, x in sorted(lin[1].items())))
    try:
        total = st.offset
        for ix, stride in zip(index, st.strides):
            total = total + to_sympy(ix, {}) * stride
        return sp.expand(total)
    except NotAffine:
        return None


#: per-kernel memo of the accesses of each statement (the analyses ask about the same statements
#: many times): the kernel it belongs to, its storages, and id(statement) -> (statement, accesses)
_MEMO: dict[str, object] = {"kernel": None}


def _subtree(kernel: Kernel, s: Stmt) -> tuple[Access, ...]:
    """The accesses of ``s`` and of the statements nested in it, in program order (cached)."""
    if _MEMO["kernel"] is not kernel:
        _MEMO.update(kernel=kernel, st=storages(kernel), stmts={}, trees={})
    memo = _MEMO["trees"]
    hit = memo.get(id(s))  # type: ignore[union-attr]
    if hit is not None and hit[0] is s:
        return hit[1]
    out = tuple(_direct(kernel, s))
    if isinstance(s, For):
        out += tuple(a for x in s.body for a in _subtree(kernel, x))
    elif isinstance(s, If):
        out += tuple(a for x in s.then + s.orelse for a in _subtree(kernel, x))
    memo[id(s)] = (s, out)  # type: ignore[index]
    return out


def _direct(kernel: Kernel, s: Stmt) -> list[Access]:
    if _MEMO["kernel"] is not kernel:
        _MEMO.update(kernel=kernel, st=storages(kernel), stmts={}, trees={})
    st = _MEMO["st"]
    memo = _MEMO["stmts"]
    hit = memo.get(id(s))  # type: ignore[union-attr]
    if hit is not None and hit[0] is s:
        return hit[1]
    out: list[Access] = []
    if isinstance(s, Store) and s.buf in st:  # type: ignore[operator]
        out.append(Access(s.buf, st[s.buf].root, st[s.buf], s.index, True))  # type: ignore[index]
    for e in stmt_exprs(s):
        for x in walk_expr(e):
            if isinstance(x, Load) and x.buf in st:  # type: ignore[operator]
                out.append(Access(x.buf, st[x.buf].root, st[x.buf], x.index, False))  # type: ignore[index]
    memo[id(s)] = (s, out)  # type: ignore[index]
    return out


def accesses(kernel: Kernel, body: tuple[Stmt, ...]) -> list[Access]:
    """Every load and store in ``body`` with its root storage and flat offset (``body`` must be
    part of ``kernel``, whose views and arrays name the storage)."""
    return [a for s in body for a in _subtree(kernel, s)]


def _loop_ranges(body: tuple[Stmt, ...]) -> dict[str, tuple[int, int]] | None:
    """Inclusive value range of every loop variable bound in ``body`` (None if a bound is not constant)."""
    out: dict[str, tuple[int, int]] = {}
    for s in walk_stmts(body):
        if isinstance(s, For):
            if not (isinstance(s.lo, Const) and isinstance(s.hi, Const)):
                return None
            out[s.var] = (s.lo.value, s.hi.value - 1)
    return out


# ------------------------------------------------------------------------- private arrays


def _linear(st, index: tuple[Expr, ...]) -> tuple[int, tuple[tuple[str, int], ...]] | None:
    """Flat offset as (constant, ((variable, coefficient), …)); None when not affine."""
    lin = _linear_form(st, index)
    if lin is not None:
        return lin[0], tuple(sorted(lin[1].items()))
    off = _offset(st, index)
    if off is None:
        return None
    const, terms = 0, []
    for term in sp.Add.make_args(off):
        if term.is_Integer:
            const += int(term)
            continue
        coeff, sym = term.as_coeff_Mul()
        if not (coeff.is_Integer and sym.is_Symbol):
            return None
        terms.append((str(sym), int(coeff)))
    return const, tuple(terms)


@by_identity(200_000)
def _index_form(index: tuple[Expr, ...], st) -> tuple[int, tuple[tuple[str, int], ...]] | None:
    """:func:`_linear` of ``st[index]``, shared by all proofs."""
    return _linear(st, index)


class _Proof:
    """Executes the index arithmetic of one loop iteration for a set of candidate arrays."""

    def __init__(self, kernel: Kernel, cands: set[str]) -> None:
        self.kernel = kernel
        self.st = storages(kernel)
        self.cands = cands
        self.steps = 0
        self.written: dict[str, set[int]] = {c: set() for c in cands}
        self.failed: set[str] = set()
        self.touch: dict[int, bool] = {}
        self.loads: dict[int, tuple] = {}
        self.plans: dict[int, tuple] = {}

    def _root(self, buf: str) -> str | None:
        st = self.st.get(buf)
        return st.root if st is not None and st.root in self.cands else None

    def touches(self, s: Stmt) -> bool:
        key = id(s)
        if key not in self.touch:
            self.touch[key] = any(a.root in self.cands for a in _subtree(self.kernel, s))
        return self.touch[key]

    def _form(self, buf: str, index: tuple[Expr, ...]) -> tuple | None:
        return _index_form(index, self.st[buf])

    def _leaf(self, s: Stmt) -> tuple[tuple, tuple | None]:
        """Statement ``s`` compiled for the proof: its candidate reads and its candidate store, each
        as (root, linear form of the flat offset or None) (cached)."""
        hit = self.loads.get(id(s))
        if hit is None or hit[0] is not s:
            reads = tuple((self._root(x.buf), self._form(x.buf, x.index)) for e in stmt_exprs(s)
                          for x in walk_expr(e) if isinstance(x, Load) and self._root(x.buf))
            store = None
            if isinstance(s, Store) and self._root(s.buf):
                store = (self._root(s.buf), self._form(s.buf, s.index))
            hit = (s, (reads, store))
            self.loads[id(s)] = hit
        return hit[1]

    @staticmethod
    def _at(form: tuple | None, env: dict[str, int]) -> int | None:
        if form is None:
            return None
        off = form[0]
        for v, c in form[1]:
            x = env.get(v)
            if x is None:
                return None
            off += c * x
        return off

    def _reads(self, reads: tuple, env: dict[str, int]) -> None:
        failed = self.failed
        for root, form in reads:
            if root in failed:
                continue
            off = self._at(form, env)
            if off is None or off not in self.written[root]:
                failed.add(root)

    def _plan(self, body: tuple[Stmt, ...]) -> list[tuple[Stmt, tuple, tuple | None]]:
        """The statements of ``body`` that touch a candidate, with their compiled reads and store (cached)."""
        hit = self.plans.get(id(body))
        if hit is None or hit[0] is not body:
            plan = [(s, *self._leaf(s)) if not isinstance(s, For) else (s, (), None)
                    for s in body if self.touches(s)]
            hit = self.plans[id(body)] = (body, plan)
        return hit[1]

    def run(self, body: tuple[Stmt, ...], env: dict[str, int], definite: bool) -> None:
        """Execute the index arithmetic of ``body`` (``env`` is restored on return).  Every
        statement executed counts against :data:`BUDGET`; beyond it every candidate fails."""
        self.steps += len(body)
        if self.steps > BUDGET:
            self.failed |= self.cands
            return
        for s, reads, store in self._plan(body):
            t = type(s)
            if t is For:
                try:
                    lo, hi = eval_expr(s.lo, env), eval_expr(s.hi, env)
                except (KeyError, TypeError):
                    self.failed |= self.cands
                    return
                had, old = s.var in env, env.get(s.var)
                for v in range(lo, hi):
                    env[s.var] = v
                    self.run(s.body, env, definite)
                if had:
                    env[s.var] = old  # type: ignore[assignment]
                else:
                    env.pop(s.var, None)
                continue
            if reads:
                self._reads(reads, env)
            if t is If:
                try:
                    names = {x.name for x in walk_expr(s.cond) if isinstance(x, Var)}
                    if any(isinstance(x, Load) for x in walk_expr(s.cond)) or not names <= set(env):
                        raise KeyError
                    taken = eval_expr(s.cond, env)
                    self.run(s.then if taken else s.orelse, env, definite)
                except (KeyError, TypeError):
                    self.run(s.then, env, False)
                    self.run(s.orelse, env, False)
                continue
            if store is not None and store[0] not in self.failed:
                off = self._at(store[1], env)
                if off is None:
                    self.failed.add(store[0])
                elif definite:
                    self.written[store[0]].add(off)


def _after(body: tuple[Stmt, ...], loop: For, in_loop: bool = False) -> list[Stmt] | None:
    """What may run after ``loop`` before the kernel ends, in order: the rest of each enclosing
    body and, for bodies of loops, their beginning again (the next iteration); None when
    ``loop`` is not in ``body``."""
    for i, s in enumerate(body):
        inner: list[Stmt] | None = None
        if s is loop:
            inner = []
        elif isinstance(s, For):
            inner = _after(s.body, loop, True)
        elif isinstance(s, If):
            inner = _after(s.then, loop, in_loop) or _after(s.orelse, loop, in_loop)
        if inner is not None:
            return inner + list(body[i + 1:]) + (list(body[:i + 1]) if in_loop else [])
    return None


def private_arrays(kernel: Kernel, loop: For) -> set[str]:
    """Local arrays of ``kernel`` declared outside ``loop`` whose every element an iteration reads
    was written earlier in that iteration, and which are dead after the loop: whatever runs after
    it (a leftover-row copy of the loop, say) writes every element it reads first."""
    inner = {s.name for s in walk_stmts(loop.body) if isinstance(s, Alloc)}
    allocs = {s.name for s in walk_stmts(kernel.body) if isinstance(s, Alloc)} - inner
    cands = allocs & {a.root for a in accesses(kernel, loop.body)}
    if not cands:
        return set()
    proof = _Proof(kernel, cands)
    proof.run(loop.body, {}, True)
    out = cands - proof.failed
    later = tuple(_after(kernel.body, loop) or ())
    used = out & {a.root for a in accesses(kernel, later)}
    if used:
        dead = _Proof(kernel, used)
        dead.run(later, {}, True)
        out -= dead.failed
    return out


# --------------------------------------------------------------------- independent iterations


def _assigned_outside(loop: For) -> bool:
    declared = {s.name for s in walk_stmts(loop.body) if isinstance(s, Decl)}
    return any(isinstance(s, Assign) and s.name not in declared for s in walk_stmts(loop.body))


#: affine index points one disjointness proof may enumerate
POINTS = 1 << 22


def partitioned(offsets: list[sp.Expr], var: str, trip: tuple[int, int], inner: Mapping[str, tuple[int, int]]
                ) -> bool:
    """Iterations ``var`` in ``trip`` (inclusive range) of the accesses at ``offsets`` touch
    disjoint storage: every offset is ``f(var, inner) + g`` with the same ``g`` (the part bound
    outside the loop), and no offset value is reached from two iterations (enumerated over the
    inner loop ranges, a box that may over-approximate what runs)."""
    import numpy as np

    v = sp.Symbol(var, integer=True)
    g0 = None
    values: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for off in offsets:
        off = sp.expand(off)
        local, g = sp.Integer(0), sp.Integer(0)
        for term in sp.Add.make_args(off):
            names = {str(x) for x in term.free_symbols}
            (local := local + term) if names <= set(inner) | {var} else (g := g + term)
        if g0 is not None and sp.expand(g - g0) != 0:
            return False
        g0 = g
        syms = sorted(local.free_symbols - {v}, key=str)
        ranges = [np.arange(trip[0], trip[1] + 1)] + [np.arange(inner[str(x)][0], inner[str(x)][1] + 1) for x in syms]
        if np.prod([len(r) for r in ranges], dtype=np.int64) > POINTS:
            return False
        grids = np.meshgrid(*ranges, indexing="ij")
        terms = sp.expand(local).as_coefficients_dict()
        if all(c.is_Integer and (x == 1 or x.is_Symbol) for x, c in terms.items()):
            by_name = dict(zip([v] + syms, grids))
            total = np.zeros(grids[0].shape, dtype=np.int64)
            for x, c in terms.items():
                total = total + (int(c) if x == 1 else int(c) * by_name[x])
        else:
            fn = sp.lambdify([v] + syms, local, "numpy")
            total = np.broadcast_to(np.asarray(fn(*grids)), grids[0].shape)
        if not np.all(np.isfinite(total)) if total.dtype.kind == "f" else False:
            return False
        values.append(np.rint(total).astype(np.int64).reshape(-1))
        owners.append(grids[0].reshape(-1))
    if not values:
        return True
    vals, own = np.concatenate(values), np.concatenate(owners)
    order = np.lexsort((own, vals))
    vals, own = vals[order], own[order]
    same = vals[1:] == vals[:-1]
    return not bool(np.any(same & (own[1:] != own[:-1])))


def independent_iterations(kernel: Kernel, loop: For, private: set[str] = frozenset()) -> bool:
    """The iterations of ``loop`` touch disjoint storage apart from ``private`` arrays and arrays
    declared inside the loop, and carry no scalar (see the module docstring)."""
    if _assigned_outside(loop) or any(isinstance(s, For) and s.has("parallel") for s in walk_stmts(loop.body)):
        return False
    inner = _loop_ranges(loop.body)
    if inner is None or not (isinstance(loop.lo, Const) and isinstance(loop.hi, Const)):
        return False
    trip = (loop.lo.value, loop.hi.value - 1)
    local = {s.name for s in walk_stmts(loop.body) if isinstance(s, Alloc)} | set(private)
    acc = [a for a in accesses(kernel, loop.body) if a.root not in local]
    written = {a.root for a in acc if a.store}
    for root in written:
        offs = [a.offset for a in acc if a.root == root]
        if any(o is None for o in offs) or not partitioned(offs, loop.var, trip, inner):  # type: ignore[arg-type]
            return False
    return True


def find_loop(body: tuple[Stmt, ...], var: str) -> For | None:
    return next((s for s in walk_stmts(body) if isinstance(s, For) and s.var == var), None)


__all__ = ["Access", "accesses", "private_arrays", "independent_iterations", "partitioned", "find_loop"]
