"""Schedule primitives keep semantics (checked against the reference interpreter) and refuse what
they cannot do with a ScheduleError naming the primitive and the loop."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kgen.interp import run_reference
from kgen.ir import For, If, walk_stmts
from kgen.library import builtin_sources
from kgen.parser import parse_kernel
from kgen.schedule import (ScheduleError, distribute, fuse_updates, reorder, specialize, split, unroll,
                           unroll_jam)

MATMUL = builtin_sources()["matmul_nt_s8"].kernel


def _args(M, K, N, seed=0):
    rng = np.random.default_rng(seed)
    return dict(X=rng.integers(-128, 128, (M, K)), W=rng.integers(-128, 128, (N, K)),
                bias=rng.integers(-5000, 5000, N), mul=int(rng.integers(1, 1 << 15)), shift=int(rng.integers(6, 20)))


def _same(k1, sizes1, k2, sizes2, args):
    a = run_reference(k1, sizes1, args)
    b = run_reference(k2, sizes2, args, checked=True)
    assert all((a[o] == b[o]).all() for o in a)


@settings(max_examples=25, deadline=None)
@given(M=st.integers(1, 7), K=st.integers(1, 9), N=st.integers(1, 7), fm=st.integers(1, 4), fn=st.integers(1, 4),
       fk=st.integers(1, 5), tail=st.sampled_from(["cut", "guard"]))
def test_tiling_pipeline_keeps_semantics(M, K, N, fm, fn, fk, tail):
    sizes = dict(M=M, K=K, N=N)
    s = specialize(MATMUL, sizes)
    s = split(s, "m", fm, tail)
    s = split(s, "n", fn, "cut")
    s = split(s, "k", fk, tail)
    for v in ("k_i", "k_t"):
        try:
            s = unroll(s, v)
        except ScheduleError:
            pass
    _same(MATMUL, sizes, fuse_updates(s), {}, _args(M, K, N))


@pytest.mark.parametrize("M,K,N", [(4, 6, 6), (5, 7, 3), (1, 1, 1)])
def test_register_block_by_unroll_and_jam(M, K, N):
    sizes = dict(M=M, K=K, N=N)
    s = specialize(MATMUL, sizes)
    s = split(s, "m", 2, "cut")
    s = split(s, "n", 3, "cut")
    try:
        s = distribute(s, "m_i")
    except ScheduleError:
        pass
    try:
        s = reorder(s, "m_i", "n_o")
    except ScheduleError:
        pass
    for v in ("n_i", "m_i"):
        try:
            s = unroll_jam(s, v)
        except ScheduleError:
            pass
    _same(MATMUL, sizes, fuse_updates(s), {}, _args(M, K, N))


def test_split_tail_policies_shape_the_nest():
    s = specialize(MATMUL, dict(M=5, K=4, N=2))
    cut = split(s, "m", 2, "cut")
    assert [x.var for x in cut.body] == ["m_o", "m_t"]          # full blocks, then the remainder
    guard = split(s, "m", 2, "guard")
    inner = guard.body[0].body[0]
    assert isinstance(inner, For) and isinstance(inner.body[0], If)  # rounded up and guarded
    with pytest.raises(ScheduleError, match=r"split\(m, 2, perfect\)"):
        split(s, "m", 2, "perfect")
    perfect = split(s, "k", 2, "perfect")
    assert not any(isinstance(x, For) and x.var == "k_t" for x in walk_stmts(perfect.body))
    _same(MATMUL, dict(M=5, K=4, N=2), perfect, {}, _args(5, 4, 2))


def test_illegal_schedules_are_refused():
    s = specialize(MATMUL, dict(M=4, K=4, N=4))
    with pytest.raises(ScheduleError, match="no loop over 'q'"):
        split(s, "q", 2)
    with pytest.raises(ScheduleError, match="reorder"):
        reorder(s, "n", "k")  # the n body is not just the k loop
    shared = parse_kernel("kernel p(X: in i32[N], Y: out i32[N]) {\n    var acc: i32 = 0;\n"
                          "    for n in 0..N { for k in 0..N { acc += X[k]; } Y[n] = acc; }\n}\n")
    with pytest.raises(ScheduleError, match="unroll_jam.*shared"):
        unroll_jam(specialize(shared, {"N": 4}), "n")  # jamming would interleave updates of one acc
    with pytest.raises(ScheduleError, match="not constant"):
        unroll(MATMUL, "k")


def test_unroll_renames_locals_per_copy():
    s = unroll(split(specialize(MATMUL, dict(M=2, K=3, N=2)), "n", 2, "perfect"), "n_i")
    names = [x.name for x in walk_stmts(s.body) if hasattr(x, "init")]
    assert len(names) == len(set(names)) == 2
