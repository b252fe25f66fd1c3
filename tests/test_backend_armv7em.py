"""armv7em backend: bit-exact on QEMU (Cortex-M4/M7, gcc and clang), tails, whole release, counts."""
from __future__ import annotations

import pytest

from kgen.library import builtin_sources
from kgen.variants import release_requests
from kgen.verify import Target, describe_failure, verify

pytestmark = pytest.mark.qemu
SOURCES = builtin_sources()
TARGETS = [Target("qemu", c, cpu, opt="-O3") for cpu in ("cortex-m4", "cortex-m7") for c in ("gcc", "clang")]
FAST_MODES = ("random", "min", "max")


@pytest.fixture(autouse=True, scope="module")
def _tools():
    from kgen.sim import arm

    if not arm.tools_available():
        pytest.skip("arm toolchain / qemu missing")


@pytest.mark.parametrize("kernel", ["matmul_nt_s8", "matmul_nn_s8"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 3, 9), (5, 67, 7), (2, 16, 4), (7, 33, 13)])
def test_matmul_tails_bit_exact(kernel, shape):
    sizes = dict(zip("MKN", shape))
    for target in TARGETS:
        r = verify(SOURCES[kernel], "armv7em", sizes, target)
        assert r.ok, describe_failure(r, SOURCES[kernel])


@pytest.mark.parametrize("request_", release_requests("armv7em", list(SOURCES.values())),
                         ids=lambda r: f"{r.source.kernel.name}-{'x'.join(map(str, r.sizes.values()))}")
def test_release_kernel_bit_exact(request_):
    for target in TARGETS:  # Cortex-M4 and M7, gcc and clang
        r = verify(request_.source, "armv7em", request_.sizes, target, modes=FAST_MODES)
        assert r.ok, describe_failure(r, request_.source)


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("size,limit", [(64, 1.00), (128, 0.90)])
def test_matmul_instructions_per_mac(compiler, size, limit):
    """Issue #3's targets (exact, deterministic counts on Cortex-M4 at -O3): <= 1.00 instructions
    per MAC at 64³ and <= 0.90 at 128³ (CMSIS-NN's best kernel: 2.068 at 64³)."""
    shape = dict(M=size, K=size, N=size)
    r = verify(SOURCES["matmul_nt_s8"], "armv7em", shape, Target("qemu", compiler, "cortex-m4", "-O3"),
               modes=("random",))
    assert r.ok
    assert r.region_instructions[0] / size**3 <= limit


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m7"])
def test_size_optimised_builds_bit_exact(compiler, cpu):
    for shape in ((5, 67, 7), (16, 64, 64)):
        r = verify(SOURCES["matmul_nt_s8"], "armv7em", dict(zip("MKN", shape)), Target("qemu", compiler, cpu, "-Os"))
        assert r.ok, describe_failure(r, SOURCES["matmul_nt_s8"])


def test_attention_head_chains_instruction_counts():
    """One attention head S = E = P = 64 on Cortex-M4, gcc -O3, exact counts summed over the
    generated kernels an application calls ([[bench_chain]] in kernels/variants.toml).  CMSIS-NN's
    public API needs 5.72 M for the same steps; issue #5 asks for <= 1.15 M."""
    from kgen.bench_chain import chain_entries, chain_record

    entries = {e["kernel"]: e for e in chain_entries()}
    measured: dict = {}
    target = Target("qemu", "gcc", "cortex-m4", "-O3")
    fwsa = chain_record(entries["mhsa_head_fwsa_s8"], SOURCES, "armv7em", target, measured)
    unfused = chain_record(entries["mhsa_head_s8"], SOURCES, "armv7em", target, measured)
    assert fwsa["bit_exact"] and unfused["bit_exact"]
    assert fwsa["instructions"] <= 1_150_000
    assert unfused["instructions"] <= 5_724_467 / 4  # at least 4x fewer than CMSIS-NN's head


def test_fwsa_score_path_at_eeg_dims_costs_fewer_instructions():
    """Issue #5: at the EEG configuration (S=81, E=32, P=32, H=8; E < 2P) the fused-weight score
    path must be measured cheaper than the unfused one (Q, K projections + scores + softmax)."""
    from kgen.bench_chain import chain_entries, chain_record

    entries = {e["kernel"]: e for e in chain_entries()}
    measured: dict = {}
    target = Target("qemu", "gcc", "cortex-m4", "-O3")
    unfused = chain_record(entries["eeg_score_path_s8"], SOURCES, "armv7em", target, measured)
    fused = chain_record(entries["eeg_score_path_fwsa_s8"], SOURCES, "armv7em", target, measured)
    assert unfused["bit_exact"] and fused["bit_exact"]
    assert fused["macs"] < unfused["macs"]
    assert fused["instructions"] < unfused["instructions"], (fused["instructions"], unfused["instructions"])
