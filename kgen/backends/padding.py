"""Zero-padded operand layouts: copy nests without index guards, and reductions over the padding.

A register-blocked contraction reads both operands from arrays padded with zeros to a whole
number of lane groups in k (the offline weight packing and the run-time staging of
:mod:`kgen.backends.contraction` and :mod:`kgen.backends.nests`).  Two consequences:

- :func:`padded_fill` writes such an array without a per-element index test: the full groups,
  then the real and the zero elements of the last, partial group, as separate loop nests;
- :func:`pad_reduction_tails` lets the reduction's tail (the K % L products left after the full
  groups) run over the whole last group: the added products read the zero padding of both
  operands, so they add nothing, and the tail becomes whole packed dot products like the rest.

Both are exact rewrites (the reference interpreter runs the result).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..ir import I32, IDX, Assign, Bin, Cast, Const, Expr, For, If, Kernel, Load, Stmt, Var
from ..rewrite import substitute_body

# ------------------------------------------------------------------------------ guard-free copies


@dataclass(frozen=True)
class PadBound:
    """A zero-padded dimension of a copy nest: the element exists iff ``factor·outer + inner < extent``
    (``outer`` counts blocks of ``factor``, ``inner`` is the position in the block)."""

    outer: str
    factor: int
    inner: str
    extent: int


Loops = tuple[tuple[str, int, int], ...]


def _nest(loops: Loops, st: Stmt, suffix: str) -> tuple[Stmt, ...]:
    out = substitute_body((st,), {v: Var(v + suffix, IDX) for v, _, _ in loops}) if suffix else (st,)
    for v, lo, hi in reversed(loops):
        if hi <= lo:
            return ()
        out = (For(v + suffix, Const(lo, IDX), Const(hi, IDX), out),)
    return out


def padded_fill(loops: Loops, bounds: tuple[PadBound, ...], fill: Stmt, zero: Stmt,
                suffix: str = "") -> tuple[Stmt, ...]:
    """The nest ``for v in lo..hi (each of loops) { if every bound holds: fill else zero }``
    without index guards: each padded dimension is split into its full blocks, the elements of the
    last, partial block and its padding (loops of the split-off parts get a suffix, so no two loops
    share a name).  Each bound's ``outer`` loop must run over exactly ``ceil(extent / factor)``
    blocks from 0."""
    if not bounds:
        return _nest(loops, fill, suffix)
    order = [v for v, _, _ in loops]
    b = min(bounds, key=lambda x: order.index(x.outer))
    rest = tuple(x for x in bounds if x is not b)
    pos = order.index(b.outer)
    prefix, outer, inner = loops[:pos], loops[pos], loops[pos + 1:]
    q, r = divmod(b.extent, b.factor)
    tag = str(len(bounds) - 1) if len(bounds) > 1 else ""  # split-off parts of different bounds differ
    if outer[1:] != (0, -(-b.extent // b.factor)):
        raise ValueError(f"padded_fill: loop {outer} does not run over the blocks of {b}")
    regions: list[Stmt] = []
    if q:
        regions.extend(padded_fill(((b.outer, 0, q),) + inner, rest, fill, zero, suffix))
    if r:
        last = {b.outer: Const(q, IDX)}
        fill_q, zero_q = substitute_body((fill,), last)[0], substitute_body((zero,), last)[0]
        head = tuple((v, lo, r) if v == b.inner else (v, lo, hi) for v, lo, hi in inner)
        pad = tuple((v, r, hi) if v == b.inner else (v, lo, hi) for v, lo, hi in inner)
        regions.extend(padded_fill(head, rest, fill_q, zero_q, f"{suffix}_p{tag}"))
        regions.extend(_nest(pad, zero_q, f"{suffix}_z{tag}"))
    out = tuple(regions)
    if suffix and prefix:
        out = substitute_body(out, {v: Var(v + suffix, IDX) for v, _, _ in prefix})
    for v, lo, hi in reversed(prefix):
        out = (For(v + suffix, Const(lo, IDX), Const(hi, IDX), out),)
    return out


# ------------------------------------------------------------------------- reductions over padding


@dataclass(frozen=True)
class PaddedLayout:
    """An array whose dimension ``group_dim`` counts groups of ``lanes`` k values (the last
    dimension is the lane) and whose elements with k >= ``extent`` are zero."""

    group_dim: int
    lanes: int
    extent: int


@dataclass(frozen=True)
class _Term:
    """One product of a reduction tail: lane ``lane`` of group ``group`` of both operands."""

    a: Load
    b: Load
    group: int
    lane: int

    def key(self) -> tuple:
        return (self.a.buf, self.a.index[:-1], self.b.buf, self.b.index[:-1])


def _terms(value: Expr, acc: str) -> list[Expr] | None:
    """``acc + t1 + t2 + …`` (left-associated) → [t1, t2, …]; None for anything else."""
    out: list[Expr] = []
    while isinstance(value, Bin) and value.op == "add" and value.type == I32:
        out.append(value.b)
        value = value.a
    return out[::-1] if value == Var(acc, I32) and out else None


def _tail_term(e: Expr, layouts: Mapping[str, PaddedLayout]) -> _Term | None:
    """``i32(A[…, g, …, j]) * i32(B[…, g, …, j])`` over two padded arrays, on a real lane of the
    partial last group."""
    if not (isinstance(e, Bin) and e.op == "mul" and e.type == I32 and isinstance(e.a, Cast)
            and isinstance(e.b, Cast) and isinstance(e.a.a, Load) and isinstance(e.b.a, Load)):
        return None
    a, b = e.a.a, e.b.a
    la, lb = layouts.get(a.buf), layouts.get(b.buf)
    if la is None or lb is None or la.lanes != lb.lanes:
        return None
    parts = [(ld.index[lay.group_dim], ld.index[-1]) for ld, lay in ((a, la), (b, lb))]
    if not all(isinstance(g, Const) and isinstance(j, Const) for g, j in parts) or parts[0] != parts[1]:
        return None
    group, lane = parts[0][0].value, parts[0][1].value
    first = group * la.lanes
    if not first + lane < min(la.extent, lb.extent) < first + la.lanes:
        return None
    return _Term(a, b, group, lane)


def _regroup(run: list[tuple[Assign, list[_Term]]], layouts: Mapping[str, PaddedLayout]) -> list[Stmt]:
    """The updates of ``run`` as one statement per (accumulator, operand group) over all lanes,
    when the lanes present are exactly the real ones; else the run unchanged."""
    groups: dict[tuple, list[_Term]] = {}
    for st, terms in run:
        for t in terms:
            groups.setdefault((st.name,) + t.key(), []).append(t)
    out: list[Stmt] = []
    for (acc, *_), terms in groups.items():
        t0 = terms[0]
        L = layouts[t0.a.buf].lanes
        real = min(layouts[t0.a.buf].extent, layouts[t0.b.buf].extent) - t0.group * L
        if sorted(t.lane for t in terms) != list(range(real)):
            return [st for st, _ in run]
        value: Expr = Var(acc, I32)
        for j in range(L):
            a = Load(t0.a.buf, t0.a.index[:-1] + (Const(j, IDX),), t0.a.type, t0.a.loc)
            b = Load(t0.b.buf, t0.b.index[:-1] + (Const(j, IDX),), t0.b.type, t0.b.loc)
            value = Bin("add", value, Bin("mul", Cast(a, I32), Cast(b, I32), I32), I32)
        out.append(Assign(acc, value))
    return out


def pad_reduction_tails(kernel: Kernel, layouts: Mapping[str, PaddedLayout]) -> Kernel:
    """Run every reduction tail over padded operands over its whole last lane group (see the
    module docstring).  A tail is a run of consecutive accumulator updates ``acc = acc + …`` whose
    products all read real lanes of the partial last group of two padded arrays; the run becomes
    one update per accumulator and operand pair, with all lanes in order (updates of different
    accumulators commute, and wrapping addition is associative)."""
    from dataclasses import replace

    def body(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        run: list[tuple[Assign, list[_Term]]] = []
        for s in stmts + (None,):  # type: ignore[operator]
            parsed = None
            if isinstance(s, Assign):
                terms = _terms(s.value, s.name)
                tail = [_tail_term(t, layouts) for t in terms] if terms else None
                if tail and all(t is not None for t in tail):
                    parsed = (s, tail)
            if parsed is not None:
                run.append(parsed)  # type: ignore[arg-type]
                continue
            if run:
                out.extend(_regroup(run, layouts))
                run = []
            if isinstance(s, For):
                s = replace(s, body=body(s.body))
            elif isinstance(s, If):
                s = replace(s, then=body(s.then), orelse=body(s.orelse))
            if s is not None:
                out.append(s)
        return tuple(out)

    return replace(kernel, body=body(kernel.body))


__all__ = ["PadBound", "padded_fill", "PaddedLayout", "pad_reduction_tails"]
