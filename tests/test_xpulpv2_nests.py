"""XpulpV2 beyond plain matmuls: contraction nests in attention kernels, row blocking, 64-bit
narrowing, guard splitting (each lowered kernel against the reference interpreter of its DSL
source), the dependence facts behind them, the multi-core split of kernels with local arrays
(SPMD: privatised scratch, barriers, balanced chunks) and the counts on Spike."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from kgen.backends import get_backend
from kgen.backends.loopdeps import independent_iterations, partitioned, private_arrays
from kgen.backends.nests import uniquify_loops
from kgen.backends.spmd import private_names
from kgen.interp import run_reference
from kgen.ir import Call, For, walk_expr, walk_stmts, stmt_exprs
from kgen.library import builtin_sources
from kgen.schedule import specialize
from kgen.scratch import plan_scratch
from kgen.testdata import make_cases
from kgen.verify import Target, describe_failure, verify

SOURCES = builtin_sources()


def _spike(cores: int = 1) -> Target:
    return Target("spike", "clang", "rv32", opt="-O3", cores=cores)


@pytest.fixture(scope="module")
def spike_ok():
    from kgen.sim import riscv

    if not riscv.tools_available():
        pytest.skip("spike / clang-19 missing")


def _same_as_reference(name: str, sizes: dict, cores: int = 1) -> None:
    """The lowered IR (what is emitted as C) computes what the DSL source computes."""
    low = get_backend("xpulpv2", cores).lower(SOURCES[name].kernel, sizes)
    for case in make_cases(SOURCES[name].kernel, sizes, 0, ("random", "min", "max")):
        args = {p.name: case.args[p.name] for p in low.kernel.params if p.name in case.args}
        out = run_reference(low.kernel, low.sizes, args, checked=True)
        for buf, want in case.expected.items():
            np.testing.assert_array_equal(out[buf], want, err_msg=f"{name} {sizes} {case.name} {buf}")


def _dots(name: str, sizes: dict) -> set[str]:
    """Mnemonics of the dot-product instructions in the lowered kernel."""
    low = get_backend("xpulpv2").lower(SOURCES[name].kernel, sizes)
    return {x.fn.split(".", 2)[2] for s in walk_stmts(low.kernel.body) for e in stmt_exprs(s)
            for x in walk_expr(e) if isinstance(x, Call) and "dot" in x.fn}


@pytest.mark.parametrize("name,sizes", [
    ("mhsa_depth_first_s8", dict(H=2, NB=3, BLK=3, P=10)),
    ("mhsa_av_s8", dict(H=2, S=9, P=6)),
    ("mhsa_s8", dict(NB=3, BLK=3, E=8, H=2, P=4)),
    ("encoder_block_s8", dict(NB=5, BLK=1, E=8, H=2, P=4, F=12)),
    ("fwsa_scores_softmax_s8", dict(S=7, E=6, H=2)),
    ("layernorm_s8", dict(S=3, E=44)),
])
@pytest.mark.parametrize("cores", [1, 8])
def test_lowered_ir_equals_reference(name, sizes, cores):
    _same_as_reference(name, sizes, cores)


def test_every_attention_contraction_uses_the_dot_products():
    """Signed × signed with pv.sdotsp.b, probabilities (uint8) × Vᵀ with pv.sdotusp.b, chosen by
    instruction selection from the declared semantics."""
    assert _dots("mhsa_av_s8", dict(H=1, S=16, P=8)) == {"pv.dotusp.b", "pv.sdotusp.b"}
    assert {"pv.sdotsp.b", "pv.sdotusp.b"} <= _dots("mhsa_depth_first_s8", dict(H=1, NB=8, BLK=2, P=8))
    assert {"pv.sdotsp.b", "pv.sdotusp.b"} <= _dots("mhsa_s8", dict(NB=4, BLK=2, E=8, H=1, P=8))


def test_private_arrays_and_independence():
    k = uniquify_loops(specialize(SOURCES["mhsa_depth_first_s8"].kernel, dict(H=2, NB=4, BLK=2, P=8)))
    loops = {s.var: s for s in walk_stmts(k.body) if isinstance(s, For)}
    qb = loops["qb"]
    assert private_arrays(k, qb) == {"T", "ybuf", "At"}
    assert independent_iterations(k, qb, private_arrays(k, qb))
    assert not independent_iterations(k, qb, set())  # T is reused by every block
    # heads write interleaved column blocks of O: disjoint, though not contiguous
    assert independent_iterations(k, loops["h"], private_arrays(k, loops["h"]))
    p = next(s for s in walk_stmts(qb.body) if isinstance(s, For) and s.var == "p")
    assert not independent_iterations(k, p)  # the reduction carries acc


def test_partitioned_offsets():
    t, c = sp.Symbol("t", integer=True), sp.Symbol("c", integer=True)
    assert partitioned([4 * t + c], "t", (0, 9), {"c": (0, 3)})
    assert not partitioned([2 * t + c], "t", (0, 9), {"c": (0, 3)})
    q = sp.floor(t / 6)  # a collapsed (row, column-block) loop
    assert partitioned([32 * q + 4 * (t - 6 * q) + c], "t", (0, 17), {"c": (0, 3)})
    assert not partitioned([16 * q + 4 * (t - 6 * q) + c], "t", (0, 17), {"c": (0, 3)})
    assert not partitioned([c], "t", (0, 1), {"c": (0, 3)})  # every iteration writes the same elements


def test_softmax_eight_cores_privatises_the_row_buffer():
    sizes = dict(R=16, C=24)
    one = get_backend("xpulpv2").lower(SOURCES["softmax_s8_u8"].kernel, sizes)
    eight = get_backend("xpulpv2", 8).lower(SOURCES["softmax_s8_u8"].kernel, sizes)
    rows = [s for s in eight.kernel.body if isinstance(s, For) and s.var == "r"]
    assert rows and rows[0].has("parallel") and private_names(rows[0]) == ("ybuf",)
    grow = plan_scratch(eight.kernel).bytes_for(sizes) - plan_scratch(one.kernel).bytes_for(sizes)
    assert grow == 7 * 24 * 4  # one more row buffer per extra core


@pytest.mark.spike
@pytest.mark.parametrize("name,sizes", [("softmax_s8_u8", dict(R=21, C=19)),
                                        ("mhsa_depth_first_s8", dict(H=1, NB=8, BLK=2, P=12)),
                                        ("mhsa_s8", dict(NB=8, BLK=2, E=12, H=1, P=8))])
def test_eight_cores_balanced_and_fast(spike_ok, name, sizes):
    """Kernels with local arrays use all 8 cores: balanced per-core counts, >= 5x faster."""
    one = verify(SOURCES[name], "xpulpv2", sizes, _spike(1), modes=("random",))
    eight = verify(SOURCES[name], "xpulpv2", sizes, _spike(8), modes=("random", "min", "max"))
    assert one.ok and eight.ok, describe_failure(eight, SOURCES[name])
    per_core = eight.extra["per_core_instructions"]
    assert min(per_core) >= 0.5 * max(per_core), per_core
    assert max(per_core) * 5 <= one.region_instructions[0], (per_core, one.region_instructions)


@pytest.mark.spike
def test_attention_head_chains_instruction_counts(spike_ok):
    """The S = E = P = 64 head as the kernels an application calls, one core: it cost 9.81 M
    instructions (unfused) and 7.89 M (FWSA) with portable C in the nests."""
    from kgen.bench_chain import chain_entries, chain_record

    entries = {e["kernel"]: e for e in chain_entries()}
    measured: dict = {}
    unfused = chain_record(entries["mhsa_head_s8"], SOURCES, "xpulpv2", _spike(1), measured)
    fwsa = chain_record(entries["mhsa_head_fwsa_s8"], SOURCES, "xpulpv2", _spike(1), measured)
    assert unfused["bit_exact"] and fwsa["bit_exact"]
    assert unfused["instructions"] <= 1_000_000
    assert fwsa["instructions"] <= 800_000


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("name,sizes", [("mhsa_depth_first_s8", dict(H=1, NB=3, BLK=2, P=6)),
                                        ("mhsa_av_s8", dict(H=2, S=9, P=5))])
def test_pulp_builtin_spelling_of_nests_on_host(compiler, name, sizes):
    r = verify(SOURCES[name], "xpulpv2", sizes, Target("host", compiler, sanitize=True, builtins=True))
    assert r.ok, describe_failure(r, SOURCES[name])
