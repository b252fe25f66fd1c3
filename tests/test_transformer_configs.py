"""Every tiny-transformer kernel, the encoder block included, at the ECG and benchmark-head
configurations (kernels/configs.toml), bit-exact against the reference interpreter on every target:
generic C on the host (gcc, ASan+UBSan), armv7em on QEMU (Cortex-M4 with gcc, Cortex-M7 with
clang, -O3) and xpulpv2 on Spike (1 and 8 cores).  The EEG configuration is the shape of the
committed release, whose kernels tests/test_backend_*.py verify on the same targets.

Runs two simulations at a time; one case (random data, scalars inside their declared ranges) per
run keeps the suite short — the release tests cover extreme values.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kgen.sim import arm, riscv
from kgen.transformer import load_configs, library_sources
from kgen.verify import Target, describe_failure, verify

CONFIGS = ("ecg", "bench")
KERNELS = ("linear_qk_s8", "linear_vt_s8", "linear_o_s8", "softmax_s8_u8", "mhsa_scores_s8",
           "mhsa_scores_softmax_s8", "mhsa_av_s8", "mhsa_depth_first_s8", "mhsa_s8", "gelu_s8",
           "layernorm_s8", "add_requant_s8", "encoder_block_s8", "fwsa_scores_softmax_s8")
TARGETS = {
    "generic": [Target("host", "gcc", sanitize=True)],
    "armv7em": [Target("qemu", "gcc", "cortex-m4", "-O3"), Target("qemu", "clang", "cortex-m7", "-O3")],
    "xpulpv2": [Target("spike", "clang", "rv32", opt="-O3", cores=1),
                Target("spike", "clang", "rv32", opt="-O3", cores=8)],
}


def _jobs() -> list[tuple[str, str, str, Target]]:
    jobs = []
    for cfg in CONFIGS:
        for name in KERNELS:
            for isa, targets in TARGETS.items():
                for t in targets:
                    jobs.append((cfg, name, isa, t))
    return jobs


#: Odd sizes (tails in every blocked dimension) for the register-blocked attention lowering.
ODD = {"linear_qk_s8": dict(S=7, E=9, H=3, P=5), "linear_vt_s8": dict(S=7, E=9, H=3, P=5),
       "mhsa_scores_s8": dict(H=3, S=7, P=5), "mhsa_av_s8": dict(H=3, S=7, P=5),
       "mhsa_scores_softmax_s8": dict(H=3, NB=3, BLK=3, P=5), "mhsa_depth_first_s8": dict(H=3, NB=7, BLK=1, P=5),
       "fwsa_scores_softmax_s8": dict(S=7, E=9, H=3), "mhsa_s8": dict(NB=3, BLK=3, E=9, H=3, P=5),
       "encoder_block_s8": dict(NB=7, BLK=1, E=9, H=1, P=5, F=11)}

JOBS = _jobs() + [("odd", name, "armv7em", t) for name in ODD for t in TARGETS["armv7em"]]


def _id(job) -> str:
    cfg, name, isa, t = job
    return f"{cfg}-{name}-{isa}-{t}"


@pytest.fixture(scope="module")
def results():
    if not (arm.tools_available() and riscv.tools_available()):
        pytest.skip("simulators not installed (scripts/setup.sh installs them)")
    configs = load_configs()
    sources = library_sources()

    def one(job):
        cfg, name, isa, t = job
        sizes = ODD[name] if cfg == "odd" else configs[cfg].sizes_for(sources[name].kernel.sizes)
        return verify(sources[name], isa, sizes, t, seed=5, modes=("random",))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(map(_id, JOBS), pool.map(one, JOBS)))


@pytest.mark.parametrize("job", JOBS, ids=_id)
def test_bit_exact_at_reference_configuration(results, job):
    r = results[_id(job)]
    assert r.ok, describe_failure(r, library_sources()[job[1]])
