"""ARMv7E-M DSP backend (Cortex-M4/M7).

Contractions are lowered to SMLAD (two int16 products per instruction, ``dot2_s16_acc32`` in
``isa/armv7em.toml``): the weights are packed offline as int16 quads [N/C][K/4][C][4] (so the
inner loop never unpacks weights), each block of R activation rows is widened once into a stack
buffer [K/4][R][4] (leftover rows into their own buffer), and an R×C block of int32 accumulators
stays in registers across the fully unrolled K loop.  Both operands are quads so that one 64-bit
load (LDRD) feeds two SMLADs: per 4 k, R + C LDRDs serve 2·R·C SMLADs.  Both operands are zero
padded to whole quads, so the K % 4 tail runs as whole SMLADs over the padding
(:mod:`kgen.backends.padding`), and a reduction that starts from zero begins with SMUAD.  Each quad
holds its k values in the order (0, 2, 1, 3) in which SXTB16 and SXTB16 ROR #8 widen a word, so
the staging copies widen a word with two instructions and store it with one STRD
(:mod:`kgen.backends.widen`); where a block reads at least four consecutive 16-byte quads of an
operand, one LDM with write-back fetches two LDRDs' worth (:meth:`kgen.cgen.CEmitter.quad_load`,
``kgen_armv7em_ldm.h``): per 4 k, a 2×2 block then takes 2 loads and 8 SMLADs.  The
staged rows are read through a pointer the compiler cannot see through (``KGEN_LAUNDER``), so it
cannot hoist their loads out of the column loop and spill them.  Kernels whose contractions sit
inside other loops or read views and local arrays (attention, the encoder block, matrix-vector
products) get the same block per nest (:meth:`ArmBackend.lower_nests`, :mod:`kgen.backends.nests`).
Kernels without a contraction are emitted as specialised portable C.
"""
from __future__ import annotations

from dataclasses import replace
from math import ceil
from typing import Mapping

from ..ir import I16, Kernel
from ..isafile import intrinsic_header, load_isa
from ..isel import select_instructions
from . import Lowered
from .contraction import (Packing, extent as _extent, find_contraction, pack_param, stage_rows,
                          stage_row_tail, tile_contraction, unroll_k as _unroll_k)
from ..algebra import peel_zero_updates
from ..rewrite import expand_requant
from ..schedule import specialize
from ..schedule.auto import unroll_innermost
from .nests import block_nests, stage_b
from .padding import PaddedLayout, pad_reduction_tails
from .widen import PERM, interleave_lanes, unroll_copy_loops, widen_copies
from ..cgen import STORE_HELPERS

#: Default register block (rows × cols): 4 accumulators + 2 activation words + 4 weight words
#: (two LDRD pairs) + 2 pointers stay well inside the 14 allocatable registers.  Measured on
#: Cortex-M4 (instructions per MAC at 64³ / 128³): 2×2 gcc 0.92 / 0.84, clang 0.94 / 0.84;
#: 3×2 gcc 0.88 / 0.79 but clang 1.06 / 0.97 (clang spills); 2×4 and 4×2 are worse on both.
DEFAULT_TILE = (2, 2)
#: Instruction classes selected in register blocks: SMLAD, SMUAD (a reduction that starts from zero
#: begins with it, so no register holds the zero), SSAT.
CLASSES = ["dot2_s16_acc32", "dot2_s16", "clip_s8"]


class ArmBackend:
    name = "armv7em"
    specializes = True

    def __init__(self, tile: tuple[int, int] = DEFAULT_TILE, k_unroll: int = 64) -> None:
        self.tile = tile
        self.k_unroll = k_unroll

    def lower(self, kernel: Kernel, sizes: Mapping[str, int]) -> Lowered:
        isa = load_isa(self.name)
        sizes = {s: int(sizes[s]) for s in kernel.sizes}
        support = {isa.header: intrinsic_header(isa)}
        c = find_contraction(kernel)
        if c is None or kernel.param(c.a).type.name != "i8" or kernel.param(c.b).type.name != "i8":
            return self.lower_nests(kernel, sizes, isa, support)
        R, C = self.tile
        L = 2  # SMLAD lanes
        G = 2 * L  # values per 64-bit load: both operands are laid out so one LDRD feeds two SMLADs
        M = _extent(kernel, c.a, c.a_dims, c.m, sizes)
        N = _extent(kernel, c.b, c.b_dims, c.n, sizes)
        K = _extent(kernel, c.b, c.b_dims, c.k, sizes)
        s = tile_contraction(kernel, sizes, c, R, C, G, jam_row_tail=True)
        s = _unroll_k(s, f"{c.k}_o", ceil(K / G), self.k_unroll // 2)
        packing = Packing(c.b, f"{c.b}_packed", I16, c.b_dims.index(c.n), c.b_dims.index(c.k), C, G, N, K)
        s = pack_param(s, packing)
        if M >= R:
            s = stage_rows(s, c, f"{c.m}_o", R, G, M, K, I16, f"{c.a}_wide")
            s = stage_row_tail(s, c, f"{c.m}_o", R, G, M, K, I16, f"{c.a}_tail")
        s = pad_reduction_tails(s, {f"{c.a}_wide": PaddedLayout(0, G, K), f"{c.a}_tail": PaddedLayout(0, G, K),
                                    packing.dst: PaddedLayout(1, G, K)})
        interleaved = interleave_lanes(s, frozenset({f"{c.a}_wide", f"{c.a}_tail", packing.dst}))
        if interleaved is not None:
            s, packing = interleaved, replace(packing, perm=PERM)
        s, words = widen_copies(s, isa)
        s = replace(s, body=expand_requant(peel_zero_updates(s.body)))
        s = select_instructions(s, isa, CLASSES, {f"{c.a}_wide": True, f"{c.a}_tail": True, packing.dst: True})
        s = unroll_copy_loops(s, frozenset({f"{c.a}_wide", f"{c.a}_tail"}))
        support, includes = _word_support(support, words, kernel)
        support, includes = {**support, LDM_HEADER_NAME: LDM_HEADER}, includes + (LDM_HEADER_NAME,)
        notes = (f"`{packing.dst}` holds `{c.b}` packed offline as int16 pairs "
                 f"[{packing.shape[0]}][{packing.shape[1]}][{C}][{G}] (n-block, k-group, column, lane"
                 f"{'' if packing.perm is None else f' holding k offset {list(packing.perm)}[lane]'}; "
                 f"zero padded; 8-byte aligned); produce it with the packing companion.",
                 f"Register block {R}x{C} with SMLAD; {c.a} rows are widened into a "
                 f"{ceil(K / G) * R * G * 2}-byte stack buffer per block of {R} rows.")
        return Lowered(s, sizes, (isa.header,) + includes, notes + _word_notes(words, kernel),
                       {packing.dst: lambda args, p=packing: p.pack(args[p.src])}, isa.sha256, support,
                       paired=frozenset({f"{c.a}_wide", f"{c.a}_tail", packing.dst}), qualifier="KGEN_REGISTER_BLOCKED",
                       companions=((packing.dst, packing.companion(specialize(kernel, sizes))),))

    def lower_nests(self, kernel: Kernel, sizes: dict[str, int], isa, support) -> Lowered:
        """Kernels whose contractions sit inside other loops or read views and local arrays
        (attention): every nest gets the register block, both operands staged at run time."""
        G = 4
        layouts: dict[str, PaddedLayout] = {}  # staged operands zero-padded to whole k-groups

        def stage(s: Kernel, nest, c, R: int, C: int) -> tuple[Kernel, set[str], str]:
            packing = Packing(c.b, f"{c.b}_wide", I16, 0, 1, C, G, nest.N, nest.K)
            s = stage_b(s, c, packing, I16)
            names = {c.a, c.b, packing.dst}
            if nest.M >= R:
                s = stage_rows(s, c, f"{c.m}_o", R, G, nest.M, nest.K, I16, f"{c.a}_wide")
                s = stage_row_tail(s, c, f"{c.m}_o", R, G, nest.M, nest.K, I16, f"{c.a}_tail")
                names |= {f"{c.a}_wide", f"{c.a}_tail"}
                layouts.update({f"{c.a}_wide": PaddedLayout(0, G, nest.K), f"{c.a}_tail": PaddedLayout(0, G, nest.K)})
            layouts[packing.dst] = PaddedLayout(1, G, nest.K)
            return s, names, (f"Contraction over {nest.k} ({nest.M}x{nest.N}x{nest.K}): register block {R}x{C} "
                              f"with SMLAD, operands widened at run time into local int16 arrays.")

        s, staged, notes = block_nests(kernel, sizes, self.tile, G, self.k_unroll // 2, stage)
        if not staged:
            return Lowered(unroll_innermost(specialize(kernel, sizes)), sizes, (isa.header,),
                           ("No DSP pattern applies: specialised portable C, innermost loops unrolled.",), {},
                           isa.sha256, support)
        s = pad_reduction_tails(s, layouts)
        s = interleave_lanes(s, frozenset(layouts)) or s
        s, words = widen_copies(s, isa)
        s = replace(s, body=expand_requant(peel_zero_updates(s.body)))
        wide = {n for n in staged if n.endswith(("_wide", "_tail"))}
        s = select_instructions(s, isa, CLASSES, {n: True for n in wide})
        s = unroll_innermost(s)
        s = unroll_copy_loops(s, frozenset(layouts))
        support, includes = _word_support(support, words, kernel)
        support, includes = {**support, LDM_HEADER_NAME: LDM_HEADER}, includes + (LDM_HEADER_NAME,)
        return Lowered(s, sizes, (isa.header,) + includes, tuple(notes) + _word_notes(words, kernel), {},
                       isa.sha256, support,
                       paired=frozenset(wide), qualifier="KGEN_REGISTER_BLOCKED")


def _word_support(support: dict[str, str], words: frozenset[str], kernel: Kernel) -> tuple[dict[str, str], tuple[str, ...]]:
    """The packed-register store helper (kgen_store.h) when staging copies store words."""
    if not words:
        return support, ()
    return {**support, "kgen_store.h": STORE_HELPERS}, ("kgen_store.h",)


def _word_notes(words: frozenset[str], kernel: Kernel) -> tuple[str, ...]:
    params = sorted(w for w in words if any(p.name == w for p in kernel.buffers))
    if not params:
        return ()
    return (f"{', '.join(f'`{p}`' for p in params)} widened a word at a time (SXTB16/UXTB16 + PKHBT/PKHTB): "
            f"the argument must be 4-byte aligned.",)


#: Support header of the 4-word loads that feed register blocks (kgen.cgen.CEmitter.quad_load): one
#: LDM with write-back fetches two adjacent 8-byte halves (two LDRDs' worth) of a paired array.  LDM
#: needs its registers in ascending order, which C cannot ask for, so each of the two banks binds its
#: four words to fixed registers (r7 is clang's Thumb frame pointer, r9 the platform register: both
#: avoided); a register variable is only bound to its register at the asm statement, so the compiler
#: stays free everywhere else.  The portable path does four word loads.
LDM_HEADER_NAME = "kgen_armv7em_ldm.h"
LDM_HEADER = """/* kgen_armv7em_ldm.h: generated by kgen; do not edit.  4-word loads (LDM with write-back) of
 * register-blocked armv7em kernels: KGEN_LDM4_B<bank>(p, a, b, c, d) declares the uint32_t words
 * a, b, c, d, loads them from the 4-byte aligned int16_t pointer p (8 elements) and advances p by 8;
 * and the 64-bit stores of their staging copies. */
#ifndef KGEN_ARMV7EM_LDM_H
#define KGEN_ARMV7EM_LDM_H

#include <stdint.h>
#include "kgen_common.h"

/** Two packed registers as one 64-bit value (lo at the lower address once stored). */
KGEN_INLINE uint64_t kgen_pair_i16x4(uint32_t lo, uint32_t hi)
{
    return (uint64_t)lo | ((uint64_t)hi << 32);
}

/** Store two packed registers (64 bits) to an 8-byte aligned address: one STRD.  kgen only emits
 *  such stores at 8-byte aligned offsets of 8-byte aligned local arrays. */
KGEN_INLINE void kgen_st64(void *p, uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    __builtin_memcpy(__builtin_assume_aligned(p, 8), &v, sizeof v);
#else
    unsigned char *b = (unsigned char *)p;
    for (int i = 0; i < 8; ++i) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
#endif
}

#define KGEN_LD4_(p, a, b, c, d) \\
    const uint64_t a##_lo = kgen_ld64((p)), a##_hi = kgen_ld64((p) + 4); \\
    const uint32_t a = (uint32_t)a##_lo, b = (uint32_t)(a##_lo >> 32), c = (uint32_t)a##_hi, d = (uint32_t)(a##_hi >> 32); \\
    (p) += 8
#if !defined(KGEN_PORTABLE) && defined(__ARM_FEATURE_DSP) && (defined(__GNUC__) || defined(__clang__))
#define KGEN_LDM4_(p, a, b, c, d) \\
    __asm__("ldmia %4!, {%0, %1, %2, %3}" : "=r"(a), "=r"(b), "=r"(c), "=r"(d), "+r"(p) \\
            : "m"(*(const uint32_t(*)[4])(const void *)(p)))
#define KGEN_LDM4_B0(p, a, b, c, d) \\
    register uint32_t a __asm__("r0"); register uint32_t b __asm__("r1"); \\
    register uint32_t c __asm__("r2"); register uint32_t d __asm__("r3"); \\
    KGEN_LDM4_(p, a, b, c, d)
#define KGEN_LDM4_B1(p, a, b, c, d) \\
    register uint32_t a __asm__("r4"); register uint32_t b __asm__("r5"); \\
    register uint32_t c __asm__("r6"); register uint32_t d __asm__("r8"); \\
    KGEN_LDM4_(p, a, b, c, d)
#else
#define KGEN_LDM4_B0(p, a, b, c, d) KGEN_LD4_(p, a, b, c, d)
#define KGEN_LDM4_B1(p, a, b, c, d) KGEN_LD4_(p, a, b, c, d)
#endif

#endif /* KGEN_ARMV7EM_LDM_H */
"""
