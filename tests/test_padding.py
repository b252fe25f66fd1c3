"""Zero-padded operand layouts (kgen.backends.padding): guard-free copy nests and reduction tails
that run over the padding."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import builtin
from kgen.backends import raw_backend_class
from kgen.backends.contraction import Packing
from kgen.backends.padding import PadBound, padded_fill
from kgen.interp import run_reference
from kgen.ir import I8, I16, IDX, Bin, BufferParam, Cast, Const, For, If, Kernel, Load, Store, Var, walk_stmts


@pytest.mark.parametrize("N,K", [(5, 7), (4, 8), (1, 3), (6, 13)])
def test_padded_fill_equals_the_packing_without_index_guards(N, K):
    p = Packing("A", "B", I16, 0, 1, 2, 4, N, K)
    names = ("nb", "kb", "c", "l")
    v = {x: Var(x, IDX) for x in names}
    n_ix = Bin("add", Bin("mul", Const(2, IDX), v["nb"], IDX), v["c"], IDX)
    k_ix = Bin("add", Bin("mul", Const(4, IDX), v["kb"], IDX), v["l"], IDX)
    fill = Store("B", tuple(v[x] for x in names), Cast(Load("A", (n_ix, k_ix), I8), I16))
    zero = Store("B", tuple(v[x] for x in names), Const(0, I16))
    bounds = tuple(b for b in (PadBound("nb", 2, "c", N), PadBound("kb", 4, "l", K)) if b.extent % b.factor)
    body = padded_fill(tuple((x, 0, e) for x, e in zip(names, p.shape)), bounds, fill, zero)
    assert not any(isinstance(s, If) for s in walk_stmts(body))
    loops = [s.var for s in walk_stmts(body) if isinstance(s, For)]
    assert len(loops) == len(set(loops))  # split-off parts have loops of their own
    params = (BufferParam("A", I8, (Const(N, IDX), Const(K, IDX)), "in"),
              BufferParam("B", I16, tuple(Const(d, IDX) for d in p.shape), "out"))
    kernel = Kernel("fill", params, (), body, None, "")
    a = np.random.default_rng(N * K).integers(-128, 128, (N, K))
    got = run_reference(kernel, {}, {"A": a, "B": np.full(p.shape, 99)})["B"]
    assert (got == p.pack(a)).all()  # every element written: the data and the zero padding


def test_reduction_tail_over_the_padding_is_whole_dot_products():
    """K = 10: two full quads and a tail of two; the tail runs as one more quad of SMLADs."""
    low = raw_backend_class("armv7em")(tile=(2, 2)).lower(builtin("matmul_nt_s8").kernel, {"M": 4, "K": 10, "N": 4})
    products = [x for s in walk_stmts(low.kernel.body) if not isinstance(s, For)
                for e in (getattr(s, "value", None), getattr(s, "init", None)) if e is not None
                for x in _walk(e) if isinstance(x, Bin) and x.op == "mul" and isinstance(x.a, Cast)
                and isinstance(x.a.a, Load) and isinstance(x.b, Cast) and isinstance(x.b.a, Load)]
    assert not products  # no scalar product left: the register block is 3 quads of SMLAD per output
    calls = [x.fn for s in walk_stmts(low.kernel.body) for e in (getattr(s, "value", None), getattr(s, "init", None))
             if e is not None for x in _walk(e) if x.__class__.__name__ == "Call" and x.fn.startswith("isa.")]
    assert calls.count("isa.armv7em.smlad") == 4 * 3 * 2  # one 2x2 block (rolled loops over the blocks)



def test_xpulpv2_staged_reduction_tail_runs_over_the_padding():
    """XpulpV2 stages both operands of linear_vt_s8 (E = 26: six full quads and a tail of two) with
    zero padding, copied without index guards: the copies do not count as unstaged operand reads,
    so the tail runs as one more quad of dot products instead of scalar products."""
    low = raw_backend_class("xpulpv2")().lower(builtin("linear_vt_s8").kernel, {"S": 37, "E": 26, "H": 3, "P": 10})
    products = [x for s in walk_stmts(low.kernel.body) if not isinstance(s, For)
                for e in (getattr(s, "value", None), getattr(s, "init", None)) if e is not None
                for x in _walk(e) if isinstance(x, Bin) and x.op == "mul" and isinstance(x.a, Cast)
                and isinstance(x.a.a, Load) and isinstance(x.b, Cast) and isinstance(x.b.a, Load)]
    assert not products


def _walk(e):
    from kgen.ir import walk_expr

    return walk_expr(e)
