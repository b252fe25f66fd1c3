"""The cost model against measurement, and the schedule chooser against fixed tiles.

Every kernel of the release, on Cortex-M4 (gcc -O3, QEMU instruction counts and the M4 cycle
model) and on XpulpV2 with one core (clang-19 -O3, Spike minstret and the CV32E40P cycle model):
at the release (benchmark) shapes and at one odd shape each, the predicted instruction count must
be within ±10 % and the predicted cycles within ±15 % of the measurement (what ``kgen bench``
records).  The automatically chosen schedule of ``matmul_nt_s8`` must be at least as fast (measured
instructions) as the best of the fixed tiles 2×2, 4×2, 2×4 and 4×4.

Measurements run once per session (module-scoped fixtures), spread over the available cores.
"""
from __future__ import annotations

import shutil

import pytest

from conftest import builtin

pytestmark = [pytest.mark.qemu, pytest.mark.spike, pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
                                      and shutil.which("spike") and shutil.which("clang-19")),
                                 reason="needs QEMU + arm-none-eabi-gcc and Spike + clang-19")]

#: One shape per kernel whose extents are not multiples of the tiles, lane groups or unroll factors.
ODD = {
    "matmul_nt_s8": {"M": 29, "K": 50, "N": 23},
    "matmul_nn_s8": {"M": 21, "K": 37, "N": 19},
    "add_requant_s8": {"S": 37, "E": 29},
    "encoder_block_s8": {"NB": 19, "BLK": 1, "E": 20, "H": 2, "P": 10, "F": 36},
    "fwsa_scores_softmax_s8": {"S": 23, "E": 20, "H": 3},
    "gelu_s8": {"S": 19, "F": 45},
    "layernorm_s8": {"S": 19, "E": 44},
    "linear_o_s8": {"S": 37, "H": 3, "P": 10, "E": 22},
    "linear_qk_s8": {"S": 37, "E": 26, "H": 3, "P": 10},
    "linear_vt_s8": {"S": 37, "E": 26, "H": 3, "P": 10},
    "mhsa_av_s8": {"H": 3, "S": 37, "P": 10},
    "mhsa_scores_s8": {"H": 3, "S": 37, "P": 10},
    "mhsa_depth_first_s8": {"H": 3, "NB": 9, "BLK": 3, "P": 10},
    "mhsa_scores_softmax_s8": {"H": 3, "NB": 9, "BLK": 3, "P": 10},
    "mhsa_s8": {"NB": 29, "BLK": 1, "E": 22, "H": 2, "P": 10},
    "softmax_s8_u8": {"R": 19, "C": 53},
}
ISAS = ("armv7em", "xpulpv2")
CHOOSER_SHAPES = ({"M": 16, "K": 64, "N": 64}, {"M": 64, "K": 64, "N": 64}, {"M": 128, "K": 128, "N": 128})
FIXED_TILES = ((2, 2), (4, 2), (2, 4), (4, 4))


def _target(isa: str):
    from kgen.verify import Target

    return Target("qemu", "gcc", "cortex-m4", opt="-O3") if isa == "armv7em" else Target("spike", "clang", "rv32",
                                                                                          opt="-O3")


def _measure(kernel: str, isa: str, shape: tuple, tile: tuple | None = None) -> tuple:
    """(instructions, cycles estimate, predicted instructions, predicted cycles) of one variant: the
    first (random) case of a verification run, as ``kgen bench`` records it."""
    import kgen.verify as V
    from kgen.backends import raw_backend_class
    from kgen.model.predict import predict

    sizes = dict(shape)
    src = builtin(kernel)
    original = V.get_backend
    if tile is not None:
        V.get_backend = lambda i, cores=1: raw_backend_class(isa)(tile=tile)
    try:
        r = V.verify(src, isa, sizes, _target(isa), modes=("random",))
    finally:
        V.get_backend = original
    assert r.ok, f"{kernel} {isa} {sizes} is not bit-exact"
    if tile is not None:
        return r.region_instructions[0], r.extra.get("cycles_est"), None, None
    p = predict(src.kernel, isa, sizes)
    return r.region_instructions[0], r.extra.get("cycles_est"), p.instructions, p.cycles


def _jobs() -> list[tuple]:
    from kgen.variants import load_matrix

    jobs = []
    for entry in load_matrix():
        if not set(ISAS) <= set(entry.get("isa", [])):
            continue
        shapes = [dict(s) for s in entry["shapes"]] + [ODD[entry["kernel"]]]
        for shape in shapes:
            for isa in ISAS:
                jobs.append((entry["kernel"], isa, tuple(shape.items())))
    return jobs


@pytest.fixture(scope="module")
def accuracy() -> dict[tuple, tuple]:
    from kgen.buildpool import default_jobs, map_ordered

    jobs = _jobs()
    results = map_ordered(_measure, jobs, default_jobs())
    return dict(zip(jobs, results))


def _table(accuracy: dict, kernel: str, isa: str) -> list[tuple]:
    rows = []
    for (k, i, shape), (ins, cyc, p_ins, p_cyc) in accuracy.items():
        if k == kernel and i == isa:
            rows.append((dict(shape), ins, p_ins, (p_ins - ins) / ins, cyc, p_cyc, (p_cyc - cyc) / cyc))
    return rows


KERNELS = sorted(ODD)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_prediction_within_tolerance(accuracy, kernel, isa):
    rows = _table(accuracy, kernel, isa)
    if not rows:
        pytest.skip(f"{kernel} is not in the {isa} release")
    assert len(rows) >= 2  # the release shapes and the odd one
    bad = [r for r in rows if abs(r[3]) > 0.10 or abs(r[6]) > 0.15]
    report = "\n".join(f"  {r[0]}: instructions {r[1]} predicted {r[2]} ({r[3]:+.1%}), cycles {r[4]} predicted "
                       f"{r[5]} ({r[6]:+.1%})" for r in rows)
    assert not bad, f"{kernel} on {isa}:\n{report}"


@pytest.fixture(scope="module")
def chooser_runs() -> dict[tuple, int]:
    from kgen.buildpool import default_jobs, map_ordered

    jobs = [("matmul_nt_s8", isa, tuple(shape.items()), tile) for isa in ISAS for shape in CHOOSER_SHAPES
            for tile in (None, *FIXED_TILES)]
    results = map_ordered(_measure, jobs, default_jobs())
    return {(isa, shape, tile): r[0] for (_, isa, shape, tile), r in zip(jobs, results)}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", CHOOSER_SHAPES, ids=lambda s: "x".join(str(v) for v in s.values()))
def test_chosen_schedule_at_least_as_fast_as_fixed_tiles(chooser_runs, isa, shape):
    from kgen.model.chooser import choose_schedule

    key = tuple(shape.items())
    auto = chooser_runs[(isa, key, None)]
    fixed = {t: chooser_runs[(isa, key, t)] for t in FIXED_TILES}
    best = min(fixed.values())
    chosen = choose_schedule(builtin("matmul_nt_s8").kernel, shape, isa).chosen
    assert auto <= best, (f"{isa} {shape}: chosen {chosen.label} measured {auto} instructions, fixed tiles "
                          f"{ {f'{t[0]}x{t[1]}': n for t, n in fixed.items()} }")


@pytest.mark.parametrize("isa", ISAS)
def test_bench_records_carry_predictions(isa):
    from kgen.bench import bench_record

    rec = bench_record(builtin("softmax_s8_u8"), isa, {"R": 8, "C": 24}, _target(isa))
    assert isinstance(rec["predicted_instructions"], int) and isinstance(rec["predicted_cycles"], int)
    assert abs(rec["predicted_instructions"] - rec["instructions"]) <= 0.15 * rec["instructions"]
