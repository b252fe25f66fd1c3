"""The fused encoder block (and the whole-MHSA benchmark kernel) at the reference model dims:
reference interpreter against the numpy oracle of the whole block, bit-exact.

Host compilation of encoder_block_s8 (gcc and clang, sanitizers) is in test_transformer_verify.py;
the small-shape chain equivalence in test_transformer_kernels.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from kgen.interp import run_reference
from kgen.testdata import make_cases
from kgen.transformer import library_kernel, load_configs
from test_transformer_numpy_ref import I64, encoder_block, mhsa, realistic_block_args

CONFIGS = load_configs()


def _sizes(key: str, with_f: bool = True) -> dict[str, int]:
    c = CONFIGS[key]
    return dict(S=c.S, E=c.E, P=c.P, H=c.H, **({"F": c.F} if with_f else {}))


def _blocked(key: str, d: dict[str, int]) -> dict[str, int]:
    """The kernel sizes (S = NB·BLK, the configuration's query-row block) of ``d``."""
    blk = CONFIGS[key].BLK
    return {"NB": d["S"] // blk, "BLK": blk, **{k: v for k, v in d.items() if k != "S"}}


@pytest.mark.parametrize("key", ["eeg", "ecg"])
def test_encoder_block_at_model_dims(key):
    d = _sizes(key)
    g = realistic_block_args(d["S"], d["E"], d["P"], d["H"], d["F"], np.random.default_rng(31))
    k = library_kernel("encoder_block_s8")
    y = run_reference(k, _blocked(key, d), {p.name: g[p.name] for p in k.params if p.name in g})["Y"]
    want = encoder_block(g, d["H"], d["P"])
    assert np.array_equal(y.astype(I64), want)
    assert len(np.unique(y)) > 40 and np.mean(np.abs(y.astype(int)) >= 127) < 0.05


def test_encoder_block_extreme_cases_at_ecg_dims():
    d = _sizes("ecg")
    for case in make_cases(library_kernel("encoder_block_s8"), _blocked("ecg", d), seed=5,
                           modes=("min", "max", "alternating")):
        assert np.array_equal(case.expected["Y"].astype(I64), encoder_block(case.args, d["H"], d["P"])), case.name


def test_mhsa_s8_at_bench_dims():
    d = _sizes("bench", with_f=False)
    g = realistic_block_args(d["S"], d["E"], d["P"], d["H"], 8, np.random.default_rng(32))
    k = library_kernel("mhsa_s8")
    y = run_reference(k, _blocked("bench", d), {p.name: g[p.name] for p in k.params if p.name in g})["Y"]
    assert np.array_equal(y.astype(I64), mhsa(g, d["H"], d["P"]))
    assert len(np.unique(y)) > 40
