"""The examples in examples/ build against the committed releases (generated/<isa>, through their
kgen.mk) with each target's toolchain and run: host, Cortex-M4/M7 on QEMU, XpulpV2 on Spike."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, builtin

EXAMPLES = REPO / "examples"


def lcg_inputs() -> tuple[list[int], list[int], list[int], list[int]]:
    """The inputs of examples/common/example_checks.h (same LCG, same order)."""
    state = 12345

    def r() -> int:
        nonlocal state
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        b = state >> 24
        return b - 256 if b >= 128 else b

    X = [r() for _ in range(64 * 64)]
    W = [r() for _ in range(64 * 64)]
    bias = [r() * 64 for _ in range(64)]
    S = [r() for _ in range(64 * 64)]
    S[:64] = [5] * 64
    return X, W, bias, S


def test_softmax_checksum_is_the_reference_interpreters():
    from kgen.interp import run_reference

    header = (EXAMPLES / "common" / "example_checks.h").read_text()
    params = {k: int(v) for k, v in re.findall(r"#define EX_SM_(\w+) (\d+)", header)}
    _, _, _, S = lcg_inputs()
    Y = run_reference(builtin("softmax_s8_u8").kernel, {"R": 64, "C": 64},
                      {"X": np.array(S, dtype=np.int8).reshape(64, 64), "a": params["A"], "b": params["B"],
                       "c": params["C"], "log2": params["LOG2"]})["Y"]
    h = 2166136261
    for v in Y.reshape(-1).tolist():
        h = ((h ^ int(v)) * 16777619) & 0xFFFFFFFF
    assert f"#define EX_SOFTMAX_FNV1A {h:#010x}u" in header
    assert (Y[0] == 4).all()


def test_matmul_check_is_the_reference_interpreters():
    """The plain-C matmul check of the examples states the DSL kernel's contract."""
    from kgen.interp import run_reference

    X, W, bias, _ = lcg_inputs()
    Y = run_reference(builtin("matmul_nt_s8").kernel, {"M": 64, "K": 64, "N": 64},
                      {"X": np.array(X, dtype=np.int8).reshape(64, 64), "W": np.array(W, dtype=np.int8).reshape(64, 64),
                       "bias": np.array(bias, dtype=np.int32), "mul": 3, "shift": 10})["Y"]
    acc = np.array(X, dtype=np.int64).reshape(64, 64) @ np.array(W, dtype=np.int64).reshape(64, 64).T + bias
    assert (Y == np.clip((acc * 3) >> 10, -128, 127)).all()
    assert len(np.unique(Y)) > 100  # not saturated: the check is meaningful


def _make(example: str, build, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-j2", "-C", str(EXAMPLES / example), f"BUILD={build}",
                           f"PYTHON={sys.executable}", *args], capture_output=True, text=True, timeout=timeout)


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make missing")


@needs_make
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc missing")
def test_generic_example_runs_on_the_host(tmp_path):
    run = _make("generic", tmp_path / "b", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^matmul_nt_s8 64x64x64: 0 mismatches; softmax_s8_u8 64x64 \(\d+ scratch bytes\): ok$",
                     run.stdout, re.M), run.stdout
    # the example really checks: a wrong expected checksum makes it fail
    bad = _make("generic", tmp_path / "bad", "run", "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror -DEX_SOFTMAX_FNV1A=1u")
    assert bad.returncode != 0 and "WRONG" in bad.stdout


@needs_make
@pytest.mark.qemu
@pytest.mark.parametrize("cpu,machine", [("cortex-m4", "mps2-an386"), ("cortex-m7", "mps2-an500")])
def test_armv7em_example_runs_on_qemu(tmp_path, cpu, machine):
    from kgen.sim import arm

    if not arm.tools_available():
        pytest.skip("arm toolchain / qemu missing")
    run = _make("armv7em", tmp_path / "b", "run", f"CPU={cpu}", f"MACHINE={machine}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matmul_nt_s8 64x64x64: 0 mismatches; softmax_s8_u8 64x64: ok" in run.stdout


@needs_make
@pytest.mark.spike
def test_xpulpv2_example_runs_on_spike_with_8_cores(tmp_path):
    from kgen.sim import riscv

    if not riscv.tools_available():
        pytest.skip("spike / clang-19 missing")
    run = _make("xpulpv2", tmp_path / "b", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matmul_nt_s8 64x64x64 on 8 cores: 0 mismatches; softmax_s8_u8 64x64: ok" in run.stdout
    assert "KGEN_HARTS 8" in run.stdout
