"""XpulpV2 loop-nest passes (kgen/backends/xpulpv2_sched.py) and pointer-IV emission
(kgen/backends/pointer_loops.py): semantics in the reference interpreter, the ISA-file check of the
pack pair, the loop annotations, the emitted C, host runs of both C spellings with sanitizers, and
the hardware-loop structure the cycle model finds in the executed 64x64x64 kernel."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kgen.algebra import distribute_requant_bias, mask_ranged_shifts, peel_zero_updates, sink_accumulator_init
from kgen.backends import get_backend
from kgen.backends.contraction import find_contraction, tile_contraction, unroll_k
from kgen.backends.xpulpv2_sched import (_pack_instrs, hoist_invariant_products, interchange_blocks, mark_loops,
                                         pack_row_stores)
from kgen.interp import run_reference
from kgen.ir import Decl, For, Store, walk_stmts
from kgen.isafile import load_isa
from kgen.library import builtin_sources
from kgen.rewrite import expand_requant
from kgen.verify import Target, build_variant, describe_failure, verify

SOURCES = builtin_sources()


def _args(sizes: dict[str, int], seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    M, K, N = sizes["M"], sizes["K"], sizes["N"]
    return {"X": rng.integers(-128, 128, (M, K)), "W": rng.integers(-128, 128, (N, K)),
            "bias": rng.integers(-5000, 5000, N), "mul": int(rng.integers(1, 3000)), "shift": 13}


def _pre_isel(sizes: dict[str, int]):
    """The backend's lowering up to instruction selection (no weight packing, X read in place)."""
    k = SOURCES["matmul_nt_s8"].kernel
    c = find_contraction(k)
    s = tile_contraction(k, sizes, c, 4, 4, 4)
    s = unroll_k(s, "k_o", -(-sizes["K"] // 4), 64)
    s = sink_accumulator_init(s)
    s = replace(s, body=peel_zero_updates(distribute_requant_bias(expand_requant(s.body))))
    return mask_ranged_shifts(s)


@pytest.mark.parametrize("shape", [(8, 8, 8), (9, 12, 7), (5, 67, 13), (16, 16, 20)])
def test_interchange_and_hoist_keep_semantics(shape):
    sizes = dict(zip("MKN", shape))
    want = run_reference(SOURCES["matmul_nt_s8"].kernel, sizes, _args(sizes))["Y"]
    s = _pre_isel(sizes)
    t = hoist_invariant_products(interchange_blocks(s, "m_o", "n_o"), "m_o")
    got = run_reference(t, {}, _args(sizes), checked=True)["Y"]
    assert (got == want).all()
    if sizes["N"] >= 8 and sizes["M"] >= 8:  # column-block loop outer, holding the hoisted bias*mul
        outer = next(x for x in t.body if isinstance(x, For) and x.var == "n_o")
        decls = [x for x in outer.body if isinstance(x, Decl)]
        assert len(decls) == 4 and isinstance(outer.body[-1], For) and outer.body[-1].var == "m_o"


def test_pack_pair_from_isa_file():
    assert _pack_instrs(load_isa("xpulpv2")) == ("pv.packlo.b", "pv.packhi.b")
    assert _pack_instrs(load_isa("armv7em")) is None


def test_pack_row_stores_only_aligned_rows():
    isa = load_isa("xpulpv2")
    for N, packed in ((8, True), (7, False), (6, False)):
        s, bufs = pack_row_stores(_pre_isel(dict(M=4, K=8, N=N)), isa)
        assert bufs == ({"Y"} if packed else set())
        vec = [x for x in walk_stmts(s.body) if isinstance(x, Store) and x.value.type.lanes > 1]
        assert len(vec) == (4 if packed else 0)  # one tile body (in the 2-iteration column loop)


def test_loop_annotations_64_cube():
    low = get_backend("xpulpv2").lower(SOURCES["matmul_nt_s8"].kernel, dict(M=64, K=64, N=64))
    loops = {s.var: s for s in walk_stmts(low.kernel.body) if isinstance(s, For)}
    assert set(loops) == {"n_o", "m_o"}
    assert [a.name for a in loops["m_o"].attrs] == ["pointer_ivs", "hwloop"]
    assert [a.args[0].value for a in loops["m_o"].attrs if a.name == "hwloop"] == [0]
    assert [a.args[0].value for a in loops["n_o"].attrs if a.name == "hwloop"] == [1]
    assert any("Hardware loops" in n for n in low.notes)
    assert "kgen_store.h" in low.support_files and "kgen_store.h" in low.includes
    eight = get_backend("xpulpv2", 8).lower(SOURCES["matmul_nt_s8"].kernel, dict(M=64, K=64, N=64))
    par = [s for s in walk_stmts(eight.kernel.body) if isinstance(s, For) and s.has("parallel")]
    assert [s.var for s in par] == ["n_o"]  # 16 column blocks: 2 per core, each with its hoisted bias*mul


def test_emitted_c_uses_pointer_ivs_and_word_stores():
    _, em = build_variant(SOURCES["matmul_nt_s8"], "xpulpv2", dict(M=64, K=64, N=64))
    src = em.source
    assert "for (int32_t m_o = 0; m_o < 16; ++m_o, X_at_m_o += 256, Y_at_m_o += 256) {" in src
    assert src.count("kgen_st32(&Y_at_m_o[") == 4
    assert src.count("kgen_pv_packhi_b(kgen_pv_packlo_b(") == 4
    assert src.count("* (uint32_t)mul);") == 4 + 0  # bias*mul once per column block (hoisted)


def test_mark_loops_without_constant_trip_counts():
    s = mark_loops(_pre_isel(dict(M=4, K=8, N=1)), {"m_o"})
    for x in walk_stmts(s.body):
        if isinstance(x, For):
            assert not x.has("hwloop") or (x.hi.value - x.lo.value) >= 2


@pytest.mark.parametrize("builtins", [False, True])
def test_host_both_spellings_with_packed_stores(builtins):
    """Portable C and the PULP-builtin spelling (emulated) under ASan/UBSan, packed stores included."""
    src = SOURCES["matmul_nt_s8"]
    r = verify(src, "xpulpv2", dict(M=9, K=12, N=8), Target("host", "gcc", sanitize=True, builtins=builtins))
    assert r.ok, describe_failure(r, src)


@pytest.mark.spike
def test_hwloop_structure_of_executed_kernel():
    from kgen.sim import riscv

    if not riscv.tools_available():
        pytest.skip("spike / clang-19 missing")
    r = verify(SOURCES["matmul_nt_s8"], "xpulpv2", dict(M=64, K=64, N=64),
               Target("spike", "clang", "rv32", opt="-O3"), modes=("random",))
    assert r.ok
    # n_o: 16 iterations, 1 entry (level 1); m_o: 256 iterations, 16 entries (level 0)
    x = r.extra
    assert x["instructions_hwloop_est"] < r.region_instructions[0]
    assert x["cycles_est_hwloop"] < x["cycles_est"]


@pytest.mark.spike
@pytest.mark.parametrize("cores", [1, 8])
def test_partial_k_unroll_bit_exact(monkeypatch, cores):
    """K loops that stay loops (k_unroll below the K steps): top-level tail locals keep their
    loops in the same serial group on multi-core builds."""
    from kgen import verify as V
    from kgen.sim import riscv

    if not riscv.tools_available():
        pytest.skip("spike / clang-19 missing")
    orig = V.get_backend
    monkeypatch.setattr(V, "get_backend", lambda isa, cores=1: orig(isa, cores, tile=(4, 4), k_unroll=4))
    src = SOURCES["matmul_nt_s8"]
    r = V.verify(src, "xpulpv2", dict(M=9, K=67, N=13), Target("spike", "clang", "rv32", opt="-O3", cores=cores))
    assert r.ok, describe_failure(r, src)
