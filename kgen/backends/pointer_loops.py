"""C emission of ``@pointer_ivs`` loops: buffer addresses as pointer induction variables.

A loop annotated ``@pointer_ivs`` (set by a backend, never by the DSL) has the semantics of the
plain loop; only its C spelling changes.  For every buffer whose accesses inside the loop have
flat offsets ``c*v + O + R`` with the same constant step ``c != 0`` and the same part ``O`` in
variables bound outside the loop (``R``: constants and variables bound inside the loop), the
emitter declares a pointer ``p = &buf[O + c*lo]`` before the loop, advances it by ``c`` in the
loop's increment clause and addresses ``p[R]`` inside::

    {
        const int8_t *X_at_m_o = &X[0];
        int8_t *Y_at_m_o = &Y[4 * n_o];
        for (int32_t m_o = 0; m_o < 16; ++m_o, X_at_m_o += 256, Y_at_m_o += 256) {
            ... X_at_m_o[64] ... Y_at_m_o[1] ...
        }
    }

so the compiler sees immediate offsets from registers that advance once per iteration (the
register-blocked XpulpV2 kernels otherwise recompute ``base + v*stride`` in every block and spill
the bases).  Buffers whose offsets do not have that form keep the ordinary indexing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from ..ir import IDX, Alloc, BufferParam, Decl, For, Load, Stmt, Store, View, stmt_exprs, walk_expr, walk_stmts

if TYPE_CHECKING:  # pragma: no cover
    from ..cgen import CEmitter

ATTR = "pointer_ivs"


def _bound_inside(body: tuple[Stmt, ...]) -> tuple[set[str], set[str]]:
    """(index names bound inside ``body``: loop variables and locals, buffers declared inside)."""
    names: set[str] = set()
    bufs: set[str] = set()
    for s in walk_stmts(body):
        if isinstance(s, For):
            names.add(s.var)
        elif isinstance(s, Decl):
            names.add(s.name)
        elif isinstance(s, (Alloc, View)):
            bufs.add(s.name)
    return names, bufs


def _accesses(body: tuple[Stmt, ...]) -> list[tuple[str, tuple]]:
    out: list[tuple[str, tuple]] = []
    for s in walk_stmts(body):
        if isinstance(s, Store):
            out.append((s.buf, s.index))
        for e in stmt_exprs(s):
            out.extend((x.buf, x.index) for x in walk_expr(e) if isinstance(x, Load))
    return out


def _split(total: sp.Expr, var: sp.Symbol, inner: set[str]) -> tuple[int, sp.Expr] | None:
    """``total`` = c*var + O + R; returns (c, O) or None when not of that affine form."""
    total = sp.expand(total)
    step = 0
    outer = sp.Integer(0)
    for term in sp.Add.make_args(total):
        if term.is_number:
            continue
        coeff, rest = term.as_coeff_Mul()
        if not coeff.is_integer or not rest.is_Symbol:
            return None
        if rest == var:
            step += int(coeff)
        elif str(rest) not in inner:
            outer += term
    return (step, outer) if step else None


def pointer_plan(em: "CEmitter", loop: For) -> list[tuple[str, str, int, sp.Expr]]:
    """[(buffer, pointer name, step, outer offset)] for the buffers that become pointer IVs."""
    from ..check import NotAffine, to_sympy

    inner, local_bufs = _bound_inside(loop.body)
    var = sp.Symbol(loop.var, integer=True)
    found: dict[str, tuple[int, sp.Expr] | None] = {}
    for buf, index in _accesses(loop.body):
        if buf in local_bufs or buf not in em.layouts or found.get(buf, 0) is None:
            continue
        lay = em.layouts[buf]
        try:
            total = to_sympy(em.flat_offset(lay, index), {})
        except NotAffine:
            found[buf] = None
            continue
        split = _split(total, var, inner)
        if split is None or found.setdefault(buf, split) != split:
            found[buf] = None
    return [(b, f"{b}_at_{loop.var}", split[0], split[1]) for b, split in found.items() if split is not None]


def _ctype(em: "CEmitter", buf: str) -> str:
    """C element type of a buffer parameter (const for inputs) or of a local array."""
    for p in em.kernel.params:
        if isinstance(p, BufferParam) and p.name == buf:
            return ("const " if p.direction == "in" else "") + p.type.ctype
    for s in walk_stmts(em.kernel.body):
        if isinstance(s, Alloc) and s.name == buf:
            return s.type.ctype
    return ""


def emit_pointer_loop(em: "CEmitter", s: For, depth: int) -> None:
    """Emit ``s`` with pointer induction variables (see the module docstring)."""
    from ..cgen import Layout, _strip, canonical_affine
    from ..check import to_sympy
    from ..ir import Bin
    from .contraction import from_sympy

    plan = [p for p in pointer_plan(em, s) if _ctype(em, p[0])]
    lo, hi = _strip(em.ex(s.lo)), _strip(em.ex(s.hi))
    v = s.var
    if not plan:
        em.emit(depth, f"for (int32_t {v} = {lo}; {v} < {hi}; ++{v}) {{")
        em.body(s.body, depth + 1)
        em.emit(depth, "}")
        return
    em.emit(depth, "{")
    saved = dict(em.layouts)
    steps = []
    sym_v = sp.Symbol(v, integer=True)
    lo_sym = to_sympy(s.lo, {})
    for buf, name, step, outer in plan:
        lay = em.layouts[buf]
        start = _strip(em.ex(canonical_affine(from_sympy(sp.expand(outer + step * lo_sym)))))
        em.emit(depth + 1, f"{_ctype(em, buf)} *{name} = &{lay.pointer}[{start}];")
        shift = from_sympy(sp.expand(outer + step * sym_v))
        em.layouts[buf] = Layout(name, lay.strides, Bin("sub", lay.offset, shift, IDX))
        steps.append(f"{name} += {step}")
    em.emit(depth + 1, f"for (int32_t {v} = {lo}; {v} < {hi}; ++{v}, {', '.join(steps)}) {{")
    em.body(s.body, depth + 2)
    em.emit(depth + 1, "}")
    em.emit(depth, "}")
    em.layouts = saved


__all__ = ["ATTR", "emit_pointer_loop", "pointer_plan"]
