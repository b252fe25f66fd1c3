"""FWSA (paper §5): decision rule and counts from the kernels, offline fusion, fused kernel fidelity."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from kgen.interp import run_reference
from kgen.transformer import library_kernel, load_configs
from kgen.transformer.counts import buffer_elements, count_ops, macs
from kgen.transformer.fwsa import (FWSAError, FWSAWarning, check_fwsa, fuse_qk, fused_products,
                                   fwsa_decision, quantize_multiplier, unfused_score_scale)
from test_transformer_numpy_ref import (I64, calib_shift, fwsa_scores_softmax, heads, ibert_softmax_coeffs,
                                        int8_normal, int32_normal, isoftmax, scores)

CFG = load_configs()


def test_eeg_fwsa_saves_25_percent_parameters_and_score_macs():
    c = CFG["eeg"]
    d = fwsa_decision(c.S, c.E, c.P, c.H)
    assert (d.mhsa_params_standard, d.mhsa_params_fused) == (32768, 24576)
    assert d.param_reduction == pytest.approx(0.25)
    assert (d.score_macs_standard, d.score_macs_fused) == (3_006_720, 2_343_168)
    assert (d.mhsa_macs_standard, d.mhsa_macs_fused) == (6_013_440, 5_349_888)
    assert d.use_fwsa and check_fwsa(c.S, c.E, c.P, c.H) == d


def test_ecg_fwsa_is_refused():
    c = CFG["ecg"]
    d = fwsa_decision(c.S, c.E, c.P, c.H)
    assert (d.mhsa_params_standard, d.mhsa_params_fused) == (1024, 2560)
    assert (d.score_macs_standard, d.score_macs_fused) == (103_488, 692_736)
    assert not d.fewer_params and not d.use_fwsa
    with pytest.raises(FWSAError, match="E >= 2P"):
        check_fwsa(c.S, c.E, c.P, c.H)
    with pytest.warns(FWSAWarning):
        check_fwsa(c.S, c.E, c.P, c.H, strict=False)
    rng = np.random.default_rng(0)
    w = int8_normal(rng, (c.H * c.P, c.E), 30)
    b = int32_normal(rng, (c.H * c.P,), 100)
    with pytest.raises(FWSAError):
        fuse_qk(w, b, w, c.H, c.P, score_scale=1e-4)
    with pytest.warns(FWSAWarning):
        fuse_qk(w, b, w, c.H, c.P, score_scale=1e-4, S=c.S, force=True)


def test_mac_rule_warns_when_only_parameters_shrink():
    # E < 2P but E·(E+S) >= P·(2E+S): E = 48, P = 32, S = 64 (5376 >= 5120)
    d = fwsa_decision(64, 48, 32, 2)
    assert d.fewer_params and not d.fewer_macs
    with pytest.warns(FWSAWarning, match="not MACs"):
        check_fwsa(64, 48, 32, 2)


@pytest.mark.parametrize("S,E,P,H", [(81, 32, 32, 8), (66, 16, 2, 8), (64, 64, 64, 1), (4, 32, 32, 8),
                                     (7, 5, 3, 2), (10, 24, 16, 3)])
def test_counts_from_kernels_match_closed_forms(S, E, P, H):
    d = fwsa_decision(S, E, P, H)
    assert d.qk_params_standard == 2 * E * H * P and d.qk_params_fused == H * E * E
    assert d.score_macs_standard == 2 * S * E * H * P + H * S * S * P
    assert d.score_macs_fused == H * S * E * E + H * S * S * E
    assert d.mhsa_macs_standard == 4 * S * E * H * P + 2 * H * S * S * P
    assert d.fewer_params == (E < 2 * P)
    assert d.fewer_macs == (E * (E + S) < P * (2 * E + S))


def test_count_walker_on_library_kernels():
    z = dict(S=81, NB=27, BLK=3, E=32, P=32, H=8, F=64)  # mhsa_s8, encoder_block_s8: S = NB·BLK
    assert macs(library_kernel("mhsa_s8"), z) == 4 * 81 * 32 * 256 + 2 * 8 * 81 * 81 * 32
    enc = count_ops(library_kernel("encoder_block_s8"), z)
    assert enc.macs == 4 * 81 * 32 * 256 + 2 * 8 * 81 * 81 * 32 + 2 * 81 * 32 * 64
    # softmax: one reciprocal division per row plus ceil(2^16/log2) once per call (no per-element
    # division); LayerNorm: 2 + E per row (mean, variance, one per element)
    assert enc.divs == 8 * 81 + 1 + 2 * 81 * (2 + 32)
    assert count_ops(library_kernel("softmax_s8_u8"), dict(R=3, C=9)).divs == 3 + 1
    assert macs(library_kernel("mhsa_depth_first_s8"), dict(H=8, NB=27, BLK=3, P=32)) == 2 * 8 * 81 * 81 * 32
    assert buffer_elements(library_kernel("encoder_block_s8"), z, ["Wq", "Wk", "Wv", "Wo", "W1", "W2"]) == \
        4 * 32 * 256 + 2 * 32 * 64


def test_quantize_multiplier():
    for scale in (1e-6, 3.7e-3, 0.5, 1.0, 3.25, 100.0):
        m, s = quantize_multiplier(scale, 1 << 12)
        assert 1 <= m <= (1 << 15) - 1 and 0 <= s <= 31 and m * (1 << 12) < 1 << 31
        assert abs(m / 2**s - scale) <= 0.5 / 2**s
    with pytest.raises(FWSAError):
        quantize_multiplier(1e-12, 100)
    with pytest.raises(FWSAError):
        quantize_multiplier(1e6, 1 << 20)


def test_fused_products_are_exact_up_to_row_constants():
    rng = np.random.default_rng(1)
    S, E, P, H = 6, 5, 3, 2
    X = rng.integers(-128, 128, (S, E))
    Wq, Wk = rng.integers(-128, 128, (H * P, E)), rng.integers(-128, 128, (H * P, E))
    bq, bk = rng.integers(-5000, 5000, H * P), rng.integers(-5000, 5000, H * P)
    M, beta = fused_products(Wq, bq, Wk, H, P)
    for h in range(H):
        q = X @ Wq[h * P:(h + 1) * P].T + bq[h * P:(h + 1) * P]
        k = X @ Wk[h * P:(h + 1) * P].T + bk[h * P:(h + 1) * P]
        fused = (X @ M[h].T + beta[h]) @ X.T
        diff = q @ k.T - fused
        assert np.all(diff == diff[:, :1])  # constant along each row: softmax cannot see it


@pytest.fixture(scope="module")
def eeg_attention():
    """Unfused and FWSA integer attention maps at EEG dims, plus the float softmax they approximate."""
    c = CFG["eeg"]
    S, E, P, H = c.S, c.E, c.P, c.H
    rng = np.random.default_rng(40)
    X = int8_normal(rng, (S, E), 45)
    Wq, Wk = int8_normal(rng, (H * P, E), 30), int8_normal(rng, (H * P, E), 30)
    bq, bk = int32_normal(rng, (H * P,), 3000), int32_normal(rng, (H * P,), 3000)
    accq = X.astype(I64) @ Wq.T.astype(I64) + bq
    acck = X.astype(I64) @ Wk.T.astype(I64) + bk
    sq, sk = calib_shift(accq), calib_shift(acck)
    q, k = heads(X, Wq, bq, 1, sq, H, P), heads(X, Wk, bk, 1, sk, H, P)
    ss = calib_shift(np.einsum("hip,hjp->hij", q, k), 60)
    log2 = 10
    a, b, cc, _ = ibert_softmax_coeffs(log2)
    unfused = isoftmax(scores(q, k, 1, ss), a, b, cc, log2)
    alpha = unfused_score_scale(1, sq, 1, sk, 1, ss)
    fq = fuse_qk(Wq, bq, Wk, H, P, score_scale=alpha, X_calib=X, S=S)
    args = dict(X=X, a=a, b=b, c=cc, log2=log2, **fq.kernel_args())
    fused = run_reference(library_kernel("fwsa_scores_softmax_s8"), dict(S=S, E=E, H=H), args)["A"]
    real = alpha * np.einsum("hip,hjp->hij", accq.reshape(S, H, P).transpose(1, 0, 2).astype(float),
                             acck.reshape(S, H, P).transpose(1, 0, 2).astype(float)) * math.log(2) / log2
    f = np.exp(real - real.max(axis=-1, keepdims=True))
    return dict(args=args, fq=fq, unfused=unfused, fused=fused.astype(I64),
                float=255 * f / f.sum(axis=-1, keepdims=True))


def test_fwsa_kernel_at_eeg_dims_matches_numpy(eeg_attention):
    assert np.array_equal(eeg_attention["fused"], fwsa_scores_softmax(eeg_attention["args"]))
    fq = eeg_attention["fq"]
    assert fq.M.dtype == np.int8 and np.abs(fq.M.astype(int)).max() == 127
    assert fq.decision is not None and fq.decision.use_fwsa


def test_fwsa_is_as_accurate_as_the_unfused_pipeline(eeg_attention):
    ref = eeg_attention["float"]
    err_fused = np.abs(eeg_attention["fused"] - ref)
    err_unfused = np.abs(eeg_attention["unfused"] - ref)
    assert err_fused.mean() <= err_unfused.mean() + 0.05
    assert err_fused.mean() < 0.5 and err_fused.max() <= 4
    agree = (eeg_attention["fused"].argmax(-1) == ref.argmax(-1)).mean()
    assert agree > 0.8


def test_docs_fwsa_table_is_current():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "kernels.md").read_text()
    for key, c in CFG.items():
        assert fwsa_decision(c.S, c.E, c.P, c.H).markdown_row(key) in doc
