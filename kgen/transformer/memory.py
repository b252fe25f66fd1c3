"""Static memory-peak report: layer-wise vs depth-first MHSA (paper §6), from the kernels' buffers.

A *flow* is a sequence of library kernel calls.  Each step maps the kernel's activation buffer
parameters to named tensors; weights and biases are constants (flash) and are not counted.  A
tensor's size is the size of the kernel buffer it binds to (checked to agree across steps), and
each step also holds the local arrays its kernel declares (``var T: i8[...]`` etc., all assumed
live for the whole call).  A tensor is live from the step that writes it (flow inputs: from the
start) to the last step that reads it; flow outputs and, with ``keep_input`` (the residual path of
an encoder block), the input X stay live to the end.  The peak is the largest sum over a step.

Flows (S, E, P, H from the configuration; BLK query rows per depth-first block):

- ``layerwise``: linear_qk_s8 (Q), linear_qk_s8 (K), linear_vt_s8 (Vᵀ), mhsa_scores_s8 (the full
  H×S×S int8 score map), softmax_s8_u8 over its H·S rows (the H×S×S uint8 map A), mhsa_av_s8 (O),
  linear_o_s8 (Y): one kernel per layer, as CMSIS-NN/Deeploy baselines run MHSA.
- ``layerwise_m1``: as above with the fused scores+softmax kernel mhsa_scores_softmax_s8 (the
  paper's M1: the int8 score map never exists, A still does).
- ``depth_first``: the projections, then mhsa_depth_first_s8 (a BLK×S tile per head and block),
  then linear_o_s8.
- ``fused``: mhsa_s8, the whole MHSA in one kernel (one head's Q, K, Vᵀ at a time, a BLK×S tile of
  the attention map).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Mapping

from ..interp import eval_expr
from ..ir import BufferParam
from . import Config, library_kernel, load_configs
from .counts import local_arrays


@dataclass(frozen=True)
class Step:
    kernel: str
    tensors: Mapping[str, str]  # kernel buffer parameter -> flow tensor name
    sizes: Mapping[str, int]


@dataclass
class FlowPeak:
    name: str
    peak_bytes: int
    peak_step: str  # kernel of the step where the peak occurs
    live_at_peak: dict[str, int] = field(default_factory=dict)  # tensor or "kernel:local" -> bytes
    per_step: list[int] = field(default_factory=list)


def _tensor_bytes(kernel_name: str, param: str, sizes: Mapping[str, int]) -> int:
    p = library_kernel(kernel_name).param(param)
    assert isinstance(p, BufferParam)
    return prod(eval_expr(d, sizes) for d in p.shape) * (p.type.bits // 8)


def flows(cfg: Config, blk: int | None = None) -> dict[str, list[Step]]:
    S, E, P, H = cfg.S, cfg.E, cfg.P, cfg.H
    blk = cfg.BLK if blk is None else blk
    if S % blk:
        raise ValueError(f"BLK = {blk} does not divide S = {S}")
    d = {"S": S, "E": E, "P": P, "H": H}
    proj = [
        Step("linear_qk_s8", {"X": "X", "Q": "Q"}, d),
        Step("linear_qk_s8", {"X": "X", "Q": "K"}, d),
        Step("linear_vt_s8", {"X": "X", "Vt": "Vt"}, d),
    ]
    out = [Step("linear_o_s8", {"O": "O", "Y": "Y"}, d)]
    blocked = {"H": H, "NB": S // blk, "BLK": blk, "P": P}
    return {
        "layerwise": proj + [
            Step("mhsa_scores_s8", {"Q": "Q", "K": "K", "Sc": "Sc"}, d),
            Step("softmax_s8_u8", {"X": "Sc", "Y": "A"}, {"R": H * S, "C": S}),
            Step("mhsa_av_s8", {"A": "A", "Vt": "Vt", "O": "O"}, d),
        ] + out,
        "layerwise_m1": proj + [
            Step("mhsa_scores_softmax_s8", {"Q": "Q", "K": "K", "A": "A"}, blocked),
            Step("mhsa_av_s8", {"A": "A", "Vt": "Vt", "O": "O"}, d),
        ] + out,
        "depth_first": proj + [
            Step("mhsa_depth_first_s8", {"Q": "Q", "K": "K", "Vt": "Vt", "O": "O"}, blocked),
        ] + out,
        "fused": [Step("mhsa_s8", {"X": "X", "Y": "Y"}, {**blocked, "E": E})],
    }


def flow_peak(name: str, steps: list[Step], inputs: tuple[str, ...] = ("X",),
              outputs: tuple[str, ...] = ("Y",), keep_input: bool = True) -> FlowPeak:
    """Peak live bytes of a flow (see the module docstring for the liveness rules)."""
    size: dict[str, int] = {}
    first: dict[str, int] = {t: 0 for t in inputs}
    last: dict[str, int] = {}
    for i, st in enumerate(steps):
        for param, tensor in st.tensors.items():
            b = _tensor_bytes(st.kernel, param, st.sizes)
            if size.setdefault(tensor, b) != b:
                raise ValueError(f"{name}: tensor {tensor} is {size[tensor]} bytes in one step and {b} "
                                 f"in {st.kernel}")
            first.setdefault(tensor, i)
            last[tensor] = i
    end = len(steps) - 1
    for t in outputs + (inputs if keep_input else ()):
        last[t] = end
    result = FlowPeak(name, -1, "")
    for i, st in enumerate(steps):
        live = {t: size[t] for t in size if first[t] <= i <= last[t]}
        for arr, b in local_arrays(library_kernel(st.kernel), st.sizes).items():
            live[f"{st.kernel}:{arr}"] = b
        total = sum(live.values())
        result.per_step.append(total)
        if total > result.peak_bytes:
            result.peak_bytes, result.peak_step, result.live_at_peak = total, st.kernel, live
    return result


def memory_report(configs: Mapping[str, Config] | None = None, keep_input: bool = True
                  ) -> dict[str, dict[str, object]]:
    """``{config: {peak_layerwise_bytes, peak_depth_first_bytes, ratio, ...}}`` for the reference
    configurations (``kernels/configs.toml``) at their BLK.

    Extra keys: ``blk``, ``peak_layerwise_m1_bytes`` (fused scores+softmax, A still materialised),
    ``peak_fused_bytes`` (mhsa_s8), ``layerwise_peak_step`` and ``depth_first_peak_step``.
    """
    configs = load_configs() if configs is None else configs
    report: dict[str, dict[str, object]] = {}
    for key, cfg in configs.items():
        peaks = {n: flow_peak(n, steps, keep_input=keep_input) for n, steps in flows(cfg).items()}
        lw, df = peaks["layerwise"], peaks["depth_first"]
        report[key] = {
            "peak_layerwise_bytes": lw.peak_bytes,
            "peak_depth_first_bytes": df.peak_bytes,
            "ratio": lw.peak_bytes / df.peak_bytes,
            "blk": cfg.BLK,
            "peak_layerwise_m1_bytes": peaks["layerwise_m1"].peak_bytes,
            "peak_fused_bytes": peaks["fused"].peak_bytes,
            "layerwise_peak_step": lw.peak_step,
            "depth_first_peak_step": df.peak_step,
        }
    return report


def markdown_table(report: Mapping[str, Mapping[str, object]] | None = None) -> str:
    """The report as a Markdown table (bytes of activations; weights excluded)."""
    report = memory_report() if report is None else report
    cfgs = load_configs()
    lines = ["| Config | S | E | P | H | BLK | Layer-wise peak (B) | Layer-wise, fused M1 (B) | "
             "Depth-first peak (B) | Ratio | Whole-MHSA kernel mhsa_s8 (B) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in report.items():
        c = cfgs[key]
        lines.append(f"| {key} | {c.S} | {c.E} | {c.P} | {c.H} | {r['blk']} | {r['peak_layerwise_bytes']:,} | "
                     f"{r['peak_layerwise_m1_bytes']:,} | {r['peak_depth_first_bytes']:,} | "
                     f"{r['ratio']:.2f}× | {r['peak_fused_bytes']:,} |")
    return "\n".join(lines)


__all__ = ["Step", "FlowPeak", "flows", "flow_peak", "memory_report", "markdown_table"]
