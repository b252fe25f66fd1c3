"""Register-blocked lowering of int8 contractions (matmul-like reduction nests), ISA-independent.

A *contraction* is the nest ``for m { for n { var acc = init; for k { acc += i32(A[..m..k..]) *
i32(B[..n..k..]) }; epilogue(acc) } }``.  The lowering

1. tiles m × n into an R × C register block (split with cut tails, reorder),
2. splits k by the lane count L of the target's dot-product instruction and unrolls it,
3. unrolls-and-jams the tile loops so the R·C accumulators live in registers,
4. *packs* operands so that the L values one instruction consumes are adjacent:
   constant weights ``B`` are re-laid out offline (a packer computes them from the DSL-level
   argument), activations ``A`` are staged per row block into a local array,
5. hands the result to instruction selection, which matches the dot-product semantics.

Every step is a semantics-preserving rewrite; the reference interpreter runs the lowered kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil
from typing import Callable, Mapping

import numpy as np
import sympy as sp

from ..check import to_sympy
from ..ir import (I32, IDX, Alloc, Assign, Bin, BufferParam, Cast, Const, Decl, Expr, For, If, Kernel,
                  Load, Stmt, Store, Type, Var, walk_stmts)
from ..affine import affine_form, form_expr
from ..rewrite import map_body_exprs, map_expr
from ..interp import eval_expr
from .padding import PadBound, padded_fill
from ..schedule import ScheduleError, distribute, fuse_updates, reorder, specialize, split, unroll, unroll_jam


@dataclass(frozen=True)
class Contraction:
    m: str
    n: str
    k: str
    acc: str
    a: str  # operand indexed by (m, k)
    a_dims: tuple[str, ...]
    b: str  # operand indexed by (n, k)
    b_dims: tuple[str, ...]


def _product_loads(e: Expr) -> tuple[Load, Load] | None:
    if isinstance(e, Bin) and e.op == "mul" and e.type == I32:
        a, b = e.a, e.b
        if isinstance(a, Cast) and isinstance(b, Cast) and isinstance(a.a, Load) and isinstance(b.a, Load):
            return a.a, b.a
    return None


def _dims(ld: Load) -> tuple[str, ...] | None:
    out = []
    for i in ld.index:
        if not isinstance(i, Var):
            return None
        out.append(i.name)
    return tuple(out)


def find_contraction(kernel: Kernel) -> Contraction | None:
    """The first m/n/k reduction nest of the kernel (None when there is none)."""
    for outer in walk_stmts(kernel.body):
        if not (isinstance(outer, For) and len(outer.body) == 1 and isinstance(outer.body[0], For)):
            continue
        inner = outer.body[0]
        decls = [s for s in inner.body if isinstance(s, Decl)]
        loops = [s for s in inner.body if isinstance(s, For)]
        if len(loops) != 1 or not decls or len(loops[0].body) != 1:
            continue
        red = loops[0]
        upd = red.body[0]
        if not (isinstance(upd, Assign) and isinstance(upd.value, Bin) and upd.value.op == "add"
                and upd.value.a == Var(upd.name, I32) and upd.name in {d.name for d in decls}):
            continue
        loads = _product_loads(upd.value.b)
        if loads is None:
            continue
        la, lb = loads
        da, db = _dims(la), _dims(lb)
        if da is None or db is None:
            continue
        m, n, k = outer.var, inner.var, red.var
        if n in da and m in db:
            la, lb, da, db = lb, la, db, da
        if sorted(da) != sorted((m, k)) or sorted(db) != sorted((n, k)):
            continue
        params = {p.name for p in kernel.buffers}
        if la.buf not in params or lb.buf not in params:
            continue  # operands in local arrays: left to the portable path
        return Contraction(m, n, k, upd.name, la.buf, da, lb.buf, db)
    return None


# ------------------------------------------------------------------------ index decomposition


def divmod_index(e: Expr, f: int) -> tuple[Expr, int] | None:
    """Write affine ``e`` as ``f*q + r`` with constant 0 <= r < f (None if not possible)."""
    form = affine_form(e)
    if form is not None:
        const, terms = form
        if any(c % f for c in terms.values()):
            return None
        return form_expr((const // f, {v: c // f for v, c in terms.items()})), const % f
    s = sp.expand(to_sympy(e, {}))
    const = int(s.as_coeff_Add()[0]) if s.as_coeff_Add()[0].is_number else 0
    rest = sp.expand(s - const)
    for term in sp.Add.make_args(rest):
        coeff = term.as_coeff_Mul()[0]
        if term != 0 and (not coeff.is_integer or int(coeff) % f):
            return None
    q = sp.expand(rest / f) + const // f
    return from_sympy(q), const % f


def from_sympy(s: sp.Expr) -> Expr:
    """Affine sympy expression → index IR (integer coefficients)."""
    s = sp.expand(s)
    const, rest = s.as_coeff_Add()
    out: Expr | None = None
    for term in sorted(sp.Add.make_args(rest), key=str):
        if term == 0:
            continue
        coeff, sym = term.as_coeff_Mul()
        t: Expr = Var(str(sym), IDX)
        if coeff != 1:
            t = Bin("mul", Const(int(coeff), IDX), t, IDX)
        out = t if out is None else Bin("add", out, t, IDX)
    if out is None:
        return Const(int(const), IDX)
    if const:
        out = Bin("add", out, Const(int(const), IDX), IDX)
    return out


# ---------------------------------------------------------------------------------- packing


@dataclass(frozen=True)
class Packing:
    """Param ``src`` [.., n, .., k, ..] re-laid out as ``dst`` [N/C][K/L][C][L] of type ``type``."""

    src: str
    dst: str
    type: Type
    n_dim: int
    k_dim: int
    C: int
    L: int
    N: int
    K: int
    #: lane l of a group holds k offset ``perm[l]`` in the packed array (None: k offset l).  Only
    #: the offline packing (:meth:`pack`, :meth:`companion`) applies it; the lowering relabels the
    #: lanes of its reads itself (ARMv7E-M: :func:`kgen.backends.widen.interleave_lanes`).
    perm: tuple[int, ...] | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (ceil(self.N / self.C), ceil(self.K / self.L), self.C, self.L)

    def pack(self, arr: np.ndarray) -> np.ndarray:
        """Offline packing (zero padding in n and k)."""
        out = np.zeros(self.shape, dtype=np.dtype(f"int{self.type.bits}"))
        a = np.moveaxis(np.asarray(arr), (self.n_dim, self.k_dim), (0, 1))
        n = np.arange(self.N)[:, None]
        k = np.arange(self.K)[None, :]
        lane = k % self.L if self.perm is None else np.array([self.perm.index(x) for x in range(self.L)])[k % self.L]
        out[n // self.C, k // self.L, n % self.C, lane] = a
        return out

    def companion(self, kernel: Kernel) -> Kernel:
        """The packing as a DSL kernel (the definition the C and Python companions implement):
        ``dst[nb, kb, c, l] = src[.., C*nb + c, .., L*kb + l, ..]`` inside the source, 0 in the padding."""
        from ..ir import BOOL

        src = kernel.param(self.src)
        assert isinstance(src, BufferParam)
        names = ("nb", "kb", "c", "l")
        v = {n: Var(n, IDX) for n in names}
        n_ix = Bin("add", Bin("mul", Const(self.C, IDX), v["nb"], IDX), v["c"], IDX)
        k_ix = Bin("add", Bin("mul", Const(self.L, IDX), v["kb"], IDX), _perm_lane(self.perm, v["l"]), IDX)
        index: list[Expr] = [Const(0, IDX)] * len(src.shape)
        index[self.n_dim], index[self.k_dim] = n_ix, k_ix
        dst_ix = tuple(v[n] for n in names)
        inside = Bin("land", Bin("lt", n_ix, Const(self.N, IDX), BOOL), Bin("lt", k_ix, Const(self.K, IDX), BOOL), BOOL)
        body: tuple = (If(inside, (Store(self.dst, dst_ix, Cast(Load(self.src, tuple(index), src.type), self.type)),),
                          (Store(self.dst, dst_ix, Const(0, self.type)),)),)
        for n, extent in reversed(list(zip(names, self.shape))):
            body = (For(n, Const(0, IDX), Const(extent, IDX), body),)
        shape = tuple(Const(d, IDX) if isinstance(d, int) else d for d in self.src_shape)
        params = (BufferParam(self.src, src.type, shape, "in"),
                  BufferParam(self.dst, self.type, tuple(Const(d, IDX) for d in self.shape), "out"))
        lanes = "" if self.perm is None else f"; lane l of a group holds k offset {list(self.perm)}[l]"
        doc = (f"Offline packing of `{self.src}` for {kernel.name}: {self.type} [{']['.join(map(str, self.shape))}] "
               f"(n-block, k-group, column, lane{lanes}), zero padded. Run once on constant weights.")
        return Kernel(f"{kernel.name}_pack_{self.src}", params, (), body, None, doc)

    @property
    def src_shape(self) -> tuple[int, ...]:
        dims = [1] * 2
        dims[self.n_dim], dims[self.k_dim] = self.N, self.K
        return tuple(dims)

    def index(self, ld: Load) -> tuple[Expr, ...] | None:
        nq = divmod_index(ld.index[self.n_dim], self.C)
        kq = divmod_index(ld.index[self.k_dim], self.L)
        if nq is None or kq is None:
            return None
        return (nq[0], kq[0], Const(nq[1], IDX), Const(kq[1], IDX))


def _perm_lane(perm: tuple[int, ...] | None, lane: Expr) -> Expr:
    """``perm[lane]`` as an index expression; only the (0, 2, 1, 3) interleave is supported:
    ``(2·l) % 3 + l - l % 3`` (no division: every companion spells ``%`` alike)."""
    if perm is None:
        return lane
    assert perm == (0, 2, 1, 3), perm
    return Bin("sub", Bin("add", Bin("mod", Bin("mul", Const(2, IDX), lane, IDX), Const(3, IDX), IDX), lane, IDX),
               Bin("mod", lane, Const(3, IDX), IDX), IDX)


def pack_param(kernel: Kernel, p: Packing) -> Kernel:
    """Replace parameter ``p.src`` by its packed form ``p.dst`` and rewrite every access."""
    old = kernel.param(p.src)
    assert isinstance(old, BufferParam)

    def fn(e: Expr) -> Expr:
        if isinstance(e, Load) and e.buf == p.src:
            idx = p.index(e)
            if idx is None:
                raise ScheduleError(f"pack({p.src}): index {e.index} is not decomposable")
            return Load(p.dst, idx, p.type, e.loc)
        return e

    params = tuple(BufferParam(p.dst, p.type, tuple(Const(d, IDX) for d in p.shape), "in", None, old.loc)
                   if q.name == p.src else q for q in kernel.params)
    return replace(kernel, params=params, body=map_body_exprs(kernel.body, fn))


def stage_rows(kernel: Kernel, c: Contraction, block_var: str, R: int, L: int, M: int, K: int,
               t: Type, name: str) -> Kernel:
    """Inside loop ``block_var`` (rows R*block_var + r), copy A's R rows, widened to ``t`` and laid
    out [K/L][R][L] (zero padded), into a local array, and read A from it in that loop."""
    m_dim, k_dim = c.a_dims.index(c.m), c.a_dims.index(c.k)

    def rewrite_loop(s: Stmt) -> Stmt:
        if isinstance(s, For) and s.var == block_var:
            def fn(e: Expr) -> Expr:
                if isinstance(e, Load) and e.buf == c.a:
                    mq = divmod_index(e.index[m_dim], R)
                    kq = divmod_index(e.index[k_dim], L)
                    if mq is None or kq is None or mq[0] != Var(block_var, IDX):
                        return e
                    return Load(name, (kq[0], Const(mq[1], IDX), Const(kq[1], IDX)), t, e.loc)
                return e
            body = map_body_exprs(s.body, fn)
            first = Bin("mul", Const(R, IDX), Var(block_var, IDX), IDX)
            return replace(s, body=staging_nest(kernel, c, name, first, R, L, K, t) + body)
        if isinstance(s, For):
            return replace(s, body=tuple(rewrite_loop(x) for x in s.body))
        return s

    return replace(kernel, body=tuple(rewrite_loop(s) for s in kernel.body))


def buffer_type(kernel: Kernel, name: str) -> Type:
    """Element type of a parameter, local array or view (a view's is its base's)."""
    from ..ir import View

    for p in kernel.buffers:
        if p.name == name:
            return p.type
    for st in walk_stmts(kernel.body):
        if isinstance(st, Alloc) and st.name == name:
            return st.type
        if isinstance(st, View) and st.name == name:
            return buffer_type(kernel, st.base)
    raise KeyError(name)


def staging_nest(kernel: Kernel, c: Contraction, name: str, first: Expr, R: int, L: int, K: int, t: Type
                 ) -> tuple[Stmt, ...]:
    """``Alloc name[K/L][R][L]`` followed by the nests that fill it with rows first..first+R-1 of A,
    widened to ``t`` (zero padded in k, without index guards: see :func:`padded_fill`)."""
    m_dim, k_dim = c.a_dims.index(c.m), c.a_dims.index(c.k)
    K2 = ceil(K / L)
    k2, r, j = Var(f"{name}_k", IDX), Var(f"{name}_r", IDX), Var(f"{name}_j", IDX)
    kk = Bin("add", Bin("mul", Const(L, IDX), k2, IDX), j, IDX)
    row = Bin("add", first, r, IDX)
    src_idx: list[Expr] = [Const(0, IDX)] * 2
    src_idx[m_dim], src_idx[k_dim] = row, kk
    fill = Store(name, (k2, r, j), Cast(Load(c.a, tuple(src_idx), buffer_type(kernel, c.a)), t))
    zero = Store(name, (k2, r, j), Const(0, t))
    bounds = (PadBound(k2.name, L, j.name, K),) if K % L else ()
    nest = padded_fill(((k2.name, 0, K2), (r.name, 0, R), (j.name, 0, L)), bounds, fill, zero)
    return (Alloc(name, t, (Const(K2, IDX), Const(R, IDX), Const(L, IDX))),) + nest


def stage_row_tail(kernel: Kernel, c: Contraction, block_var: str, R: int, L: int, M: int, K: int,
                   t: Type, name: str, straight: bool = False) -> Kernel:
    """Stage the M % R leftover rows like :func:`stage_rows` stages a block: the statements after
    loop ``block_var`` that read only those rows of A read them, widened, from a local array
    [K/L][M % R][L] filled once before them (loops only, unless ``straight``: straight-line
    statements too, e.g. the column tail of a single leftover row)."""
    first, rows = M - M % R, M % R
    if rows == 0:
        return kernel
    m_dim, k_dim = c.a_dims.index(c.m), c.a_dims.index(c.k)

    def a_rows(st: Stmt) -> set[int] | None:
        """Constant rows of A that ``st`` reads (None when a row is not a constant)."""
        from ..ir import stmt_exprs, walk_expr

        found: set[int] = set()
        for x in walk_stmts((st,)):
            for e in stmt_exprs(x):
                for ld in walk_expr(e):
                    if isinstance(ld, Load) and ld.buf == c.a:
                        if not isinstance(ld.index[m_dim], Const):
                            return None
                        found.add(ld.index[m_dim].value)
        return found

    def fn(e: Expr) -> Expr:
        if isinstance(e, Load) and e.buf == c.a:
            kq = divmod_index(e.index[k_dim], L)
            if kq is not None:
                return Load(name, (kq[0], Const(e.index[m_dim].value - first, IDX), Const(kq[1], IDX)), t, e.loc)
        return e

    def rewrite_body(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        pos = next((i for i, x in enumerate(body) if isinstance(x, For) and x.var == block_var), None)
        if pos is None:
            return tuple(replace(x, body=rewrite_body(x.body)) if isinstance(x, For) else x for x in body)
        tail = [i for i, x in enumerate(body) if i > pos and a_rows(x)]
        if not tail or any(not (a_rows(body[i]) or set()) <= set(range(first, M)) for i in tail):
            return body
        staged = staging_nest(kernel, c, name, Const(first, IDX), rows, L, K, t)
        out = list(body)
        for i in tail:
            if isinstance(body[i], For):
                out[i] = replace(body[i], body=map_body_exprs(body[i].body, fn))
            elif straight:
                out[i] = map_body_exprs((body[i],), fn)[0]
        out[tail[0]:tail[0]] = list(staged)
        return tuple(out)

    return replace(kernel, body=rewrite_body(kernel.body))


def tile_contraction(kernel: Kernel, sizes: Mapping[str, int], c: Contraction, R: int, C: int, L: int,
                     jam_row_tail: bool = False) -> Kernel:
    """Steps 1-3 of the module docstring on a specialised kernel.  With ``jam_row_tail`` the
    M % R leftover rows form one (M % R)×C register block (sharing the B loads) instead of one
    1×C block per row."""
    s = specialize(kernel, sizes)
    names = lambda v: (f"{v}_o", f"{v}_i", f"{v}_t")  # noqa: E731
    s = split(s, c.m, R, "cut", names(c.m))
    s = split(s, c.n, C, "cut", names(c.n))
    s = _maybe(distribute, s, f"{c.m}_i")  # separate the column tail from the column blocks
    s = _maybe(reorder, s, f"{c.m}_i", f"{c.n}_o")
    s = split(s, c.k, L, "cut", names(c.k))
    for v in (f"{c.k}_i", f"{c.k}_t", f"{c.n}_t") + (() if jam_row_tail else (f"{c.m}_t",)):
        s = _maybe(unroll, s, v)
    for v in (f"{c.n}_i", f"{c.m}_i") + ((f"{c.m}_t",) if jam_row_tail else ()):
        s = _maybe(unroll_jam, s, v)
    if jam_row_tail:
        s = _maybe(unroll, s, f"{c.m}_t")  # a single leftover row: nothing to jam
    return fuse_updates(s)


def _maybe(prim, s: Kernel, *args) -> Kernel:
    """Apply a primitive where it applies (small shapes have no blocks, or no tails); a primitive
    that does not apply leaves the kernel unchanged, which costs speed, never correctness."""
    try:
        return prim(s, *args)
    except ScheduleError:
        return s


def unroll_k(s: Kernel, var: str, steps: int, factor: int) -> Kernel:
    """Unroll the K loop by ``factor`` (completely when it has at most that many steps)."""
    if steps <= factor:
        return _maybe(unroll, s, var)
    s = _maybe(split, s, var, factor, "cut", (f"{var}_u", f"{var}_v", f"{var}_w"))
    s = _maybe(unroll, s, f"{var}_v")
    return _maybe(unroll, s, f"{var}_w")


def extent(kernel: Kernel, buf: str, dims: tuple[str, ...], var: str, sizes: Mapping[str, int]) -> int:
    p = kernel.param(buf)
    return eval_expr(p.shape[dims.index(var)], sizes)  # type: ignore[union-attr]


Packer = Callable[[Mapping[str, object]], np.ndarray]
__all__ = ["Contraction", "find_contraction", "tile_contraction", "Packing", "pack_param", "stage_rows",
           "stage_row_tail", "staging_nest",
           "divmod_index", "from_sympy", "Decl", "Alloc", "Store", "map_expr"]
