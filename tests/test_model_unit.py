"""kgen.model without simulators: platform/toolchain data, the static cost walk, register pressure,
symbolic analysis and formulas, overflow bounds and refusals, the schedule chooser's constraints."""
from __future__ import annotations

import pytest
import sympy as sp

from conftest import builtin, kernel_source, run_kgen
from kgen.errors import KgenError
from kgen.model import overflow
from kgen.model.analysis import analyze, contraction_footprints
from kgen.model.cost import count_kernel
from kgen.model.platform import (instructions_of, load_platform, load_toolchain, parse_budget, platform_for,
                                 toolchain_for)
from kgen.model.regs import block_pressure
from kgen.schedule import specialize


# ------------------------------------------------------------------------------ platforms

def test_platforms_describe_memories_cores_and_word_size():
    gap9 = load_platform("gap9")
    assert (gap9.isa, gap9.cores, gap9.word_bits) == ("xpulpv2", 8, 32)
    assert gap9.memory("L1").bytes == 128 * 1024 and gap9.memory("L1").shared_by == 8
    assert gap9.memory("L2").bytes == 1536 * 1024 and gap9.operand_memory.name == "L1"
    l4, h7 = load_platform("stm32l4"), load_platform("stm32h7")
    assert l4.memory("SRAM1").bytes + l4.memory("SRAM2").bytes == 128 * 1024
    assert h7.memory("DTCM").bytes == 128 * 1024 and h7.memory("AXI_SRAM").bytes == 512 * 1024
    # cycle costs: the ISA file's cost model first (M4 load 2, taken branch 3), then the platform's
    assert l4.cycles["load"] == 2 and l4.cycles["branch_taken"] == 3 and l4.cycles["div"] == 12
    assert gap9.cycles["mulh"] == 5 and gap9.cycles["load_use"] == 1


def test_toolchains_and_budgets():
    for isa, compiler in (("armv7em", "gcc"), ("armv7em", "clang"), ("xpulpv2", "clang")):
        tc = toolchain_for(isa, compiler)
        assert tc.isa == isa and tc.compiler == compiler and "mac32" in tc.ops and "div64" in tc.libcalls
    assert load_toolchain("armv7em-gcc").loops["full_unroll_max_trip"] == 16
    gap9 = platform_for("xpulpv2")
    assert parse_budget("L1=64k", gap9) == {"L1": 65536}
    assert parse_budget("L1=1M,L2=512K", gap9) == {"L1": 1 << 20, "L2": 512 << 10}
    assert parse_budget("L1=8k", platform_for("armv7em")) == {"SRAM1": 8192}  # L1 = the operand memory
    with pytest.raises(KgenError, match="expected MEMORY=SIZE"):
        parse_budget("L1", gap9)
    with pytest.raises(KgenError, match="has no memory 'L3'"):
        parse_budget("L3=1k", gap9)
    with pytest.raises(KgenError, match="has ISA xpulpv2, not armv7em"):
        platform_for("armv7em", "gap9")


# ------------------------------------------------------------------------------ cost walk

LOOP = """
kernel axpy(X: in i8[N], Y: out i8[N], a: i32) {
    for i in 0..N {
        Y[i] = i8(clip(i32(X[i]) * a, -128, 127));
    }
}
"""


def _count(text: str, sizes: dict, isa: str = "armv7em") -> float:
    k = specialize(kernel_source(text).kernel, sizes)
    tc = toolchain_for(isa)
    counts, _ = count_kernel(k, tc, (), sizes)
    return float(instructions_of(counts, tc))


def test_rolled_loop_costs_body_plus_overhead_per_iteration():
    tc = toolchain_for("armv7em")
    # body: load, mul, clip8 (6: gcc clamps with compares), store = 9; iteration: cmp + branch; X and Y
    # streams step with post-increment; entry: 1 + 2 streams; the call: 11
    body = 1 + 1 + sum(tc.op("clip8").values()) + 1
    n = 100
    assert _count(LOOP, {"N": n}) == n * (body + 2) + 1 + 2 + instructions_of(tc.function, tc)


def test_compiler_unrolls_short_loops_completely():
    tc = toolchain_for("armv7em")
    body = 1 + 1 + sum(tc.op("clip8").values()) + 1
    # 8 iterations <= 16 and 8 * 9 <= 200: no loop overhead at all
    assert _count(LOOP, {"N": 8}) == 8 * body + instructions_of(tc.function, tc)


def test_invariants_are_hoisted_and_common_subexpressions_shared():
    text = """
kernel k(X: in i8[N], Y: out i32[N], a: i32, b: i32) {
    for i in 0..N {
        Y[i] = (a * b) * i32(X[i]) + (a * b);
    }
}
"""
    hoisted = _count(text, {"N": 1000})
    plain = _count(LOOP.replace("clip(i32(X[i]) * a, -128, 127)", "i32(X[i]) * a").replace("i8(i", "i8(i"),
                   {"N": 1000})
    # a*b is computed once, before the loop: per iteration load, mla (the product added), store
    assert hoisted < plain + 100


SIGN = """
kernel sgn(X: in i8[N], Y: out i32[N], one: i32) {
    for i in 0..N {
        var x: i32 = i32(X[i]);
        var sg: i32 = select(x > 0, 1, select(x < 0, -1, 0));
        Y[i] = sg * (one - abs(x));
    }
}
"""


def test_constant_select_that_multiplies_is_priced_as_split_paths():
    from kgen.model.paths import constant_arms, fold, signs, specialise
    from kgen.ir import I32, Bin, Const, Decl, Un, Var

    k = specialize(kernel_source(SIGN).kernel, {"N": 1})
    x, one = Var("x", I32), Var("one", I32)
    body = k.body[0].body
    arms = constant_arms(body[1].init)
    assert [(p, v.value) for p, _, v in arms] == [(0.5, 1), (0.25, -1), (0.25, 0)]
    assert [signs(c) for _, c, _ in arms] == [{"x": 1}, {"x": -1}, {}]
    assert fold(Bin("mul", Const(-1, I32), Bin("sub", one, x, I32), I32)) == Un("neg", Bin("sub", one, x, I32), I32)
    assert fold(Bin("add", Bin("mul", Const(0, I32), x, I32), one, I32)) == one
    pos = specialise(body[2:], "sg", Const(1, I32), {"x": 1})
    assert "sg" not in str(pos) and "abs" not in str(pos)
    # gcc: branches (cmp + branch, the second half of the time), each path folds the product and
    # abs; without the split the model charges two selects, abs and the multiply on every element
    from dataclasses import replace

    gcc = load_toolchain("armv7em-gcc")
    plain = replace(gcc, loops={**gcc.loops, "split_constant_selects": False})
    k2 = specialize(kernel_source(SIGN).kernel, {"N": 1000})
    split, _ = count_kernel(k2, gcc, (), {"N": 1000})
    unsplit, _ = count_kernel(k2, plain, (), {"N": 1000})
    assert float(instructions_of(split, gcc)) < float(instructions_of(unsplit, gcc)) - 3 * 1000


def test_register_pressure_of_a_register_block():
    k = builtin("matmul_nt_s8").kernel
    from kgen.backends import raw_backend_class
    from kgen.ir import For

    low = raw_backend_class("armv7em")(tile=(2, 2)).lower(k, {"M": 4, "K": 16, "N": 4})
    blocks = [s for s in low.kernel.body[0].body if isinstance(s, For) and s.var == "n_o"]
    p = block_pressure(blocks[0].body)
    # 4 accumulators, two column operand pairs across the rows, one row pair, two streamed buffers
    assert p.live >= 4 and p.bases == 2 and p.need(0) <= 14


# ------------------------------------------------------------------------------ analysis / formulas

def test_symbolic_counts_of_matmul():
    a = analyze(builtin("matmul_nt_s8").kernel)
    M, K, N = (sp.Symbol(n, integer=True) for n in "MKN")
    assert sp.simplify(a.macs - M * N * K) == 0 and sp.simplify(a.outputs - M * N) == 0
    b = {x.name: x for x in a.buffers}
    assert sp.simplify(b["X"].loads - M * N * K) == 0 and sp.simplify(b["bias"].bytes - 4 * N) == 0
    assert [(l.var, sp.sstr(l.executions)) for l in a.loops] == [("m", "M"), ("n", "M*N"), ("k", "K*M*N")]


def test_symbolic_counts_follow_views_and_triangular_loops():
    text = """
kernel tri(X: in i8[N, N], Y: out i32[N]) {
    for i in 0..N {
        var s: i32 = 0;
        for j in 0..i {
            s += i32(X[i, j]) * i32(X[j, i]);
        }
        Y[i] = s;
    }
}
"""
    a = analyze(kernel_source(text).kernel)
    N = sp.Symbol("N", integer=True)
    assert sp.simplify(a.macs - N * (N - 1) / 2) == 0
    qk = {b.name: b for b in analyze(builtin("linear_qk_s8").kernel).buffers}
    assert qk["W"].loads != 0  # accessed through the view Wh


def test_footprints_are_functions_of_shape_and_tile():
    from kgen.backends import raw_backend_class

    k = builtin("matmul_nt_s8").kernel
    low = raw_backend_class("xpulpv2")(tile=(4, 4)).lower(k, {"M": 8, "K": 8, "N": 8})
    fp = contraction_footprints(k, low.kernel)
    N, K, C = sp.Symbol("N", integer=True), sp.Symbol("K", integer=True), sp.Symbol("C", positive=True, integer=True)
    assert sp.simplify(fp["W_packed"] - 4 * C * sp.ceiling(K / 4) * sp.ceiling(N / C)) == 0


# ------------------------------------------------------------------------------ overflow

I16_ACC = """
# an int16 accumulator of int8 products: two products can already leave int16
kernel dot16(X: in i8[K], W: in i8[K], Y: out i16[1]) {
    var acc: i16 = 0;
    for k in 0..K {
        acc += i16(X[k]) * i16(W[k]);
    }
    Y[0] = acc;
}
"""


def test_accumulator_bounds_from_value_ranges():
    accs = {a.name: a for a in overflow.accumulations(builtin("matmul_nt_s8").kernel)}
    acc = accs["acc"]
    assert acc.term_range == (-16256, 16384) and acc.limit() == 131071  # |i8*i8| <= 16384
    assert acc.init_range is None  # the int32 bias is unbounded: a precondition, not a refusal
    av = overflow.accumulations(builtin("mhsa_av_s8").kernel)[0]
    assert av.term_range == (-32640, 32385) and av.limit() == 65793  # u8 * i8
    overflow.check_overflow(builtin("matmul_nt_s8").kernel, {"M": 1, "K": 131071, "N": 1})
    with pytest.raises(KgenError, match=r"at most 131071 updates \(K <= 131071\) are safe") as exc:
        overflow.check_overflow(builtin("matmul_nt_s8").kernel, {"M": 1, "K": 131072, "N": 1})
    assert exc.value.loc is not None and exc.value.loc.file == "kernels/matmul_nt_s8.kg"


def test_overflow_refusal_is_located_and_has_opt_outs():
    k = kernel_source(I16_ACC).kernel
    overflow.check_overflow(k, {"K": 1})
    with pytest.raises(KgenError, match="i16 accumulator 'acc' can overflow") as exc:
        overflow.check_overflow(k, {"K": 2})
    assert (exc.value.loc.line, exc.value.loc.col) == (6, 9)
    with overflow.policy(True):
        overflow.check_overflow(k, {"K": 2})
    wrapped = kernel_source(I16_ACC.replace("for k in 0..K {", "for k in 0..K @wraps {")).kernel
    overflow.check_overflow(wrapped, {"K": 1000})


def test_cli_refuses_overflow_with_exit_2_and_no_traceback(tmp_path):
    dsl = tmp_path / "dot16.kg"
    dsl.write_text(I16_ACC)
    for argv in (["verify", "dot16", "--isa", "generic", "--shape", "K=3", "--dsl", str(dsl)],
                 ["build", "dot16", "--isa", "armv7em", "--shape", "K=3", "--dsl", str(dsl),
                  "--out", str(tmp_path / "out")],
                 ["explain", "matmul_nt_s8", "--isa", "xpulpv2", "--shape", "M=1,K=131072,N=1"]):
        proc = run_kgen(*argv)
        assert proc.returncode == 2, proc.stderr
        assert "accumulator 'acc' can overflow" in proc.stderr and "Traceback" not in proc.stderr
        assert "--allow-overflow" in proc.stderr
    assert f"{dsl}:6:9: error: i16 accumulator" in run_kgen(
        "verify", "dot16", "--isa", "generic", "--shape", "K=3", "--dsl", str(dsl)).stderr
    proc = run_kgen("build", "dot16", "--isa", "armv7em", "--shape", "K=3", "--dsl", str(dsl), "--allow-overflow",
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------ chooser constraints

def test_forced_tile_over_the_register_budget_is_refused():
    proc = run_kgen("explain", "matmul_nt_s8", "--isa", "xpulpv2", "--shape", "M=8,K=8,N=8", "--tile", "6x6")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "infeasible" in proc.stderr and "binding constraint: registers (isa/xpulpv2.toml [registers] " \
        "allocatable = 28)" in proc.stderr


@pytest.mark.parametrize("argv, binding", [
    (["matmul_nt_s8", "--isa", "xpulpv2", "--shape", "M=16,K=64,N=64", "--budget", "L1=4k"], "W_packed (4096 B)"),
    (["softmax_s8_u8", "--isa", "armv7em", "--shape", "R=16,C=64", "--budget", "L1=1k"], "binding constraint: "),
])
def test_infeasible_memory_budget_names_the_binding_buffer(argv, binding):
    proc = run_kgen("explain", *argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "infeasible" in proc.stderr or "needs" in proc.stderr
    assert binding in proc.stderr


def test_dsl_annotations_force_the_schedule():
    from kgen.model.chooser import choose_schedule

    text = builtin("matmul_nt_s8").kernel
    src = kernel_source("""
kernel mm(X: in i8[M, K], W: in i8[N, K], bias: in i32[N], mul: i32, shift: i32 in 0..32, Y: out i8[M, N]) {
    for m in 0..M @tile(2, 2) {
        for n in 0..N {
            var acc: i32 = bias[n];
            for k in 0..K @k_unroll(8) {
                acc += i32(X[m, k]) * i32(W[n, k]);
            }
            Y[m, n] = requant(acc, mul, shift, floor);
        }
    }
}
""")
    del text
    s = choose_schedule(src.kernel, {"M": 8, "K": 32, "N": 8}, "armv7em")
    assert s.source == "dsl" and s.chosen.tile == (2, 2) and s.chosen.k_unroll == 8
    bad = kernel_source(src and """
kernel mm(X: in i8[M, K], W: in i8[N, K], Y: out i32[M, N]) {
    for m in 0..M {
        for n in 0..N @tile(2, 2) {
            var acc: i32 = 0;
            for k in 0..K {
                acc += i32(X[m, k]) * i32(W[n, k]);
            }
            Y[m, n] = acc;
        }
    }
}
""")
    with pytest.raises(KgenError, match="belongs on the outer loop"):
        choose_schedule(bad.kernel, {"M": 4, "K": 4, "N": 4}, "armv7em")
