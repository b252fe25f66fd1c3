"""XpulpV2 lowering of contraction nests anywhere in a kernel (attention: per head, over views and
local arrays), on the shared driver :func:`kgen.backends.nests.block_nests`.

Each nest becomes an R×C block of int32 accumulators fed by ``pv.sdotsp.b`` (int8 × int8) or
``pv.sdotusp.b`` (uint8 × int8, e.g. softmax probabilities × Vᵀ): instruction selection picks
whichever instruction's declared semantics the products have.  An operand whose rows are
*word rows* — element stride 1, a row stride and an offset that are multiples of four bytes for
every value of the enclosing loop variables — is read in place as packed words; otherwise it is
staged at run time as int8 quads, of its own 8-bit type: the n-operand once where its view is
declared ([N/C][K/4][C][4], :func:`~kgen.backends.nests.stage_b`), the m-operand per block of rows
([K/4][R][4], :func:`~kgen.backends.contraction.stage_rows`).  K is split in steps of four
bytes with the remainder as scalar products, rows and columns with cut tails, so any extent works.
"""
from __future__ import annotations

from typing import Mapping

import sympy as sp

from ..ir import Kernel, Type
from .contraction import Contraction, Packing, stage_row_tail, stage_rows
from ..schedule import specialize
from .nests import Nest, block_nests, hoist_view, stage_b, storages, uniquify_loops
from .rowblock import block_rows, split_reductions

#: dot-product classes the nests use (signed × signed and unsigned × signed, with and without accumulator)
DOT_CLASSES = ["dot4_s8s8_acc32", "dot4_s8s8", "dot4_u8s8_acc32", "dot4_u8s8"]
LANES = 4


def _multiple(e: sp.Expr, n: int) -> bool:
    """The affine ``e`` is a multiple of ``n`` for every integer value of its symbols."""
    e = sp.expand(sp.sympify(e))
    return all(t.as_coeff_Mul()[0].is_integer and int(t.as_coeff_Mul()[0]) % n == 0
               for t in sp.Add.make_args(e) if t != 0)


def word_rows(kernel: Kernel, view: str) -> bool:
    """Rows of the 2-D view ``view`` can be read as packed words (see the module docstring); the
    root buffer is a parameter (4-byte aligned by contract) or a local array (8-byte aligned)."""
    st = storages(kernel)[view]
    if len(st.strides) != 2 or st.type.bits != 8:
        return False
    row, col = (sp.sympify(x) for x in st.strides)
    return col == 1 and _multiple(row, LANES) and _multiple(st.offset, LANES)


def _root_is_param(kernel: Kernel, view: str) -> bool:
    return storages(kernel)[view].root in {p.name for p in kernel.buffers}


class NestStager:
    """The :data:`~kgen.backends.nests.Stager` of XpulpV2; remembers what it decided."""

    def __init__(self) -> None:
        #: buffers whose last dimension may be read as packed words (isel's ``contiguous``)
        self.contiguous: dict[str, bool] = {}
        #: parameters read in place as words (their alignment becomes part of the contract)
        self.aligned_params: set[str] = set()
        #: local arrays holding staged blocks of m-operand rows
        self.row_stages: set[str] = set()

    @staticmethod
    def pads_k(s: Kernel, c: Contraction) -> bool:
        """Both operands will be staged with zero padding in k, so the reduction may run over
        whole quads (the padding contributes nothing)."""
        return not word_rows(s, c.a) and not word_rows(s, c.b)

    def __call__(self, s: Kernel, nest: Nest, c: Contraction, R: int, C: int) -> tuple[Kernel, set[str], str]:
        names = {c.a, c.b}
        how = []
        t_b: Type = storages(s)[c.b].type
        if word_rows(s, c.b):
            self.contiguous[c.b] = True
            how.append(f"{nest.b.buf} read in place")
            if _root_is_param(s, c.b):
                self.aligned_params.add(storages(s)[c.b].root)
        else:
            packing = Packing(c.b, f"{c.b}_q", t_b, 0, 1, C, LANES, nest.N, nest.K)
            s = stage_b(hoist_view(s, c.b), c, packing, t_b)
            self.contiguous[packing.dst] = True
            names.add(packing.dst)
            how.append(f"{nest.b.buf} staged as quads where its view is declared")
        t_a: Type = storages(s)[c.a].type
        if word_rows(s, c.a):
            self.contiguous[c.a] = True
            how.append(f"{nest.a.buf} read in place")
            if _root_is_param(s, c.a):
                self.aligned_params.add(storages(s)[c.a].root)
        else:
            s = stage_rows(s, c, f"{c.m}_o", R, LANES, nest.M, nest.K, t_a, f"{c.a}_q")
            s = stage_row_tail(s, c, f"{c.m}_o", R, LANES, nest.M, nest.K, t_a, f"{c.a}_qt", straight=True)
            self.contiguous[f"{c.a}_q"] = self.contiguous[f"{c.a}_qt"] = True
            names |= {f"{c.a}_q", f"{c.a}_qt"}
            self.row_stages |= {f"{c.a}_q", f"{c.a}_qt"}
            how.append(f"{nest.a.buf} staged per block of {R} rows")
        dot = "pv.sdotusp.b" if not t_a.signed else "pv.sdotsp.b"
        note = (f"Contraction over {nest.k} ({nest.M}x{nest.N}x{nest.K}): register block {R}x{C} with {dot}; "
                f"{'; '.join(how)}.")
        return s, names, note


def expose_nests(kernel: Kernel, sizes: Mapping[str, int], rows: int, cores: int = 1) -> Kernel:
    """``kernel`` specialised to ``sizes`` with the nests of multi-accumulator reductions and
    row-at-a-time loops exposed (:mod:`kgen.backends.rowblock`, blocks of ``rows`` rows, smaller
    ones when that gives each of ``cores`` cores a block)."""
    return block_rows(split_reductions(uniquify_loops(specialize(kernel, sizes))), rows, cores)


def block_all_nests(s: Kernel, sizes: Mapping[str, int], tile: tuple[int, int],
                    k_unroll: int) -> tuple[Kernel, NestStager, list[str]]:
    """Every 8-bit contraction nest of ``s`` (prepared by :func:`expose_nests` with ``tile[0]``
    rows) register-blocked for the XpulpV2 dot products; the notes are empty when none is."""
    stager = NestStager()
    s, staged, notes = block_nests(s, sizes, tile, LANES, k_unroll, stager)
    return s, stager, notes if staged else []


__all__ = ["block_all_nests", "expose_nests", "word_rows", "NestStager", "DOT_CLASSES"]
