"""Scratch buffers: placement rule, lifetime reuse, get_buffer_size, and the guarded harness buffer.

The harness gives a kernel exactly ``get_buffer_size`` bytes between two canary-filled guard zones
(poisoned under ASan); these tests also prove the guard catches a buffer that is 8 bytes short.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import builtin, compilers_params, kernel_source, run_kgen
from kgen.emit import common_header
from kgen.harness import parse_output, render
from kgen.scratch import plan_scratch
from kgen.testdata import make_cases
from kgen.verify import Target, build_variant, harness_spec, runner_for, verify


def _plan(name: str, isa: str, sizes: dict[str, int]):
    lowered, em = build_variant(builtin(name), isa, sizes)
    return lowered, em, plan_scratch(lowered.kernel)


ENC = {"NB": 27, "BLK": 3, "E": 32, "H": 8, "P": 32, "F": 64}


def test_function_scope_arrays_go_to_scratch_and_share_bytes_when_lifetimes_do_not_overlap():
    from kgen.scratch import STACK_LIMIT

    _, em, plan = _plan("encoder_block_s8", "armv7em", ENC)
    arrays = {a.name: a for a in plan.arrays}
    dsl = {"texp", "Qh", "Kh", "Vth", "T", "ybuf", "At", "O", "y", "r", "x1", "hid"}
    # the DSL's local arrays, and the run-time int16 copies of the contractions' B operands (one per
    # projection and attention nest), declared inside the head loop where the copy runs
    assert dsl <= set(arrays) and all(n.endswith("_wide") for n in set(arrays) - dsl)
    assert {"Wq_v0_wide", "Wk_v1_wide", "Kh_v3_wide", "Vth_v4_wide"} <= set(arrays)
    assert all(int(a.offset) % 8 == 0 and int(a.size) % 8 == 0 for a in plan.arrays)
    # O lives through both phases; Qh..At die after the attention phase, y..hid are born after it;
    # the Q projection's copy of Wq and the K projection's copy of Wk share bytes
    total_sizes = sum(int(a.size) for a in plan.arrays)
    assert plan.constant < total_sizes
    assert arrays["Wq_v0_wide"].offset == arrays["Wk_v1_wide"].offset
    assert int(arrays["O"].size) == 81 * 256 and int(arrays["Qh"].size) == 81 * 32
    for a in plan.arrays:  # arrays alive at the same time never overlap in memory
        for b in plan.arrays:
            if a is not b and a.live[0] <= b.live[1] and b.live[0] <= a.live[1]:
                lo_a, hi_a = int(a.offset), int(a.offset + a.size)
                lo_b, hi_b = int(b.offset), int(b.offset + b.size)
                assert hi_a <= lo_b or hi_b <= lo_a, (a.name, b.name)
    for m in re.finditer(r"KGEN_ALIGN8 int16_t \w+\[(\d+) \* (\d+) \* (\d+)\];", em.source):
        assert 2 * int(m[1]) * int(m[2]) * int(m[3]) <= STACK_LIMIT  # only small per-tile buffers on the stack
    assert em.prototype.endswith(", void *restrict scratch)")
    assert f"#define {em.function.upper()}_SCRATCH_BYTES {plan.constant}u" in em.header
    assert f"size_t {em.function}_get_buffer_size(void);" in em.header


def test_generic_release_has_no_stack_arrays_and_sizes_are_formulas():
    _, em, plan = _plan("encoder_block_s8", "generic", {})
    assert plan.constant is None and "KGEN_ALIGN8" not in em.source
    assert not re.search(r"^\s+\w+ \w+_storage\[", em.source, re.M)  # no (variable-length) array on the stack
    assert re.search(r"^    int8_t \*const O_storage = \(int8_t \*\)scratch;$", em.source, re.M)
    # the run-time formula at a shape is the plan of the kernel specialised for it
    from kgen.schedule import specialize

    assert plan.bytes_for(ENC) == plan_scratch(specialize(builtin("encoder_block_s8").kernel, ENC)).constant
    assert f"size_t {em.function}_get_buffer_size(int32_t NB, int32_t BLK, int32_t E, int32_t H, int32_t P, " \
           f"int32_t F);" in em.header


def test_kernels_without_local_arrays_keep_their_signature():
    _, em, plan = _plan("matmul_nt_s8", "generic", {})
    assert plan is None and "scratch" not in em.prototype and "get_buffer_size" not in em.header


@pytest.mark.parametrize("isa,name,sizes", [("armv7em", "matmul_nt_s8", {"M": 16, "K": 64, "N": 64}),
                                             ("armv7em", "matmul_nt_s8", {"M": 81, "K": 64, "N": 64}),
                                             ("armv7em", "softmax_s8_u8", {"R": 64, "C": 64}),
                                             ("xpulpv2", "mhsa_s8", {"NB": 32, "BLK": 2, "E": 64, "H": 1, "P": 64}),
                                             ("armv7em", "mhsa_s8", {"NB": 32, "BLK": 2, "E": 64, "H": 1, "P": 64})])
def test_placement_rule(isa, name, sizes):
    """Function-scope arrays are in scratch; constant-size arrays nested in loops stay on the stack
    unless they are bigger than STACK_LIMIT bytes."""
    from kgen.scratch import STACK_LIMIT
    from kgen.ir import Alloc, For, walk_stmts

    lowered, em, plan = _plan(name, isa, sizes)
    body = lowered.kernel.body
    top = [s for s in body if isinstance(s, Alloc)]
    top += [x for s in body if isinstance(s, For) and s.var == "kgen_serial" for x in s.body if isinstance(x, Alloc)]
    nested = [s for s in walk_stmts(body) if isinstance(s, Alloc) and s not in top]
    big = [a for a in nested if a.type.bits // 8 * math.prod(d.value for d in a.shape) > STACK_LIMIT]
    in_plan = {a.name for a in plan.arrays} if plan else set()
    assert {a.name for a in top + big} == in_plan
    assert not {a.name for a in nested if a not in big} & in_plan
    for line in em.source.splitlines():
        if "KGEN_ALIGN8" in line and "_storage[" in line:
            assert line.startswith("        "), line  # only inside a loop
    if name == "mhsa_s8" and isa == "armv7em":  # the per-head copies of K and Vᵀ (8 kB each)
        assert {"Kh_v3_wide", "Vth_v4_wide"} <= {a.name for a in big}
    assert ("void *restrict scratch" in em.prototype) == bool(in_plan)


def test_scratch_parameter_name_avoids_a_clash():
    src = kernel_source("kernel k(scratch: in i8[N], Y: out i8[N]) {\n"
                        "    var t: i8[N];\n"
                        "    for i in 0..N { t[i] = scratch[i]; }\n"
                        "    for i in 0..N { Y[i] = t[N - 1 - i]; }\n"
                        "}\n")
    _, em = build_variant(src, "generic", {})
    assert em.prototype.endswith("int32_t N, void *restrict kgen_scratch)")


def test_manifest_records_scratch(tmp_path):
    from kgen.release import render_release
    from kgen.variants import release_requests

    files = render_release("armv7em", release_requests("armv7em", [builtin("encoder_block_s8"),
                                                                    builtin("matmul_nt_s8")]))
    entries = {e["name"]: e for e in json.loads(files["manifest.json"])["kernels"]}
    enc = entries["kgen_encoder_block_s8_nb27blk3e32h8p32f64_armv7em"]
    assert enc["scratch_bytes"] == enc["scratch"]["bytes"] == _plan("encoder_block_s8", "armv7em", ENC)[2].constant
    assert enc["scratch"]["get_buffer_size"].startswith("size_t kgen_encoder_block_s8_nb27blk3e32h8p32f64_armv7em_get")
    assert enc["prototype"].endswith("void *restrict scratch);")
    for e in entries.values():  # kernels without scratch keep their signature and say so
        assert (e["scratch"] is None) == (e["scratch_bytes"] == 0) == ("scratch" not in e["prototype"])


def test_get_buffer_size_agrees_with_the_plan_for_many_sizes(tmp_path):
    """The C formula of the generic release equals the Python plan at many size tuples."""
    src = builtin("encoder_block_s8")
    lowered, em = build_variant(src, "generic", {})
    plan = em.scratch
    tuples = [dict(zip(("NB", "BLK", "E", "H", "P", "F"), t)) for t in
              [(1, 1, 1, 1, 1, 1), (27, 3, 32, 8, 32, 64), (7, 1, 9, 3, 5, 11), (32, 2, 64, 1, 64, 128),
               (1, 3, 200, 2, 17, 5)]]
    calls = "\n".join(f'    printf("%zu\\n", {em.function}_get_buffer_size({t["NB"]}, {t["BLK"]}, {t["E"]}, '
                      f'{t["H"]}, {t["P"]}, {t["F"]}));' for t in tuples)
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "kgen_common.h").write_text(common_header())
    (tmp_path / "inc" / em.header_name).write_text(em.header)
    (tmp_path / em.source_name).write_text(em.source)
    (tmp_path / "main.c").write_text(f'#include <stdio.h>\n#include "{em.header_name}"\nint main(void)\n{{\n'
                                     f"{calls}\n    return 0;\n}}\n")
    exe = tmp_path / "sizes"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path / 'inc'}", "-o", str(exe),
                    str(tmp_path / "main.c"), str(tmp_path / em.source_name)], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert got == [plan.bytes_for(t) for t in tuples]


def _run_short(isa: str, target: Target, sizes: dict[str, int], shortfall: int, name: str = "softmax_s8_u8"):
    src = builtin(name)
    with tempfile.TemporaryDirectory(prefix="kgen-scratch-") as tmp:
        wd = Path(tmp)
        lowered, em = build_variant(src, isa, sizes, target.cores)
        inc = wd / "include"
        inc.mkdir()
        (inc / "kgen_common.h").write_text(common_header())
        for n, text in lowered.support_files.items():
            (inc / n).write_text(text)
        (inc / em.header_name).write_text(em.header)
        (wd / em.source_name).write_text(em.source)
        spec = harness_spec(src, lowered, em, sizes, make_cases(src.kernel, sizes, 0), parallel=target.cores > 1,
                            shortfall=shortfall)
        (wd / "main.c").write_text(render(spec))
        code, out, _, _ = runner_for(target)([wd / em.source_name, wd / "main.c"], inc, wd, target)
    return code, out


@pytest.mark.parametrize("compiler", compilers_params())
@pytest.mark.parametrize("sanitize", [False, True], ids=["canary", "asan"])
def test_undersized_scratch_is_caught_on_the_host(compiler, sanitize):
    target = Target("host", compiler, sanitize=sanitize)
    code, out = _run_short("generic", target, {"R": 3, "C": 10}, shortfall=0)
    assert code == 0 and parse_output(out).total_bad == 0, out
    code, out = _run_short("generic", target, {"R": 3, "C": 10}, shortfall=8)
    assert code != 0
    if sanitize:
        assert "AddressSanitizer" in out and "use-after-poison" in out, out[-2000:]
    else:
        report = parse_output(out)
        assert any(m.buf == "scratch_guard" for m in report.mismatches), out


@pytest.mark.qemu
def test_undersized_scratch_is_caught_on_qemu():
    from kgen.sim import arm

    if not arm.tools_available():
        pytest.skip("arm toolchain / qemu missing")
    target = Target("qemu", "gcc", "cortex-m4", "-O3")
    code, out = _run_short("armv7em", target, {"R": 64, "C": 64}, shortfall=8)
    assert code != 0 and any(m.buf == "scratch_guard" for m in parse_output(out).mismatches), out


@pytest.mark.spike
@pytest.mark.parametrize("cores", [1, 8])
def test_undersized_scratch_is_caught_on_spike(cores):
    from kgen.sim import riscv

    if not riscv.tools_available():
        pytest.skip("spike / clang-19 missing")
    target = Target("spike", "clang", "rv32", "-O3", cores=cores)
    code, out = _run_short("xpulpv2", target, {"R": 64, "C": 64}, shortfall=8)
    assert code != 0 and any(m.buf == "scratch_guard" for m in parse_output(out).mismatches), out


def test_wrong_get_buffer_size_is_reported(monkeypatch):
    """If get_buffer_size disagreed with the plan the harness would say so (and fail)."""
    import kgen.verify as kv
    from kgen.harness import ScratchSpec

    real = kv.scratch_spec

    def lying(emitted, sizes, shortfall=0):
        s = real(emitted, sizes, shortfall)
        return ScratchSpec(s.bytes + 8, s.expected + 8, s.size_call)

    monkeypatch.setattr(kv, "scratch_spec", lying)
    result = verify(builtin("softmax_s8_u8"), "generic", {"R": 2, "C": 5}, Target("host", "gcc", sanitize=False))
    assert not result.ok and any(m.buf == "get_buffer_size" for m in result.report.mismatches)


def test_verify_cli_reports_intact_guards():
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing")
    proc = run_kgen("verify", "mhsa_depth_first_s8", "--shape", "H=2,NB=3,BLK=2,P=4", "--compiler", "gcc")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "scratch guards intact" in proc.stdout
