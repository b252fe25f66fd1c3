"""Independent numpy implementations of the tiny-transformer kernels (the oracles of the other
test_transformer_* files), plus self-tests of their building blocks.

Everything here is vectorised numpy written from the algorithm descriptions (paper-notes §4.4,
the kernels' doc comments), not from the DSL text: int64 arithmetic, explicit 32-bit wrapping where
the DSL's int32 arithmetic wraps, truncating division where the DSL divides.
"""
from __future__ import annotations

import math

import numpy as np

I64 = np.int64


def w32(x):
    """Wrap to int32 (two's complement)."""
    x = np.asarray(x, dtype=I64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def tdiv(a, b):
    """Integer division truncating toward zero (C99), elementwise; b > 0."""
    a = np.asarray(a, dtype=I64)
    b = np.asarray(b, dtype=I64)
    q = np.abs(a) // b
    return np.where(a >= 0, q, -q)


def requant(acc, mul, shift):
    """clip8(wrap32(acc·mul) >> shift) with floor rounding (acc is an int32 value)."""
    t = w32(w32(acc) * I64(mul))
    return np.clip(t >> I64(shift), -128, 127).astype(I64)


def isqrt(v):
    """floor(sqrt(v)) for int64 v >= 0, vectorised (float estimate + exact correction)."""
    v = np.asarray(v, dtype=I64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(I64)
    r = np.where(r * r > v, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= v, r + 1, r)
    return r


def linear(x, w, bias, mul, shift):
    """requant(bias + x·wᵀ): x [..][K], w [N][K], bias [N] (int32 accumulator, wrapping)."""
    acc = np.asarray(x, I64) @ np.asarray(w, I64).T + np.asarray(bias, I64)
    return requant(acc, mul, shift)


def isoftmax(x, a, b, c, log2):
    """I-BERT integer softmax over the last axis, uint8 with 256 levels (one division per row)."""
    x = np.asarray(x, I64)
    xt = x - x.max(axis=-1, keepdims=True)
    z = np.minimum((-xt) // log2, 31)  # -(xt / log2) with truncation, since xt <= 0 < log2
    q = xt + z * log2 + b
    y = (a * q * q + c) >> z
    s = y.sum(axis=-1, keepdims=True)
    recip = ((255 << 32) + (s >> 1)) // s
    return ((y * recip + (1 << 31)) >> 32).astype(I64)


def igelu(x, b, one, mul, shift):
    """I-BERT i-GELU followed by the output requant."""
    x = np.asarray(x, I64)
    d = np.minimum(np.abs(x), -b) + b
    L = np.sign(x) * (one - d * d)
    y = (x * (one + L)) >> 1
    return requant(y, mul, shift)


def layernorm(x, gamma, beta, shift):
    """Integer LayerNorm over the last axis (mean, variance + 1, floor sqrt, int64 affine)."""
    x = np.asarray(x, I64)
    n = x.shape[-1]
    mean = tdiv(x.sum(axis=-1, keepdims=True), n)
    d = x - mean
    var = (d * d).sum(axis=-1, keepdims=True) // n + 1
    std = isqrt(var)
    t = (tdiv(d * np.asarray(gamma, I64), std) + np.asarray(beta, I64)) >> I64(shift)
    return np.clip(t, -128, 127)


def add_requant(a, b, mul_a, shift_a, mul_b, shift_b):
    return np.clip(requant(a, mul_a, shift_a) + requant(b, mul_b, shift_b), -128, 127)


# ------------------------------------------------------------------------------- attention


def heads(x, w, bias, mul, shift, H, P):
    """Projection split by head: [H][S][P]."""
    y = linear(x, w, bias, mul, shift)  # [S][H·P]
    return y.reshape(y.shape[0], H, P).transpose(1, 0, 2)


def scores(q, k, mul, shift):
    """[H][S][S] int8 scores of head-split Q, K."""
    return requant(np.einsum("hip,hjp->hij", np.asarray(q, I64), np.asarray(k, I64)), mul, shift)


def attention_av(a, vt, mul, shift):
    """O [S][H·P] from probabilities A [H][S][S] and Vᵀ [H][P][S]."""
    o = requant(np.einsum("hij,hpj->hip", np.asarray(a, I64), np.asarray(vt, I64)), mul, shift)
    return o.transpose(1, 0, 2).reshape(o.shape[1], -1)


def mhsa(g, H, P):
    """Whole MHSA with the argument names of mhsa_s8 / encoder_block_s8 (dict g)."""
    q = heads(g["X"], g["Wq"], g["bq"], g["mul_q"], g["shift_q"], H, P)
    k = heads(g["X"], g["Wk"], g["bk"], g["mul_k"], g["shift_k"], H, P)
    vt = heads(g["X"], g["Wv"], g["bv"], g["mul_v"], g["shift_v"], H, P).transpose(0, 2, 1)
    a = isoftmax(scores(q, k, g["mul_s"], g["shift_s"]), g["a"], g["b"], g["c"], g["log2"])
    o = attention_av(a, vt, g["mul_av"], g["shift_av"])
    return linear(o, g["Wo"], g["bo"], g["mul_o"], g["shift_o"])


def encoder_block(g, H, P):
    y = mhsa(g, H, P)
    r1 = add_requant(g["X"], y, g["mul_r1x"], g["shift_r1x"], g["mul_r1y"], g["shift_r1y"])
    x1 = layernorm(r1, g["g1"], g["be1"], g["ln1_shift"])
    u = linear(x1, g["W1"], g["b1"], g["mul_f1"], g["shift_f1"])
    hid = igelu(u, g["gelu_b"], g["gelu_one"], g["gelu_mul"], g["gelu_shift"])
    y2 = linear(hid, g["W2"], g["b2"], g["mul_f2"], g["shift_f2"])
    r2 = add_requant(x1, y2, g["mul_r2x"], g["shift_r2x"], g["mul_r2y"], g["shift_r2y"])
    return layernorm(r2, g["g2"], g["be2"], g["ln2_shift"])


def fwsa_scores_softmax(g):
    x = np.asarray(g["X"], I64)
    acc1 = np.einsum("sk,hek->hse", x, np.asarray(g["M"], I64)) + np.asarray(g["bias"], I64)[:, None, :]
    istar = requant(acc1, g["mul_i"], g["shift_i"])
    t = requant(np.einsum("hse,te->hst", istar, x), g["mul_s"], g["shift_s"])
    return isoftmax(t, g["a"], g["b"], g["c"], g["log2"])


def _blocked(sizes):
    return sizes["NB"] * sizes["BLK"]


#: kernel name -> f(args, sizes) -> {output buffer: expected array}
REFERENCES = {
    "linear_qk_s8": lambda g, z: {"Q": heads(g["X"], g["W"], g["bias"], g["mul"], g["shift"], z["H"], z["P"])},
    "linear_vt_s8": lambda g, z: {"Vt": heads(g["X"], g["W"], g["bias"], g["mul"], g["shift"], z["H"], z["P"])
                                  .transpose(0, 2, 1)},
    "linear_o_s8": lambda g, z: {"Y": linear(g["O"], g["W"], g["bias"], g["mul"], g["shift"])},
    "softmax_s8_u8": lambda g, z: {"Y": isoftmax(g["X"], g["a"], g["b"], g["c"], g["log2"])},
    "mhsa_scores_s8": lambda g, z: {"Sc": scores(g["Q"], g["K"], g["mul"], g["shift"])},
    "mhsa_scores_softmax_s8": lambda g, z: {"A": isoftmax(scores(g["Q"], g["K"], g["mul"], g["shift"]),
                                                          g["a"], g["b"], g["c"], g["log2"])},
    "mhsa_av_s8": lambda g, z: {"O": attention_av(g["A"], g["Vt"], g["mul"], g["shift"])},
    "mhsa_depth_first_s8": lambda g, z: {"O": attention_av(
        isoftmax(scores(g["Q"], g["K"], g["mul_s"], g["shift_s"]), g["a"], g["b"], g["c"], g["log2"]),
        g["Vt"], g["mul_o"], g["shift_o"])},
    "mhsa_s8": lambda g, z: {"Y": mhsa(g, z["H"], z["P"])},
    "gelu_s8": lambda g, z: {"Y": igelu(g["X"], g["b"], g["one"], g["mul"], g["shift"])},
    "layernorm_s8": lambda g, z: {"Y": layernorm(g["X"], g["gamma"], g["beta"], g["shift"])},
    "add_requant_s8": lambda g, z: {"Y": add_requant(g["A"], g["B"], g["mul_a"], g["shift_a"],
                                                     g["mul_b"], g["shift_b"])},
    "encoder_block_s8": lambda g, z: {"Y": encoder_block(g, z["H"], z["P"])},
    "fwsa_scores_softmax_s8": lambda g, z: {"A": fwsa_scores_softmax(g)},
}


# ------------------------------------------------------------------------------- self-tests


def test_isqrt_matches_math_isqrt():
    rng = np.random.default_rng(1)
    v = np.concatenate([np.arange(0, 5000), rng.integers(0, 2**31 - 1, 5000), [2**31 - 1, 65026, 65025]])
    assert np.array_equal(isqrt(v), [math.isqrt(int(x)) for x in v])


def test_tdiv_truncates_toward_zero():
    a = np.array([-7, -6, -1, 0, 1, 6, 7])
    assert tdiv(a, 3).tolist() == [int(x / 3) for x in a.tolist()]


def test_w32_and_requant():
    assert w32([2**31, -(2**31) - 1, 5]).tolist() == [-(2**31), 2**31 - 1, 5]
    assert requant(1000, 3, 4).item() == 127 and requant(-1000, 3, 10).item() == -3


def test_isoftmax_is_a_distribution():
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (50, 33))
    for coeffs in [(1, 7, 24, 5), (1, 173, 15599, 127), (16, 255, 65536, 1)]:
        y = isoftmax(x, *coeffs)
        assert y.min() >= 0 and y.max() <= 255
        # 255 levels in total, up to rounding of each of the 33 entries
        assert np.all(np.abs(y.sum(axis=-1) - 255) <= 33)
    one_hot = np.full((1, 9), -128)
    one_hot[0, 4] = 127
    assert isoftmax(one_hot, 1, 7, 24, 5)[0].tolist() == [0, 0, 0, 0, 255, 0, 0, 0, 0]


def ibert_softmax_coeffs(log2: int) -> tuple[int, int, int, int]:
    """I-BERT i-exp coefficients (a, b, c, log2) for the input scale ln2/log2."""
    s = math.log(2) / log2
    return 1, math.floor(1.353 / s), math.floor(0.344 / (0.3585 * s * s)), log2


def test_isoftmax_tracks_float_softmax():
    rng = np.random.default_rng(3)
    x = rng.integers(-60, 60, (40, 20))
    for log2, tol in [(5, 6), (10, 2), (40, 1)]:
        a, b, c, _ = ibert_softmax_coeffs(log2)
        y = isoftmax(x, a, b, c, log2)
        f = np.exp(x * math.log(2) / log2)
        f = 255 * f / f.sum(axis=-1, keepdims=True)
        assert np.abs(y - f).max() <= tol
        assert np.abs(y - f).mean() <= 0.3


def test_igelu_tracks_float_gelu():
    # I-BERT constants for input scale s: b = floor(-1.769/(s/√2)), one = floor(1/(0.2888 (s/√2)²)).
    s = 0.05
    sq = s / math.sqrt(2)
    b, one = math.floor(-1.769 / sq), math.floor(1 / (0.2888 * sq * sq))
    x = np.arange(-128, 128)
    # y = x·(one + L)/2 has scale s/(2·one)·2 → requant to the input scale: mul/2^shift = 1/one
    shift = 24
    mul = round((1 << shift) / one)
    out = igelu(x, b, one, mul, shift)
    ref = np.round([v * s * 0.5 * (1 + math.erf(v * s / math.sqrt(2))) / s for v in x])
    assert np.abs(out - np.clip(ref, -128, 127)).max() <= 2


# ------------------------------------------------------------------ realistic test arguments


def calib_shift(acc, target: int = 100) -> int:
    """Smallest shift that maps the 99.5th percentile of |acc| to at most ``target``."""
    m = float(np.percentile(np.abs(np.asarray(acc, np.float64)), 99.5))
    s = 0
    while s < 31 and m / (1 << s) > target:
        s += 1
    return s


def int8_normal(rng, shape, std):
    return np.clip(np.rint(rng.normal(0, std, shape)), -128, 127).astype(np.int8)


def int32_normal(rng, shape, std, mean=0.0):
    return np.rint(rng.normal(mean, std, shape)).astype(np.int32)


def gelu_constants(s: float = 0.05) -> dict[str, int]:
    """I-BERT i-GELU constants for input scale s, output requantised back to scale s."""
    sq = s / math.sqrt(2)
    one = math.floor(1 / (0.2888 * sq * sq))
    return {"gelu_b": math.floor(-1.769 / sq), "gelu_one": one, "gelu_mul": round((1 << 24) / one),
            "gelu_shift": 24}


def realistic_block_args(S, E, P, H, F, rng, log2: int = 10) -> dict[str, object]:
    """Arguments of encoder_block_s8 (a superset of mhsa_s8's) with calibrated requant shifts, so
    that intermediate activations use the int8 range instead of saturating."""
    g: dict[str, object] = {"X": int8_normal(rng, (S, E), 45)}
    for n in ("q", "k", "v"):
        g[f"W{n}"] = int8_normal(rng, (H * P, E), 30)
        g[f"b{n}"] = int32_normal(rng, (H * P,), 3000)
        g[f"mul_{n}"] = 1
        g[f"shift_{n}"] = calib_shift(np.asarray(g["X"], I64) @ np.asarray(g[f"W{n}"], I64).T + g[f"b{n}"])
    a, b, c, _ = ibert_softmax_coeffs(log2)
    g.update(a=a, b=b, c=c, log2=log2, mul_s=1, mul_av=1, mul_o=1)
    q = heads(g["X"], g["Wq"], g["bq"], 1, g["shift_q"], H, P)
    k = heads(g["X"], g["Wk"], g["bk"], 1, g["shift_k"], H, P)
    vt = heads(g["X"], g["Wv"], g["bv"], 1, g["shift_v"], H, P).transpose(0, 2, 1)
    g["shift_s"] = calib_shift(np.einsum("hip,hjp->hij", q, k), 60)
    att = isoftmax(scores(q, k, 1, g["shift_s"]), a, b, c, log2)
    g["shift_av"] = calib_shift(np.einsum("hij,hpj->hip", att, vt))
    o = attention_av(att, vt, 1, g["shift_av"])
    g["Wo"] = int8_normal(rng, (E, H * P), 30)
    g["bo"] = int32_normal(rng, (E,), 3000)
    g["shift_o"] = calib_shift(np.asarray(o, I64) @ np.asarray(g["Wo"], I64).T + g["bo"])
    g.update(mul_r1x=1, shift_r1x=1, mul_r1y=1, shift_r1y=1, mul_r2x=1, shift_r2x=1, mul_r2y=1, shift_r2y=1)
    g.update(ln1_shift=8, ln2_shift=8, mul_f1=1, mul_f2=1, **gelu_constants())
    for n in ("1", "2"):
        g[f"g{n}"] = int32_normal(rng, (E,), 400, 4000)
        g[f"be{n}"] = int32_normal(rng, (E,), 1500)
    y = linear(o, g["Wo"], g["bo"], 1, g["shift_o"])
    x1 = layernorm(add_requant(g["X"], y, 1, 1, 1, 1), g["g1"], g["be1"], 8)
    g["W1"] = int8_normal(rng, (F, E), 30)
    g["b1"] = int32_normal(rng, (F,), 3000)
    g["shift_f1"] = calib_shift(np.asarray(x1, I64) @ np.asarray(g["W1"], I64).T + g["b1"])
    gc = gelu_constants()
    hid = igelu(linear(x1, g["W1"], g["b1"], 1, g["shift_f1"]), gc["gelu_b"], gc["gelu_one"],
                gc["gelu_mul"], gc["gelu_shift"])
    g["W2"] = int8_normal(rng, (E, F), 30)
    g["b2"] = int32_normal(rng, (E,), 3000)
    g["shift_f2"] = calib_shift(np.asarray(hid, I64) @ np.asarray(g["W2"], I64).T + g["b2"])
    return g


def test_realistic_block_args_do_not_saturate():
    g = realistic_block_args(9, 8, 4, 2, 16, np.random.default_rng(5))
    y = encoder_block(g, 2, 4)
    assert len(np.unique(y)) > 20 and np.mean(np.abs(y) >= 127) < 0.05
