"""Semantics of the DSL (kgen.semantics) and the two interpreters that implement it.

``run_reference`` (the compiled reference interpreter, the test oracle) and ``eval_expr`` (the
tree walker) must agree on every expression, including which ones are errors.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA_TYPES, ExprGen, builtin, extreme_value, scalar_names, scalar_params_text, type_range
from kgen import semantics as sem
from kgen.errors import KgenError
from kgen.interp import CANARY, compile_kernel, eval_expr, run_reference
from kgen.ir import I8, I16, I32, I64, IDX, SCALAR_TYPES, U8, U16, U32
from kgen.parser import parse_kernel

ALL = [I8, U8, I16, U16, I32, U32, I64]


# ----------------------------------------------------------------------------------- wrapping

@pytest.mark.parametrize("t", ALL, ids=str)
def test_wrap_each_type(t):
    span = 1 << t.bits
    assert sem.wrap(t.max + 1, t) == t.min
    assert sem.wrap(t.min - 1, t) == t.max
    assert sem.wrap(t.max, t) == t.max and sem.wrap(t.min, t) == t.min
    assert sem.wrap(span * 7 + 5, t) == 5
    assert sem.wrap(-span * 3 - 1, t) == (-1 if t.signed else span - 1)
    assert sem.apply_bin("add", t.max, 1, t) == t.min
    assert sem.apply_bin("sub", t.min, 1, t) == t.max
    assert sem.apply_bin("mul", t.max, t.max, t) == t.wrap(t.max * t.max)
    assert sem.apply_un("neg", t.min, t) == (t.min if t.signed else 0)
    assert sem.apply_un("bnot", 0, t) == (-1 if t.signed else t.max)
    assert sem.apply_bin("shl", 1, t.bits - 1, t) == (t.min if t.signed else 1 << (t.bits - 1))


def test_index_type_does_not_wrap():
    assert sem.wrap(1 << 80, IDX) == 1 << 80
    assert sem.apply_bin("mul", 1 << 40, 1 << 40, IDX) == 1 << 80


@pytest.mark.parametrize("a, b, q, r", [
    (7, 2, 3, 1), (-7, 2, -3, -1), (7, -2, -3, 1), (-7, -2, 3, -1), (6, 3, 2, 0), (-6, 3, -2, 0),
    (1, 5, 0, 1), (-1, 5, 0, -1), (0, -3, 0, 0),
])
def test_division_truncates_toward_zero(a, b, q, r):
    assert sem.tdiv(a, b) == q and sem.tmod(a, b) == r
    assert sem.apply_bin("div", a, b, I32) == q and sem.apply_bin("mod", a, b, I32) == r
    assert q * b + r == a


def test_division_overflow_wraps():
    assert sem.apply_bin("div", I32.min, -1, I32) == I32.min
    assert sem.apply_bin("mod", I32.min, -1, I32) == 0
    assert sem.apply_bin("div", I8.min, -1, I8) == I8.min


@pytest.mark.parametrize("op", ["div", "mod"])
@pytest.mark.parametrize("t", [I8, U32, I64, IDX], ids=str)
def test_division_by_zero_is_an_error(op, t):
    with pytest.raises(sem.SemanticsError, match="division by zero"):
        sem.apply_bin(op, 5, 0, t)
    assert issubclass(sem.SemanticsError, ValueError)


def test_shift_right_is_arithmetic():
    assert sem.apply_bin("shr", -1, 31, I32) == -1
    assert sem.apply_bin("shr", -8, 1, I32) == -4
    assert sem.apply_bin("shr", -7, 1, I32) == -4  # floor, not truncation
    assert sem.apply_bin("shr", I8.min, 7, I8) == -1
    assert sem.apply_bin("shr", U8.max, 7, U8) == 1  # unsigned: logical
    assert sem.apply_bin("shr", U32.max, 31, U32) == 1
    assert sem.apply_bin("shl", 3, 30, I32) == I32.min + (1 << 30)  # wraps


@pytest.mark.parametrize("t", ALL, ids=str)
@pytest.mark.parametrize("op", ["shl", "shr"])
def test_shift_amount_out_of_range_is_an_error(t, op):
    assert sem.apply_bin(op, 1, t.bits - 1, t) is not None
    for bad in (t.bits, t.bits + 1, -1, 1000):
        with pytest.raises(sem.SemanticsError, match="shift amount"):
            sem.apply_bin(op, 1, bad, t)


def test_bitwise_ops_and_comparisons():
    assert sem.apply_bin("and", -1, 0x0F, I8) == 0x0F
    assert sem.apply_bin("or", 0x70, 0x0F, I8) == 0x7F
    assert sem.apply_bin("xor", -1, 1, I16) == -2
    assert sem.apply_bin("or", 0x80, 0, U8) == 0x80
    assert [sem.apply_bin(op, 1, 2, I32) for op in ("lt", "le", "gt", "ge", "eq", "ne")] == [1, 1, 0, 0, 0, 1]
    assert sem.apply_bin("land", 1, 0, I32) == 0 and sem.apply_bin("lor", 0, 1, I32) == 1
    assert sem.apply_un("lnot", 0, I32) == 1


def test_builtins():
    assert sem.apply_call("min", [3, -4], I32, ()) == -4
    assert sem.apply_call("max", [3, -4], I32, ()) == 3
    assert sem.apply_call("clip", [300, -128, 127], I32, ()) == 127
    assert sem.apply_call("clip", [-300, -128, 127], I32, ()) == -128
    assert sem.apply_call("clip", [5, -128, 127], I32, ()) == 5
    assert sem.apply_call("abs", [-5], I32, ()) == 5
    assert sem.apply_call("abs", [I32.min], I32, ()) == I32.min  # wraps
    assert sem.apply_call("abs", [I8.min], I8, ()) == I8.min
    assert sem.apply_call("select", [1, 10, 20], I32, ()) == 10
    assert sem.apply_call("select", [0, 10, 20], I32, ()) == 20
    with pytest.raises(ValueError):
        sem.apply_call("sqrt", [4], I32, ())


# ----------------------------------------------------------------------------------- requant

@pytest.mark.parametrize("acc, mul, shift, floor, nearest", [
    (100, 1, 0, 100, 100),            # shift 0: no rounding term
    (300, 1, 0, 127, 127),            # saturation high
    (-300, 1, 0, -128, -128),         # saturation low
    (5, 1, 1, 2, 3),                  # 2.5: floor 2, nearest (ties up) 3
    (-5, 1, 1, -3, -2),               # -2.5: floor -3, nearest (ties toward +inf) -2
    (-6, 1, 2, -2, -1),               # -1.5
    (-7, 1, 2, -2, -2),               # -1.75
    (7, 3, 2, 5, 5),                  # 21/4 = 5.25
    (1000, 1000, 13, 122, 122),       # 1e6 / 8192 = 122.07
    (-1000, 1000, 13, -123, -122),
    (1 << 30, 1, 31, 0, -1),          # shift 31: 2**30 + 2**30 wraps to INT32_MIN
    (1 << 29, 1, 30, 0, 1),           # 0.5 rounds up
    (-1, 1, 31, -1, 0),               # shift 31 of -1
    (I32.min, 1, 31, -1, -1),
    (I32.max, 1, 31, 0, -1),          # the rounding term wraps the sum negative
    (65536, 65536, 0, 0, 0),          # acc*mul = 2**32 wraps to 0
    (65536, 32768, 0, -128, -128),    # 2**31 wraps to INT32_MIN
    (46341, 46341, 24, -128, -128),   # 2147488281 wraps negative
    (I32.min, -1, 0, -128, -128),     # -INT32_MIN wraps back to INT32_MIN
    (3, 1 << 30, 31, -1, 0),          # 3 * 2**30 wraps to -2**30; + 2**30 -> 0
    (I32.max, I32.max, 0, 1, 1),      # (2**31-1)**2 wraps to 1
])
def test_requant_floor_and_nearest(acc, mul, shift, floor, nearest):
    assert sem.requant(acc, mul, shift, "floor") == floor
    assert sem.requant(acc, mul, shift, "nearest") == nearest


def test_requant_matches_formula():
    rng = random.Random(7)
    for _ in range(2000):
        acc, mul = rng.randint(I32.min, I32.max), rng.choice([rng.randint(I32.min, I32.max), rng.randint(0, 1 << 16)])
        shift = rng.randint(0, 31)
        prod = I32.wrap(acc * mul)
        assert sem.requant(acc, mul, shift, "floor") == max(-128, min(127, prod >> shift))
        r = 1 << (shift - 1) if shift else 0
        assert sem.requant(acc, mul, shift, "nearest") == max(-128, min(127, I32.wrap(acc * mul + r) >> shift))


@pytest.mark.parametrize("shift", [-1, 32, 40])
def test_requant_shift_out_of_range(shift):
    with pytest.raises(sem.SemanticsError, match="requant shift"):
        sem.requant(1, 1, shift, "floor")


# ----------------------------------------------------------------------------------- run_reference

def _k(body: str, params: str) -> object:
    return parse_kernel(f"kernel t({params}) {{\n{body}\n}}\n")


def test_unwritten_output_element_is_an_error():
    k = _k("for n in 1..N { Y[n] = X[n]; }", "X: in i8[N], Y: out i8[N]")
    with pytest.raises(ValueError, match="leaves element 0 of output 'Y' unwritten"):
        run_reference(k, {"N": 3}, {"X": np.zeros(3, np.int8)})


def test_reading_before_writing_is_an_error():
    k = _k("var a: i32;\nfor n in 0..N { a += i32(X[n]); Y[n] = i8(a); }", "X: in i8[N], Y: out i8[N]")
    with pytest.raises(ValueError, match="reads a value before writing it"):
        run_reference(k, {"N": 2}, {"X": np.zeros(2, np.int8)})
    k = _k("for n in 0..N { Y[n] = Y[n] + X[n]; }", "X: in i8[N], Y: out i8[N]")
    with pytest.raises(ValueError, match="before writing"):
        run_reference(k, {"N": 2}, {"X": np.zeros(2, np.int8)})


def test_semantics_errors_propagate():
    k = _k("Y[0] = a / b;\nY[1] = a << b;", "a: i32, b: i32, Y: out i32[2]")
    with pytest.raises(sem.SemanticsError, match="division by zero"):
        run_reference(k, {}, {"a": 1, "b": 0})
    with pytest.raises(sem.SemanticsError, match="shift amount 40"):
        run_reference(k, {}, {"a": 1, "b": 40})
    assert run_reference(k, {}, {"a": 7, "b": 2})["Y"].tolist() == [3, 28]


def test_argument_validation():
    k = _k("for n in 0..N { Y[n] = X[n] + s; }", "X: in i8[N], s: i8, Y: out i8[N]")
    with pytest.raises(ValueError, match="does not fit in i8"):
        run_reference(k, {"N": 2}, {"X": np.zeros(2, np.int8), "s": 200})
    with pytest.raises(ValueError, match="expected 2 elements, got 3"):
        run_reference(k, {"N": 2}, {"X": np.zeros(3, np.int8), "s": 1})
    with pytest.raises(ValueError, match="missing sizes N"):
        compile_kernel(k, {})
    kw = parse_kernel("kernel w(X: in i8[N], Y: out i8[N]) where N % 4 == 0 { for n in 0..N { Y[n] = X[n]; } }")
    with pytest.raises(ValueError, match="violate constraint 'N % 4 == 0'"):
        run_reference(kw, {"N": 6}, {"X": np.zeros(6, np.int8)})


def test_buffer_values_out_of_range_are_rejected():
    k = _k("for n in 0..N { Y[n] = i32(X[n]); }", "X: in i8[N], Y: out i32[N]")
    with pytest.raises(ValueError):
        run_reference(k, {"N": 1}, {"X": np.array([200], dtype=np.int64)})


def test_every_type_wraps_in_the_reference():
    for t in DATA_TYPES:
        lo, hi = type_range(t)
        k = _k(f"Y[0] = a + {t}(1);\nY[1] = a * a;\nY[2] = -a;\nY[3] = ~a;\nY[4] = b - {t}(1);",
               f"a: {t}, b: {t}, Y: out {t}[5]")
        y = run_reference(k, {}, {"a": hi, "b": lo})["Y"].tolist()
        tt = SCALAR_TYPES[t]
        assert y == [lo, tt.wrap(hi * hi), tt.wrap(-hi), tt.wrap(~hi), hi], t
        assert str(run_reference(k, {}, {"a": hi, "b": lo})["Y"].dtype) == f"{'u' if t[0] == 'u' else ''}int{tt.bits}"


def test_views_strides_local_arrays_and_inout():
    k = parse_kernel("""
kernel split(X: in i8[S, H * P], Z: inout i32[N], T: out i8[H, S, P], E: out i8[S] strides [2]) {
    view Xh = X[H, S, P] strides [P, H * P, 1];
    var tmp: i32[N];
    for n in 0..N { tmp[n] = Z[n] * 2; }
    for n in 0..N { Z[n] = tmp[N - 1 - n] + 1; }
    for h in 0..H { for s in 0..S { for p in 0..P { T[h, s, p] = Xh[h, s, p]; } } }
    for s in 0..S { E[s] = X[s, 0]; }
}
""")
    sizes = {"S": 3, "H": 2, "P": 4, "N": 5}
    x = np.arange(3 * 8, dtype=np.int8).reshape(3, 8)
    out = run_reference(k, sizes, {"X": x, "Z": np.arange(5, dtype=np.int32)})
    assert out["T"].shape == (2, 3, 4)
    assert np.array_equal(out["T"], x.reshape(3, 2, 4).transpose(1, 0, 2))
    assert out["Z"].tolist() == [9, 7, 5, 3, 1]
    # strided output: flat storage of 1 + (S-1)*2 elements; the gaps keep the canary
    assert out["E"].tolist() == [0, CANARY, 8, CANARY, 16]
    checked = run_reference(k, sizes, {"X": x, "Z": np.arange(5, dtype=np.int32)}, checked=True)
    assert all(np.array_equal(out[n], checked[n]) for n in out)


def test_checked_mode_reports_out_of_range_indices():
    """An access that escapes its buffer (IR built past the checker) is caught at run time."""
    from dataclasses import replace

    from kgen.ir import Bin, Const

    k = _k("for n in 0..N { Y[0] = X[n]; }", "X: in i8[N], Y: out i8[1]")
    loop = k.body[0]
    bad = replace(k, body=(replace(loop, hi=Bin("add", loop.hi, Const(1, IDX), IDX)),))
    args = {"X": np.zeros(4, np.int8)}
    with pytest.raises(IndexError, match="index 4 out of range 0..3 in dimension 0 of 'X'"):
        run_reference(bad, {"N": 4}, args, checked=True)
    assert run_reference(k, {"N": 4}, args, checked=True)["Y"].tolist() == [0]


def test_matmul_reference_matches_numpy_small():
    src = builtin("matmul_nt_s8")
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (3, 5), dtype=np.int64).astype(np.int8)
    w = rng.integers(-128, 128, (4, 5), dtype=np.int64).astype(np.int8)
    b = rng.integers(-1000, 1000, 4).astype(np.int32)
    y = run_reference(src.kernel, {"M": 3, "K": 5, "N": 4}, {"X": x, "W": w, "bias": b, "mul": 3, "shift": 4})["Y"]
    acc = x.astype(np.int64) @ w.astype(np.int64).T + b
    assert np.array_equal(y, np.clip((acc * 3) >> 4, -128, 127).astype(np.int8))


# ----------------------------------------------------------------------------------- cross-check

_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), t=st.sampled_from(DATA_TYPES), depth=st.integers(0, 5))
def test_compiled_interpreter_matches_tree_walker(seed, t, depth):
    rng = random.Random(seed)
    gen = ExprGen(rng)
    exprs = [gen.expr(t, depth) for _ in range(4)] + [f"select({gen.cond(depth)}, {t}(1), {t}(0))"]
    body = "\n".join(f"    R[{i}] = i64({e});" for i, e in enumerate(exprs))
    try:
        k = parse_kernel(f"kernel x({scalar_params_text()}, R: out i64[{len(exprs)}]) {{\n{body}\n}}\n")
    except KgenError as exc:
        assert exc.loc is not None  # e.g. a literal-only subexpression out of range
        return
    for _ in range(3):
        env = {n: extreme_value(rng, ty) for n, ty in scalar_names()}
        walked: list[object] = []
        for stmt in k.body:
            try:
                walked.append(eval_expr(stmt.value, env))
            except sem.SemanticsError as exc:
                walked.append(type(exc))
        try:
            got = run_reference(k, {}, env)["R"].tolist()
        except sem.SemanticsError:
            # the reference stops at the first failing statement; the walker must fail there too
            first_bad = next((i for i, w in enumerate(walked) if w is sem.SemanticsError), None)
            assert first_bad is not None, (walked, exprs)
            continue
        assert sem.SemanticsError not in walked, (walked, exprs)
        assert got == walked, exprs
