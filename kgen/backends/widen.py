"""Widening copies a word at a time (ARMv7E-M: SXTB16 / UXTB16 and PKHBT / PKHTB).

The staging nests of the register-blocked lowering copy int8 operands into int16 arrays laid out
in groups of four k values (:func:`kgen.backends.contraction.staging_nest`,
:func:`kgen.backends.nests.stage_b`).  Element by element, a compiler spends a byte load, an
insert and part of a store on every value.  Here each full group ``dst[.., 0..3] = i16(src[.. b+0
.. b+3])`` whose four source bytes are one aligned word becomes one word load, the two widening
instructions (even lanes, odd lanes), two packs back into k order and two word stores: six
instructions per four values, the int16 layout unchanged (so the packed weights and every reader
stay as they are).  The rewrite is driven by the ISA file: the instructions are looked up by their
semantic classes, and the copy is left element-wise when one is missing.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..rewrite import substitute
from ..check import NotAffine, to_sympy
from ..ir import (I16, IDX, Alloc, Call, Cast, Const, Expr, For, If, Kernel, Load, Store, Stmt,
                  Type, Var, View, walk_stmts)

#: (source element type) -> (semantic class of the even-lane widening, of the odd-lane widening)
WIDEN = {"i8": ("widen_even_s8_s16", "widen_odd_s8_s16"), "u8": ("widen_even_u8_u16", "widen_odd_u8_u16")}
PACK = ("pack_lo_lo_16", "pack_hi_hi_16")
GROUP = 4  # bytes of one word: the lanes of one staged group


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
    if not all(c in by_class for c in PACK):
        return kernel, frozenset()
    layouts = _layouts(kernel)
    word_read: set[str] = set()

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
        if not all(c in by_class for c in classes):
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

    def body(stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in stmts:
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
