"""C emission must keep DSL semantics in corner cases found while writing the kernel library."""
from pathlib import Path

import pytest

from kgen.library import load_sources
from kgen.verify import Target, verify

DSL = Path(__file__).parent / "data" / "codegen_regressions.kg"


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_shift_division_and_index_min(compiler):
    src = load_sources([str(DSL)])["bugs"]
    result = verify(src, "generic", {"N": 37}, Target("host", compiler, sanitize=True))
    assert result.ok, result.stdout[-2000:]


def test_dead_code_is_removed_and_unused_parameters_are_marked():
    from kgen.deadcode import eliminate_dead_code, unused_parameters
    from kgen.ir import Alloc, Decl, walk_stmts

    kernel = load_sources([str(DSL)])["dead_code"].kernel
    clean = eliminate_dead_code(kernel)
    assert not [s for s in walk_stmts(clean.body) if isinstance(s, (Decl, Alloc))]
    assert unused_parameters(clean) == ["unused_w", "unused_k", "M"]
    assert eliminate_dead_code(load_sources([str(DSL)])["bugs"].kernel) == load_sources([str(DSL)])["bugs"].kernel


@pytest.mark.parametrize("isa", ["generic", "armv7em", "xpulpv2"])
def test_dead_code_compiles_warning_free(isa):
    """Every target builds with -Wall -Wextra -Werror; before the dead-code pass this failed to compile."""
    from kgen.sim import arm, riscv

    if isa == "armv7em" and not arm.tools_available():
        pytest.skip("arm toolchain / qemu missing")
    if isa == "xpulpv2" and not riscv.tools_available():
        pytest.skip("spike / clang-19 missing")
    src = load_sources([str(DSL)])["dead_code"]
    targets = {"generic": [Target("host", c, sanitize=True) for c in ("gcc", "clang")],
               "armv7em": [Target("qemu", c, "cortex-m4", "-O3") for c in ("gcc", "clang")],
               "xpulpv2": [Target("spike", "clang", "rv32", opt="-O3")]}[isa]
    for target in targets:
        result = verify(src, isa, {"N": 13, "M": 5}, target)
        assert result.ok, result.stdout[-2000:]


def test_kgen_check_warns_about_unused_declarations():
    from conftest import run_kgen

    proc = run_kgen("check", str(DSL))
    assert proc.returncode == 0, proc.stderr
    warnings = [line.split(str(DSL) + ":", 1)[1] for line in proc.stderr.splitlines() if "warning:" in line]
    assert warnings == ["13:5: warning: local 'never' is never read",
                        "14:5: warning: local 'set_only' is never read",
                        "15:5: warning: local array 'sink' is never loaded",
                        "12:31: warning: parameter 'unused_w' is never used",
                        "12:51: warning: parameter 'unused_k' is never used"]


def test_dead_code_keeps_multi_core_barriers():
    """A barrier is an empty loop with @barrier: removing it as dead code broke every 8-core kernel."""
    from dataclasses import replace

    from kgen.backends.spmd import barrier, is_barrier
    from kgen.deadcode import eliminate_dead_code

    kernel = load_sources([str(DSL)])["bugs"].kernel
    with_barrier = replace(kernel, body=kernel.body + (barrier(),))
    assert any(is_barrier(s) for s in eliminate_dead_code(with_barrier).body)
