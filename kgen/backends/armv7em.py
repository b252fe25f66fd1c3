"""ARMv7E-M DSP backend (Cortex-M4/M7).

Contractions are lowered to SMLAD (two int16 products per instruction, ``dot2_s16_acc32`` in
``isa/armv7em.toml``): the weights are packed offline as int16 pairs [N/C][K/2][C][2] (so the
inner loop never unpacks weights), each block of R activation rows is widened once into a stack
buffer [K/2][R][2], and an R×C block of int32 accumulators stays in registers across the fully
unrolled K loop.  Kernels without a contraction are emitted as specialised portable C.
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
                          tile_contraction, unroll_k as _unroll_k)
from ..rewrite import expand_requant
from ..schedule import specialize

#: The K loop is unrolled completely (offsets become immediates) up to this many SMLAD steps.
MAX_UNROLLED_K_STEPS = 64

#: Default register block (rows × cols): 8 accumulators + 2 activation words + 1 weight word +
#: 2 pointers fit the 14 allocatable registers.
DEFAULT_TILE = (2, 4)


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
            return Lowered(specialize(kernel, sizes), sizes, (isa.header,),
                           ("No DSP pattern applies: specialised portable C.",), {}, isa.sha256, support)
        R, C = self.tile
        L = 2
        M = _extent(kernel, c.a, c.a_dims, c.m, sizes)
        N = _extent(kernel, c.b, c.b_dims, c.n, sizes)
        K = _extent(kernel, c.b, c.b_dims, c.k, sizes)
        s = tile_contraction(kernel, sizes, c, R, C, L)
        packing = Packing(c.b, f"{c.b}_packed", I16, c.b_dims.index(c.n), c.b_dims.index(c.k), C, L, N, K)
        s = pack_param(s, packing)
        if M >= R:
            s = stage_rows(s, c, f"{c.m}_o", R, L, M, K, I16, f"{c.a}_wide")
        s = _unroll_k(s, f"{c.k}_o", ceil(K / L), self.k_unroll)
        s = replace(s, body=expand_requant(s.body))
        s = select_instructions(s, isa, ["dot2_s16_acc32", "clip_s8"], {f"{c.a}_wide": True, packing.dst: True})
        notes = (f"`{packing.dst}` holds `{c.b}` packed offline as int16 pairs "
                 f"[{packing.shape[0]}][{packing.shape[1]}][{C}][{L}] (n-block, k-pair, column, lane; "
                 f"zero padded); produce it with the packing companion.",
                 f"Register block {R}x{C} with SMLAD; {c.a} rows are widened into a "
                 f"{ceil(K / L) * R * L * 2}-byte stack buffer per block of {R} rows.")
        return Lowered(s, sizes, (isa.header,), notes,
                       {packing.dst: lambda args, p=packing: p.pack(args[p.src])}, isa.sha256, support,
                       paired=frozenset({f"{c.a}_wide"}), qualifier="KGEN_REGISTER_BLOCKED",
                       companions=((packing.dst, packing.companion(specialize(kernel, sizes))),))
