"""XpulpV2 backend (GAP9 cluster cores): SIMD dot products, clip, fused requant; 1..N cores.

Contractions are lowered to ``pv.sdotsp.b`` (four int8 products per instruction): an R×C block of
int32 accumulators over a fully unrolled K loop, activations read in place as packed words (staged
only when rows are not word aligned), weights packed offline as int8 quads [N/C][K/4][C][4].
Exact algebra then exposes the remaining instructions: the bias moves from the accumulator
initialisation into the epilogue (so the first step is the non-accumulating ``pv.dotsp.b``), and
``requant`` becomes ``p.clip.8(p.addNr(acc*mul, bias*mul, shift))``.  Loop-nest passes
(:mod:`kgen.backends.xpulpv2_sched`) then make the column-block loop the outer one, hoist
``bias*mul`` out of the row-block loop, pack each row of four outputs with ``pv.packlo.b`` /
``pv.packhi.b`` into one word store, and annotate the loops: the row-block loop is emitted with
pointer induction variables (:mod:`kgen.backends.pointer_loops`), and the loops PULP GCC turns
into hardware loops are named in the documentation.  With ``cores > 1`` the column blocks are
split over the cluster's cores when their number is a multiple of the core count, otherwise all
blocks are, in balanced contiguous chunks.

Every other kernel goes through :meth:`XpulpBackend.lower_nests`: its contraction nests — inside
other loops, over views and local arrays, in row-at-a-time code (attention) — are register-blocked
the same way with operands staged at run time where they are not word rows
(:mod:`kgen.backends.xpulpv2_nests`); 64-bit arithmetic that provably fits in 32 bits is narrowed
(:mod:`kgen.backends.narrowing`); ``min``/``max``/``abs``/``clip`` become XpulpV2 scalar instructions
and innermost loops are unrolled.  Its multi-core variants are split by :mod:`kgen.backends.spmd`
(independent loops in balanced chunks, private arrays per core, barriers where data crosses cores).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from math import ceil
from typing import Mapping

from ..cgen import STORE_HELPERS
from ..algebra import distribute_requant_bias, mask_ranged_shifts, peel_zero_updates, sink_accumulator_init
from ..ir import I8, Bin, Kernel
from ..isafile import intrinsic_header, load_isa
from ..isel import select_instructions
from ..rewrite import expand_requant
from ..schedule import specialize
from ..schedule.auto import unroll_innermost
from . import Lowered
from .contraction import (Packing, extent as _extent, find_contraction, pack_param, stage_rows,
                          tile_contraction, unroll_k as _unroll_k)
from .parallel import parallelize_blocks, runtime_header
from .spmd import parallel_note, parallelize
from .guards import split_guards
from .narrowing import narrow_accumulators, narrow_divisions
from .nests import uniquify_loops
from .xpulpv2_nests import DOT_CLASSES, NestStager, block_all_nests, expose_nests
from .xpulpv2_sched import hoist_invariant_products, hwloop_note, interchange_blocks, mark_loops, pack_row_stores

DEFAULT_TILE = (4, 4)
CLASSES = ["dot4_s8s8_acc32", "dot4_s8s8", "add_sra_reg", "clip_s8"]
#: scalar instructions that replace compare-and-branch sequences of RV32IMC in any kernel
SCALAR_CLASSES = ["min_i32", "max_i32", "abs_i32"]


def launder(kernel: Kernel, names: set[str]) -> Kernel:
    """Mark every loop with ``@launder(names)``: C emission reads the staged operand rows that a loop
    only loads through a pointer the compiler cannot see through, so it cannot hoist the loads of a
    row block out of the column loop and spill them (as on armv7em, see kgen.cgen.launder_staged)."""
    from ..ir import IDX, Attr, For, Var

    attr = Attr("launder", tuple(Var(n, IDX) for n in sorted(names)))

    def go(body):
        out = []
        for st in body:
            if isinstance(st, For):
                st = replace(st, body=go(st.body), attrs=st.attrs + (attr,))
            elif hasattr(st, "then"):
                st = replace(st, then=go(st.then), orelse=go(st.orelse))
            out.append(st)
        return tuple(out)

    return replace(kernel, body=go(kernel.body))


def _wide_division(e) -> bool:
    """64-bit division and remainder: an inline sequence of some 45 instructions on RV32."""
    return isinstance(e, Bin) and e.op in ("div", "mod") and e.type.bits == 64


class XpulpBackend:
    name = "xpulpv2"
    specializes = True

    def __init__(self, tile: tuple[int, int] = DEFAULT_TILE, cores: int = 1, k_unroll: int = 64) -> None:
        self.tile = tile
        self.cores = cores
        self.k_unroll = k_unroll

    def lower(self, kernel: Kernel, sizes: Mapping[str, int]) -> Lowered:
        isa = load_isa(self.name)
        sizes = {s: int(sizes[s]) for s in kernel.sizes}
        support = {isa.header: intrinsic_header(isa), "kgen_runtime.h": runtime_header()}
        c = find_contraction(kernel)
        if c is None or kernel.param(c.a).type != I8 or kernel.param(c.b).type != I8:
            return self.lower_nests(kernel, sizes, isa, support)
        R, C = self.tile
        L = 4
        M = _extent(kernel, c.a, c.a_dims, c.m, sizes)
        N = _extent(kernel, c.b, c.b_dims, c.n, sizes)
        K = _extent(kernel, c.b, c.b_dims, c.k, sizes)
        s = tile_contraction(kernel, sizes, c, R, C, L)
        packing = Packing(c.b, f"{c.b}_packed", I8, c.b_dims.index(c.n), c.b_dims.index(c.k), C, L, N, K)
        s = pack_param(s, packing)
        contiguous = {packing.dst: True}
        a_in_place = K % L == 0 and c.a_dims[-1] == c.k
        if a_in_place:
            contiguous[c.a] = True
        elif M >= R:
            s = stage_rows(s, c, f"{c.m}_o", R, L, M, K, I8, f"{c.a}_quads")
            contiguous[f"{c.a}_quads"] = True
        s = _unroll_k(s, f"{c.k}_o", ceil(K / L), self.k_unroll)
        s = sink_accumulator_init(s)
        s = replace(s, body=peel_zero_updates(distribute_requant_bias(expand_requant(s.body))))
        s = mask_ranged_shifts(s)
        s = select_instructions(s, isa, CLASSES, contiguous)
        m_o, n_o = f"{c.m}_o", f"{c.n}_o"
        n_blocks = N // C
        if self.cores == 1 or (n_blocks and n_blocks % self.cores == 0):
            # column blocks outer: per-column-block values are set up once (see xpulpv2_sched)
            s = interchange_blocks(s, m_o, n_o)
            s = hoist_invariant_products(s, m_o)
        s, packed = pack_row_stores(s, isa)
        if packed:
            support["kgen_store.h"] = STORE_HELPERS
        if self.cores > 1:
            s = parallelize_blocks(s, (m_o, n_o), self.cores)
        s = mark_loops(s, {m_o, n_o})
        notes = [f"`{packing.dst}` holds `{c.b}` packed offline as int8 quads "
                 f"[{packing.shape[0]}][{packing.shape[1]}][{C}][{L}] (n-block, k-quad, column, lane; zero "
                 f"padded); produce it with the packing companion.",
                 f"Register block {R}x{C} with pv.sdotsp.b; requant as p.addNr + p.clip."]
        if a_in_place:
            notes.append(f"`{c.a}` must be 4-byte aligned (rows are read as packed words).")
        for out in sorted(packed):
            notes.append(f"`{out}` must be 4-byte aligned (rows of four outputs are packed with "
                         f"pv.packlo.b/pv.packhi.b and stored as words).")
        hw = hwloop_note(s)
        if hw:
            notes.append(hw)
        if self.cores > 1:
            notes.append(f"Runs on {self.cores} cluster cores: every core calls the function; blocks are split "
                         f"in balanced chunks by kgen_core_id(); the function ends with kgen_barrier().")
        includes = (isa.header, "kgen_runtime.h") + (("kgen_store.h",) if packed else ())
        return Lowered(s, sizes, includes, tuple(notes),
                       {packing.dst: lambda args, p=packing: p.pack(args[p.src])}, isa.sha256, support,
                       companions=((packing.dst, packing.companion(specialize(kernel, sizes))),))

    def lower_nests(self, kernel: Kernel, sizes: dict[str, int], isa, support: dict[str, str]) -> Lowered:
        """Kernels without a plain parameter contraction: every contraction nest (attention, over
        views and local arrays) is register-blocked (:mod:`kgen.backends.xpulpv2_nests`); the rest
        is specialised portable C.  With several cores, the one-core lowering is split between
        them (:func:`kgen.backends.spmd.parallelize`)."""
        exposed = expose_nests(kernel, sizes, self.tile[0], self.cores)
        s, stager, notes = _one_core_nests(kernel, exposed, tuple(sorted(sizes.items())), self.tile,
                                           self.k_unroll)
        notes = list(notes)
        if self.cores > 1:
            from ..model.platform import platform_for

            # per-core copies of private arrays: at most a quarter of the memory the cores share (L1)
            s = parallelize(s, self.cores, platform_for(self.name).operand_memory.bytes // 4)
            notes.append(parallel_note(s, self.cores))
        return Lowered(s, sizes, (isa.header, "kgen_runtime.h"), tuple(notes), {}, isa.sha256, support)


@lru_cache(maxsize=4)
def _one_core_nests(kernel: Kernel, exposed: Kernel, sizes: tuple[tuple[str, int], ...], tile: tuple[int, int],
                    k_unroll: int) -> tuple[Kernel, NestStager, tuple[str, ...]]:
    """The lowering of ``kernel`` (DSL) on one core from ``exposed`` (:func:`expose_nests`).

    Cached: the 1-core and 8-core variants of a release kernel differ in row blocking only when
    it gives each core a block, so the 8-core build usually starts from the 1-core lowering
    (the release builds them in one job).  The stager and kernel returned are shared: read only."""
    isa = load_isa(XpulpBackend.name)
    sizes_map = dict(sizes)
    s, stager, notes = block_all_nests(exposed, sizes_map, tile, k_unroll)
    if notes:
        s = uniquify_loops(split_guards(s))
        s = sink_accumulator_init(s)
        s = replace(s, body=peel_zero_updates(distribute_requant_bias(expand_requant(s.body))))
        for p in sorted(stager.aligned_params):
            notes.append(f"`{p}` must be 4-byte aligned (its rows are read as packed words).")
    else:
        s = uniquify_loops(specialize(kernel, sizes_map))
        s = replace(s, body=expand_requant(s.body))
        notes = ["No contraction: specialised C with XpulpV2 scalar instructions (min/max/abs/clip), "
                 "innermost loops unrolled."]
    s = narrow_divisions(narrow_accumulators(mask_ranged_shifts(s)))
    s = select_instructions(s, isa, CLASSES + DOT_CLASSES + SCALAR_CLASSES, stager.contiguous)
    s = unroll_innermost(s, heavy=_wide_division)
    if stager.row_stages:
        s = launder(s, stager.row_stages)
    return s, stager, tuple(notes)
