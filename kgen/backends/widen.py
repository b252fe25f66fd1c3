"""Widening copies a word at a time (ARMv7E-M: SXTB16 / UXTB16, even and odd lanes).

The staging nests of the register-blocked lowering copy int8 operands into int16 arrays laid out
in groups of four k values (:func:`kgen.backends.contraction.staging_nest`,
:func:`kgen.backends.nests.stage_b`).  Element by element, a compiler spends a byte load, an
insert and part of a store on every value.  :func:`interleave_lanes` relabels the lanes of every
group of the staged (and offline packed) operands as (0, 2, 1, 3): lane l holds k offset
``PERM[l]``, the order in which the even-lane and odd-lane widenings of one word produce them.  Both
operands of every product carry the same relabelling, so each product still pairs equal k, and the
sums are reordered (wrapping addition is associative and commutative) so that a dual multiply
reads two adjacent lanes.  :func:`widen_copies` then turns each full group ``dst[.., 0..3] =
i16(src[.. b+0 .. b+3])`` whose four source bytes are one aligned word into one word load, the two
widening instructions and two word stores (four instructions per four values).  Without the
relabelling (a lane index that is not a constant) the group is packed back into k order with
PKHBT / PKHTB (six).  The instructions are looked up in the ISA file by their semantic classes;
the copy stays element-wise when one is missing.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..rewrite import substitute, substitute_body
from ..check import NotAffine, to_sympy
from ..ir import (I16, IDX, Alloc, Bin, Call, Cast, Const, Decl, Expr, For, If, Kernel, Load, Store, Stmt,
                  Type, Var, View, walk_stmts)

#: (source element type) -> (semantic class of the even-lane widening, of the odd-lane widening)
WIDEN = {"i8": ("widen_even_s8_s16", "widen_odd_s8_s16"), "u8": ("widen_even_u8_u16", "widen_odd_u8_u16")}
PACK = ("pack_lo_lo_16", "pack_hi_hi_16")
GROUP = 4  # bytes of one word: the lanes of one staged group
#: lane l of an interleaved group holds k offset PERM[l] (its own inverse)
PERM = (0, 2, 1, 3)


def _layouts(kernel: Kernel) -> dict[str, tuple[tuple[sp.Expr, ...], sp.Expr, str]]:
    """name -> (element strides, element offset into the storage, storage name) of every
    parameter, local array and view (views resolved to their storage)."""
    def row_major(shape) -> tuple[sp.Expr, ...]:
        out, acc = [], sp.Integer(1)
        for d in reversed(shape):
            out.append(acc)
            acc = acc * to_sympy(d, {})
        return tuple(reversed(out))

    out: dict[str, tuple[tuple[sp.Expr, ...], sp.Expr, str]] = {}
    for p in kernel.buffers:
        strides = tuple(to_sympy(s, {}) for s in p.strides) if p.strides else row_major(p.shape)
        out[p.name] = (strides, sp.Integer(0), p.name)
    for s in walk_stmts(kernel.body):
        if isinstance(s, Alloc):
            out[s.name] = (row_major(s.shape), sp.Integer(0), s.name)
        elif isinstance(s, View) and s.base in out:
            _, off, storage = out[s.base]
            out[s.name] = (tuple(to_sympy(x, {}) for x in s.strides), off + to_sympy(s.offset, {}), storage)
    return out


def _flat(layouts, buf: str, index: tuple[Expr, ...]) -> sp.Expr | None:
    strides, off, _ = layouts[buf]
    try:
        return sp.expand(off + sum((to_sympy(i, {}) * st for i, st in zip(index, strides)), sp.Integer(0)))
    except NotAffine:
        return None


def _multiple_of(s: sp.Expr, n: int) -> bool:
    return all(t.as_coeff_Mul()[0].is_integer and int(t.as_coeff_Mul()[0]) % n == 0
               for t in sp.Add.make_args(sp.expand(s)) if t != 0)


def widen_copies(kernel: Kernel, isa) -> tuple[Kernel, frozenset[str]]:
    """Rewrite the full groups of the staging copies (see the module docstring); returns the kernel
    and the source buffers now read a word at a time (4-byte aligned words)."""
    by_class = {i.cls: i for i in isa.instrs if i.executable}
    layouts = _layouts(kernel)
    word_read: set[str] = set()
    word_decls: list[str] = []

    def call(cls: str, args: tuple[Expr, ...], t: Type) -> Call:
        return Call(f"isa.{isa.name}.{by_class[cls].mnemonic}", args, t)

    def group(s: For) -> tuple[Stmt, ...] | None:
        if not (isinstance(s.lo, Const) and s.lo.value == 0 and isinstance(s.hi, Const) and s.hi.value == GROUP
                and len(s.body) == 1 and isinstance(s.body[0], Store)):
            return None
        st = s.body[0]
        j = Var(s.var, IDX)
        v = st.value
        if not (isinstance(v, Cast) and v.type == I16 and isinstance(v.a, Load) and v.a.type.name in WIDEN
                and st.buf in layouts and v.a.buf in layouts and st.index and st.index[-1] == j):
            return None
        ld = v.a
        classes = WIDEN[ld.type.name]
        if not all(c in by_class for c in classes + PACK):
            return None
        if any(j.name in {x.name for x in _vars(i)} for i in st.index[:-1]):
            return None
        src = _flat(layouts, ld.buf, ld.index)
        dst = _flat(layouts, st.buf, st.index)
        if src is None or dst is None:
            return None
        js = sp.Symbol(s.var, integer=True)
        if sp.expand(src - src.subs(js, 0)) != js or sp.expand(dst - dst.subs(js, 0)) != js:
            return None  # the four values are not consecutive in memory
        if not (_multiple_of(src.subs(js, 0), GROUP) and _multiple_of(dst.subs(js, 0), 2)):
            return None  # the word load needs 4-byte alignment, the int16 word stores 2 elements
        zero = {s.var: Const(0, IDX)}
        first = tuple(substitute(i, zero) for i in ld.index)
        word = Load(ld.buf, first, Type(f"{ld.type.name}x4", 32, ld.type.signed, 4), ld.loc)
        wt = Type("i16x2", 32, True, 2)
        even = call(classes[0], (word,), wt)
        odd = call(classes[1], (word,), wt)
        lo = call(PACK[0], (even, odd), wt)  # [x0, x1]
        hi = call(PACK[1], (odd, even), wt)  # [x2, x3]
        word_read.add(layouts[ld.buf][2])
        head = st.index[:-1]
        return (Store(st.buf, head + (Const(0, IDX),), lo, st.loc), Store(st.buf, head + (Const(2, IDX),), hi, st.loc))

    def straight(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...] | None:
        """Four stores ``dst[h, l] = i16(src[b + d_l])`` (l = 0..3, d a permutation: k order or
        :data:`PERM`) of one aligned source word."""
        if not all(isinstance(x, Store) for x in stmts):
            return None
        st0 = stmts[0]
        if not all(x.buf == st0.buf and x.index[:-1] == st0.index[:-1] and isinstance(x.index[-1], Const)
                   for x in stmts):
            return None
        lanes = {x.index[-1].value: x for x in stmts}
        if sorted(lanes) != list(range(GROUP)) or st0.buf not in layouts:
            return None
        loads = []
        for l in range(GROUP):
            v = lanes[l].value
            if not (isinstance(v, Cast) and v.type == I16 and isinstance(v.a, Load) and v.a.type.name in WIDEN
                    and v.a.buf in layouts and v.a.buf == lanes[0].value.a.buf):
                return None
            loads.append(v.a)
        classes = WIDEN[loads[0].type.name]
        if not all(c in by_class for c in classes):
            return None
        flats = [_flat(layouts, ld.buf, ld.index) for ld in loads]
        if any(f is None for f in flats):
            return None
        diffs = [sp.expand(f - flats[0]) for f in flats]
        if not all(x.is_number for x in diffs):
            return None
        low = min(int(x) for x in diffs)
        d = [int(x) - low for x in diffs]
        base = d.index(0)
        order = tuple(d)
        if order not in ((0, 1, 2, 3), PERM):
            return None
        if not _multiple_of(flats[base], GROUP):
            return None
        dst0 = _flat(layouts, st0.buf, st0.index[:-1] + (Const(0, IDX),))
        if dst0 is None or not _multiple_of(dst0, 2):
            return None
        ld = loads[base]
        wt4 = Type(f"{ld.type.name}x4", 32, ld.type.signed, 4)
        wname = f"{st0.buf}_x{len(word_decls)}"
        word_decls.append(wname)
        word = Var(wname, wt4)
        wt = Type("i16x2", 32, True, 2)
        even = call(classes[0], (word,), wt)
        odd = call(classes[1], (word,), wt)
        if order == PERM:
            lo, hi = even, odd  # [x0, x2], [x1, x3]: lanes 0, 1 and 2, 3 as relabelled
        else:
            if not all(c in by_class for c in PACK):
                return None
            lo, hi = call(PACK[0], (even, odd), wt), call(PACK[1], (odd, even), wt)  # [x0, x1], [x2, x3]
        word_read.add(layouts[ld.buf][2])
        head = st0.index[:-1]
        decl = Decl(wname, wt4, Load(ld.buf, ld.index, wt4, ld.loc), ld.loc)  # one load for both halves
        if _multiple_of(dst0, 2 * 2):  # 8-byte aligned group: one 64-bit store (STRD)
            pair = Call("pair", (lo, hi), Type("i16x4", 64, True, 4))
            return (decl, Store(st0.buf, head + (Const(0, IDX),), pair, st0.loc))
        return (decl, Store(st0.buf, head + (Const(0, IDX),), lo, st0.loc),
                Store(st0.buf, head + (Const(2, IDX),), hi, st0.loc))

    def body(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        i = 0
        while i < len(stmts):
            g = straight(stmts[i:i + GROUP]) if i + GROUP <= len(stmts) else None
            if g is not None:
                out.extend(g)
                i += GROUP
                continue
            s = stmts[i]
            i += 1
            if isinstance(s, For):
                g = group(s)
                if g is not None:
                    out.extend(g)
                    continue
                s = replace(s, body=body(s.body))
            elif isinstance(s, If):
                s = replace(s, then=body(s.then), orelse=body(s.orelse))
            out.append(s)
        return tuple(out)

    return replace(kernel, body=body(kernel.body)), frozenset(word_read)


def _vars(e: Expr):
    from ..ir import walk_expr

    return [x for x in walk_expr(e) if isinstance(x, Var)]


__all__ = ["widen_copies"]


# ------------------------------------------------------------------------------ interleaving


def _unroll_lane_loops(body: tuple[Stmt, ...], arrays: frozenset[str]) -> tuple[Stmt, ...]:
    """Unroll the loops (at most one group long) whose variable is the lane index of a store to
    ``arrays``, so every lane index is a constant."""
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, For):
            inner = _unroll_lane_loops(s.body, arrays)
            lane_loop = (isinstance(s.lo, Const) and isinstance(s.hi, Const) and s.hi.value - s.lo.value <= GROUP
                         and any(isinstance(x, Store) and x.buf in arrays and x.index[-1] == Var(s.var, IDX)
                                 for x in walk_stmts(inner)))
            if lane_loop:
                for v in range(s.lo.value, s.hi.value):
                    out.extend(substitute_body(inner, {s.var: Const(v, IDX)}))
                continue
            out.append(replace(s, body=inner))
        elif isinstance(s, If):
            out.append(replace(s, then=_unroll_lane_loops(s.then, arrays), orelse=_unroll_lane_loops(s.orelse, arrays)))
        else:
            out.append(s)
    return tuple(out)


def interleave_lanes(kernel: Kernel, arrays: frozenset[str]) -> Kernel | None:
    """Relabel the lanes of ``arrays`` (the last dimension, groups of four) by :data:`PERM` and
    reorder the sums over their products so that lanes 0, 1 and 2, 3 stay adjacent; None when
    some access has a lane index that is not a constant (the kernel is then left as it is)."""
    from ..rewrite import map_body_exprs

    body = _unroll_lane_loops(kernel.body, arrays)
    ok = [True]

    def lane(index: tuple[Expr, ...]) -> tuple[Expr, ...]:
        last = index[-1]
        if not isinstance(last, Const) or not 0 <= last.value < GROUP:
            ok[0] = False
            return index
        return index[:-1] + (Const(PERM[last.value], IDX),)

    def fn(e: Expr) -> Expr:
        if isinstance(e, Load) and e.buf in arrays:
            return replace(e, index=lane(e.index))
        return e

    def stores(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out = []
        for s in stmts:
            if isinstance(s, Store) and s.buf in arrays:
                s = replace(s, index=lane(s.index))
            elif isinstance(s, For):
                s = replace(s, body=stores(s.body))
            elif isinstance(s, If):
                s = replace(s, then=stores(s.then), orelse=stores(s.orelse))
            out.append(s)
        return tuple(out)

    body = stores(map_body_exprs(body, fn))
    if not ok[0]:
        return None
    return replace(kernel, body=_sort_sums(body, arrays))


def _lane_product(e: Expr, arrays: frozenset[str]) -> tuple[tuple, int] | None:
    """(operand group key, lane) of ``i32(A[.., lane]) * i32(B[.., lane])`` over ``arrays``."""
    if not (isinstance(e, Bin) and e.op == "mul" and isinstance(e.a, Cast) and isinstance(e.b, Cast)
            and isinstance(e.a.a, Load) and isinstance(e.b.a, Load)):
        return None
    a, b = e.a.a, e.b.a
    if a.buf not in arrays or b.buf not in arrays or not isinstance(a.index[-1], Const) or a.index[-1] != b.index[-1]:
        return None
    return (a.buf, a.index[:-1], b.buf, b.index[:-1]), a.index[-1].value


def _sort_expr(e: Expr, arrays: frozenset[str]) -> Expr:
    if not (isinstance(e, Bin) and e.op == "add" and e.type.is_data):
        return e
    terms: list[Expr] = []
    x = e
    while isinstance(x, Bin) and x.op == "add" and x.type == e.type:
        terms.append(x.b)
        x = x.a
    terms.append(x)
    terms.reverse()
    out: list[Expr] = []
    run: list[tuple[tuple, int, Expr]] = []

    def flush() -> None:
        first: dict[tuple, int] = {}
        for key, _, _ in run:
            first.setdefault(key, len(first))
        out.extend(t for _, _, t in sorted(run, key=lambda r: (first[r[0]], r[1])))
        run.clear()

    for term in terms:
        lp = _lane_product(term, arrays)
        if lp is None:
            flush()
            out.append(term)
        else:
            run.append((lp[0], lp[1], term))
    flush()
    value = out[0]
    for term in out[1:]:
        value = Bin("add", value, term, e.type)
    return value


def _sort_sums(body: tuple[Stmt, ...], arrays: frozenset[str]) -> tuple[Stmt, ...]:
    from ..ir import Assign, Decl

    out = []
    for s in body:
        if isinstance(s, Assign):
            s = replace(s, value=_sort_expr(s.value, arrays))
        elif isinstance(s, Decl) and s.init is not None:
            s = replace(s, init=_sort_expr(s.init, arrays))
        elif isinstance(s, For):
            s = replace(s, body=_sort_sums(s.body, arrays))
        elif isinstance(s, If):
            s = replace(s, then=_sort_sums(s.then, arrays), orelse=_sort_sums(s.orelse, arrays))
        out.append(s)
    return tuple(out)


def unroll_copy_loops(kernel: Kernel, arrays: frozenset[str], factor: int = 2) -> Kernel:
    """Unroll by ``factor`` the innermost loops that only copy into ``arrays`` (straight-line
    word loads and stores after :func:`widen_copies`): their loop overhead is a third of their
    instructions.  A remainder of the trip count runs after the unrolled loop."""
    from ..rewrite import map_body_exprs

    def copy_loop(s: For) -> bool:
        return (isinstance(s.lo, Const) and isinstance(s.hi, Const) and s.hi.value - s.lo.value >= factor
                and all(isinstance(x, Decl) or (isinstance(x, Store) and x.buf in arrays) for x in s.body)
                and any(isinstance(x, Store) for x in s.body))

    def copy(body: tuple[Stmt, ...], env: dict[str, Expr], tag: str) -> tuple[Stmt, ...]:
        names = {x.name for x in body if isinstance(x, Decl)}
        renamed = {n: f"{n}{tag}" for n in names}

        def fn(e: Expr) -> Expr:
            if isinstance(e, Var) and e.name in renamed:
                return Var(renamed[e.name], e.type)
            return e

        out = map_body_exprs(substitute_body(body, env), fn)
        return tuple(replace(x, name=renamed[x.name]) if isinstance(x, Decl) else x for x in out)

    def walk(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in stmts:
            if isinstance(s, For) and copy_loop(s):
                lo, hi = s.lo.value, s.hi.value
                n = (hi - lo) // factor
                v = Var(s.var, IDX)
                body: list[Stmt] = []
                for u in range(factor):
                    at = Bin("add", Bin("mul", Const(factor, IDX), v, IDX), Const(lo + u, IDX), IDX)
                    body.extend(copy(s.body, {s.var: at}, f"_u{u}"))
                if n == 1:  # a single unrolled iteration: straight-line code
                    out.extend(substitute_body(tuple(body), {s.var: Const(0, IDX)}))
                else:
                    out.append(replace(s, lo=Const(0, IDX), hi=Const(n, IDX), body=tuple(body)))
                for r in range(lo + n * factor, hi):
                    out.extend(copy(s.body, {s.var: Const(r, IDX)}, f"_r{r}"))
                continue
            if isinstance(s, For):
                s = replace(s, body=walk(s.body))
            elif isinstance(s, If):
                s = replace(s, then=walk(s.then), orelse=walk(s.orelse))
            out.append(s)
        return tuple(out)

    return replace(kernel, body=walk(kernel.body))
