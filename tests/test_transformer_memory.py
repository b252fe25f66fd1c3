"""Memory-peak report (paper §6): layer-wise vs depth-first MHSA, derived from the kernels' buffers."""
from __future__ import annotations

from pathlib import Path

import pytest

from kgen.transformer import library_kernel, load_configs
from kgen.transformer.counts import local_arrays
from kgen.transformer.memory import flow_peak, flows, markdown_table, memory_report

CFG = load_configs()


@pytest.fixture(scope="module")
def report():
    return memory_report()


def test_report_shape(report):
    assert set(report) == {"eeg", "ecg", "bench"}
    for r in report.values():
        assert r["ratio"] == pytest.approx(r["peak_layerwise_bytes"] / r["peak_depth_first_bytes"])


def test_ecg_depth_first_reduces_the_peak_at_least_7x(report):
    r = report["ecg"]
    assert r["blk"] == 2 and r["ratio"] >= 7
    assert r["layerwise_peak_step"] == "softmax_s8_u8"  # int8 scores and uint8 map both live
    # paper-notes §6 formulas (X + Q + K + V + H·S² = 39,072 around the scores; DFT with x = 2)
    c = CFG["ecg"]
    lw = flow_peak("layerwise", flows(c)["layerwise"])
    X, QKV, HSS = c.S * c.E, 3 * c.S * c.H * c.P, c.H * c.S * c.S
    assert lw.per_step[3] == X + QKV + HSS == 39_072
    table = 4 * 511  # softmax's i-exp table (uint32)
    assert lw.peak_bytes == X + c.S * c.H * c.P + 2 * HSS + 4 * c.S + table  # X, Vᵀ, scores, A, a row, table
    tile = local_arrays(library_kernel("mhsa_depth_first_s8"), dict(H=c.H, NB=c.S // 2, BLK=2, P=c.P))
    assert tile == {"texp": table, "T": 2 * c.S, "ybuf": 4 * c.S, "At": 2 * c.S}
    assert r["peak_depth_first_bytes"] == X + QKV + c.S * c.H * c.P + sum(tile.values()) == 7_852


def test_eeg_and_bench_figures(report):
    assert report["eeg"]["ratio"] > 1.4
    # S = P = E, one head: the H×S×S map is no bigger than Q, so depth-first cannot win
    assert report["bench"]["ratio"] < 1.0


def test_depth_first_tile_grows_with_blk():
    c = CFG["ecg"]
    peaks = {b: flow_peak("df", flows(c, blk=b)["depth_first"]).peak_bytes for b in c.blk_choices}
    for b in c.blk_choices:
        assert peaks[b] - peaks[1] == 2 * (b - 1) * c.S  # one more int8 score row and uint8 row per block row


def test_flow_tensor_sizes_agree_between_kernels():
    for c in CFG.values():
        for name, steps in flows(c).items():
            flow_peak(name, steps)  # raises if a tensor has two different sizes


def test_docs_table_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
    assert markdown_table() in doc.read_text()
