"""Fused-Weight Self-Attention (FWSA, paper §5): offline Q·K weight fusion and its decision rule.

With the library's weight layout (W [H·P][E], one row per output channel) the scores of head h are

    Q_h·K_hᵀ = (X·W_q,hᵀ + b_q,h)·(X·W_k,hᵀ + b_k,h)ᵀ
             = X·(W_q,hᵀ·W_k,h)·Xᵀ + 1·(W_k,hᵀ·b_q,h)ᵀ·Xᵀ + (terms constant along each row).

Softmax ignores per-row constants, so the scores can be computed as (X·M_hᵀ + bias_h)·Xᵀ with
M_h = W_k,hᵀ·W_q,h (E×E, stored [e][k] as fwsa_scores_softmax_s8 reads it) and
bias_h = W_k,hᵀ·b_q,h (E values).  :func:`fuse_qk` builds the int8 M and int32 bias from the
quantized projection weights and chooses the two requant pairs so that I*_h = X·M_hᵀ + bias_h fills
int8 and the final scores keep the scale of the unfused pipeline.

Decision rule (derived from the kernels' own counts, :func:`fwsa_decision`): FWSA stores H·E² instead
of 2·H·E·P Q/K weights, so it has fewer parameters iff E < 2P; it needs fewer score-path MACs iff
E·(E+S) < P·(2E+S).  :func:`check_fwsa` (and :func:`fuse_qk`) refuse E >= 2P with
:class:`FWSAError` (ECG: E = 16, P = 2 would need 2.5× the parameters and 6.7× the MACs) unless
forced, in which case they warn.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import library_kernel
from .counts import buffer_elements, macs

INT8_MAX = 127


class FWSAError(ValueError):
    """FWSA would not pay off (or cannot be quantized) for these dimensions."""


class FWSAWarning(UserWarning):
    """FWSA was applied although the decision rule advises against it."""


# --------------------------------------------------------------------------------- decision rule


@dataclass(frozen=True)
class FWSADecision:
    """Parameter and MAC counts of one MHSA with and without FWSA, read off the library kernels."""

    S: int
    E: int
    P: int
    H: int
    qk_params_standard: int  # W_q + W_k elements (linear_qk_s8 twice)
    qk_params_fused: int  # M elements (fwsa_scores_softmax_s8)
    mhsa_params_standard: int  # + W_v (linear_vt_s8) + W_o (linear_o_s8)
    mhsa_params_fused: int
    score_macs_standard: int  # 2 × linear_qk_s8 + mhsa_scores_softmax_s8
    score_macs_fused: int  # fwsa_scores_softmax_s8
    mhsa_macs_standard: int  # + linear_vt_s8 + mhsa_av_s8 + linear_o_s8
    mhsa_macs_fused: int

    @property
    def fewer_params(self) -> bool:
        return self.mhsa_params_fused < self.mhsa_params_standard

    @property
    def fewer_macs(self) -> bool:
        return self.score_macs_fused < self.score_macs_standard

    @property
    def use_fwsa(self) -> bool:
        return self.fewer_params and self.fewer_macs

    @property
    def param_reduction(self) -> float:
        """Fraction of MHSA weights saved (negative: FWSA needs more)."""
        return 1 - self.mhsa_params_fused / self.mhsa_params_standard

    @property
    def score_mac_ratio(self) -> float:
        """Standard / fused score-path MACs (above 1: FWSA is cheaper)."""
        return self.score_macs_standard / self.score_macs_fused

    @property
    def reason(self) -> str:
        dims = f"S={self.S} E={self.E} P={self.P} H={self.H}"
        if not self.fewer_params:
            return (f"FWSA not beneficial for {dims}: E >= 2P, so the fused H·E² = {self.qk_params_fused} "
                    f"Q/K weights exceed the 2·H·E·P = {self.qk_params_standard} it replaces "
                    f"(MHSA weights {self.mhsa_params_standard} -> {self.mhsa_params_fused}, "
                    f"score-path MACs {self.score_macs_standard} -> {self.score_macs_fused})")
        if not self.fewer_macs:
            return (f"FWSA saves parameters for {dims} but not MACs: E·(E+S) >= P·(2E+S) "
                    f"(score-path MACs {self.score_macs_standard} -> {self.score_macs_fused})")
        return (f"FWSA beneficial for {dims}: MHSA weights {self.mhsa_params_standard} -> "
                f"{self.mhsa_params_fused} ({100 * self.param_reduction:.1f} % fewer), score-path MACs "
                f"{self.score_macs_standard} -> {self.score_macs_fused} ({self.score_mac_ratio:.2f}×)")

    def markdown_row(self, name: str) -> str:
        verdict = "use FWSA" if self.use_fwsa else ("refuse (E ≥ 2P)" if not self.fewer_params
                                                   else "warn (more MACs)")
        return (f"| {name} | {self.S} | {self.E} | {self.P} | {self.H} | {self.mhsa_params_standard:,} → "
                f"{self.mhsa_params_fused:,} ({-100 * self.param_reduction:+.1f} %) | "
                f"{self.score_macs_standard:,} → {self.score_macs_fused:,} ({self.score_mac_ratio:.2f}×) | "
                f"{self.mhsa_macs_standard:,} → {self.mhsa_macs_fused:,} | {verdict} |")


MARKDOWN_HEADER = ("| Config | S | E | P | H | MHSA weights std → FWSA | Score-path MACs std → FWSA (ratio) | "
                   "MHSA MACs std → FWSA | Decision |\n|---|---|---|---|---|---|---|---|---|")


def fwsa_decision(S: int, E: int, P: int, H: int) -> FWSADecision:
    """Counts of both variants at these dims, from the DSL kernels (:mod:`.counts`)."""
    dims = {"S": S, "E": E, "P": P, "H": H}
    qk, vt, lo = library_kernel("linear_qk_s8"), library_kernel("linear_vt_s8"), library_kernel("linear_o_s8")
    m1, m2 = library_kernel("mhsa_scores_softmax_s8"), library_kernel("mhsa_av_s8")
    fw = library_kernel("fwsa_scores_softmax_s8")
    m1_sizes = {"H": H, "NB": S, "BLK": 1, "P": P}
    qk_std = 2 * buffer_elements(qk, dims, ["W"])
    qk_fused = buffer_elements(fw, dims, ["M"])
    rest = buffer_elements(vt, dims, ["W"]) + buffer_elements(lo, dims, ["W"])
    score_std = 2 * macs(qk, dims) + macs(m1, m1_sizes)
    score_fused = macs(fw, dims)
    rest_macs = macs(vt, dims) + macs(m2, dims) + macs(lo, dims)
    return FWSADecision(S, E, P, H, qk_std, qk_fused, qk_std + rest, qk_fused + rest,
                        score_std, score_fused, score_std + rest_macs, score_fused + rest_macs)


def check_fwsa(S: int, E: int, P: int, H: int, *, strict: bool = True) -> FWSADecision:
    """Apply the decision rule: raise :class:`FWSAError` (strict) or warn when E >= 2P; warn when
    FWSA saves parameters but costs MACs.  Returns the decision when FWSA may be used."""
    d = fwsa_decision(S, E, P, H)
    if not d.fewer_params:
        if strict:
            raise FWSAError(d.reason + "; pass force=True / strict=False to fuse anyway")
        warnings.warn(d.reason, FWSAWarning, stacklevel=2)
    elif not d.fewer_macs:
        warnings.warn(d.reason, FWSAWarning, stacklevel=2)
    return d


# ---------------------------------------------------------------------------------- quantization


def quantize_multiplier(scale: float, acc_bound: int, mul_max: int = (1 << 15) - 1) -> tuple[int, int]:
    """(mul, shift) with mul / 2^shift ≈ scale, shift in 0..31, as precise as possible.

    ``mul`` stays within the paper's int16 multiplier (``mul_max``) and within (2^31-1) / acc_bound, so
    ``acc · mul`` never wraps for |acc| <= acc_bound.  Raises :class:`FWSAError` when ``scale`` cannot
    be represented.
    """
    if not scale > 0:
        raise FWSAError(f"requant scale must be positive, got {scale}")
    limit = min(mul_max, ((1 << 31) - 1) // max(int(acc_bound), 1))
    if limit < 1:
        raise FWSAError(f"accumulator bound {acc_bound} leaves no room for a multiplier")
    for shift in range(31, -1, -1):
        m = int(round(scale * (1 << shift)))
        if m <= limit:
            if m < 1:
                raise FWSAError(f"requant scale {scale:.3g} is below 2^-31 · 1/2: not representable")
            return m, shift
    raise FWSAError(f"requant scale {scale:.3g} exceeds the multiplier limit {limit} at shift 0")


def unfused_score_scale(mul_q: int, shift_q: int, mul_k: int, shift_k: int, mul_s: int, shift_s: int) -> float:
    """Real factor from (X·W_qᵀ+b_q)·(X·W_kᵀ+b_k)ᵀ to the int8 scores of the unfused pipeline
    (linear_qk_s8 twice, then mhsa_scores_softmax_s8), ignoring intermediate rounding."""
    return mul_q * mul_k * mul_s / float(1 << (shift_q + shift_k + shift_s))


@dataclass(frozen=True)
class FusedQK:
    """Offline-fused Q/K weights for fwsa_scores_softmax_s8."""

    M: np.ndarray  # int8 [H][E][E]
    bias: np.ndarray  # int32 [H][E]
    mul_i: int
    shift_i: int
    mul_s: int
    shift_s: int
    weight_scale: float  # one LSB of M in units of the exact integer product W_kᵀ·W_q
    decision: FWSADecision | None

    def kernel_args(self) -> dict[str, object]:
        """Arguments of fwsa_scores_softmax_s8 other than X and the softmax coefficients."""
        return {"M": self.M, "bias": self.bias, "mul_i": self.mul_i, "shift_i": self.shift_i,
                "mul_s": self.mul_s, "shift_s": self.shift_s}


def fused_products(Wq: np.ndarray, bq: np.ndarray, Wk: np.ndarray, H: int, P: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer M_h = W_k,hᵀ·W_q,h ([H][E][E], [e][k]) and bias_h = W_k,hᵀ·b_q,h ([H][E])."""
    E = Wq.shape[1]
    wq = np.asarray(Wq, dtype=np.int64).reshape(H, P, E)
    wk = np.asarray(Wk, dtype=np.int64).reshape(H, P, E)
    b = np.asarray(bq, dtype=np.int64).reshape(H, P)
    M = np.einsum("hpe,hpk->hek", wk, wq)
    beta = np.einsum("hpe,hp->he", wk, b)
    return M, beta


def fuse_qk(Wq: np.ndarray, bq: np.ndarray, Wk: np.ndarray, H: int, P: int, *, score_scale: float,
            X_calib: np.ndarray | None = None, S: int | None = None, force: bool = False) -> FusedQK:
    """Fuse int8 projection weights W_q, W_k ([H·P][E]) and int32 bias b_q ([H·P]) for FWSA.

    ``score_scale`` is the real factor the unfused pipeline applies to Q·Kᵀ (see
    :func:`unfused_score_scale`); the fused kernel reproduces it.  ``X_calib`` (int8 [N][E]) sets the
    I* scale from calibration data; without it the worst-case accumulator is used.  ``S`` enables the
    MAC part of the decision rule.  E >= 2P raises :class:`FWSAError` unless ``force`` (then warns).
    """
    Wq, Wk = np.asarray(Wq), np.asarray(Wk)
    E = Wq.shape[1]
    if Wq.shape != (H * P, E) or Wk.shape != (H * P, E) or np.asarray(bq).shape != (H * P,):
        raise ValueError(f"expected W_q, W_k [{H * P}][{E}] and b_q [{H * P}]")
    decision = None
    if S is not None:
        decision = check_fwsa(S, E, P, H, strict=not force)
    elif E >= 2 * P:
        msg = (f"FWSA not beneficial: E = {E} >= 2P = {2 * P}, the fused H·E² = {H * E * E} Q/K weights "
               f"exceed the 2·H·E·P = {2 * H * E * P} they replace")
        if not force:
            raise FWSAError(msg + "; pass force=True to fuse anyway")
        warnings.warn(msg, FWSAWarning, stacklevel=2)
    M, beta = fused_products(Wq, bq, Wk, H, P)
    sigma = max(int(np.abs(M).max()), 1) / INT8_MAX
    M8 = np.clip(np.rint(M / sigma), -INT8_MAX, INT8_MAX).astype(np.int8)
    b32 = np.clip(np.rint(beta / sigma), -(1 << 31), (1 << 31) - 1).astype(np.int32)
    # Phase 1: I* = requant(X·Mᵀ + bias) should fill int8.
    worst1 = int((128 * np.abs(M8.astype(np.int64)).sum(axis=2) + np.abs(b32.astype(np.int64))).max())
    if X_calib is not None:
        x = np.asarray(X_calib, dtype=np.int64).reshape(-1, E)
        acc1 = np.einsum("sk,hek->hse", x, M8.astype(np.int64)) + b32.astype(np.int64)[:, None, :]
        amax1 = max(int(np.abs(acc1).max()), 1)
    else:
        amax1 = max(worst1, 1)
    mul_i, shift_i = quantize_multiplier(INT8_MAX / amax1, worst1)
    # Phase 2: scores = requant(I*·Xᵀ) with the unfused scale: score_scale·σ·acc1 = β2·(β1·acc1)·X.
    beta1 = mul_i / float(1 << shift_i)
    mul_s, shift_s = quantize_multiplier(score_scale * sigma / beta1, E * 128 * 128)
    return FusedQK(M8, b32, mul_i, shift_i, mul_s, shift_s, sigma, decision)


__all__ = ["FWSAError", "FWSAWarning", "FWSADecision", "fwsa_decision", "check_fwsa",
           "quantize_multiplier", "unfused_score_scale", "FusedQK", "fused_products", "fuse_qk",
           "MARKDOWN_HEADER"]
