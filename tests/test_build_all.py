"""``kgen build --isa all`` (one process pool for the three releases) and ``--depfile``."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_kgen

USER_KERNEL = """\
# Y = X + 1, saturated (a user kernel for the depfile test)
kernel inc_sat_s8(X: in i8[N], Y: out i8[N]) {
    for i in 0..N {
        Y[i] = i8(clip(i32(X[i]) + 1, -128, 127));
    }
}
"""


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_all_equals_single_isa_builds_for_any_job_count(tmp_path):
    one = run_kgen("build", "--isa", "all", "--only", "softmax", "--out", str(tmp_path / "j1"), "-j", "1")
    two = run_kgen("build", "--isa", "all", "--only", "softmax", "--out", str(tmp_path / "j2"), "-j", "2", "--time")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert [line.split(":")[0] for line in two.stdout.splitlines()] == [
        f"wrote {tmp_path / 'j2' / isa}" for isa in ("generic", "armv7em", "xpulpv2")]
    assert "built 3 releases in" in two.stderr and "(2 jobs)" in two.stderr
    assert tree(tmp_path / "j1") == tree(tmp_path / "j2")
    for isa in ("generic", "armv7em", "xpulpv2"):
        single = run_kgen("build", "--isa", isa, "--only", "softmax", "--out", str(tmp_path / "s" / isa))
        assert single.returncode == 0, single.stderr
        assert tree(tmp_path / "s" / isa) == tree(tmp_path / "j2" / isa), isa
    ok = run_kgen("build", "--isa", "all", "--only", "softmax", "--out", str(tmp_path / "j2"), "--check")
    assert ok.returncode == 0 and ok.stdout.count("up to date") == 3, ok.stdout + ok.stderr
    (tmp_path / "j2" / "armv7em" / "kgen.mk").write_text("# edited\n")
    stale = run_kgen("build", "--isa", "all", "--only", "softmax", "--out", str(tmp_path / "j2"), "--check")
    assert stale.returncode == 1 and "differs: kgen.mk" in stale.stderr and stale.stdout.count("up to date") == 2


def test_xpulpv2_release_has_the_gap_sdk_fragment(tmp_path):
    proc = run_kgen("build", "--isa", "xpulpv2", "--only", "softmax_s8_u8", "--out", str(tmp_path / "x"))
    assert proc.returncode == 0, proc.stderr
    mk = (tmp_path / "x" / "gap_sdk.mk").read_text()
    assert "APP_SRCS += \\\n  $(KGEN_XPULPV2_DIR)src/kgen_softmax_s8_u8_r64c64_xpulpv2.c" in mk
    assert "APP_CFLAGS += -I$(KGEN_XPULPV2_DIR)include -DKGEN_PMSIS" in mk and "-DKGEN_PULP_BUILTINS" in mk
    if shutil.which("make"):  # the fragment is valid make and expands to the release's sources
        (tmp_path / "Makefile").write_text(f"include {tmp_path / 'x' / 'gap_sdk.mk'}\n"
                                           "show:\n\t@echo $(APP_SRCS) '|' $(APP_CFLAGS)\n")
        out = subprocess.run(["make", "-s", "-C", str(tmp_path), "show"], capture_output=True, text=True, check=True)
        srcs, flags = out.stdout.split("|")
        assert all(Path(s).is_file() for s in srcs.split()) and len(srcs.split()) == 2
        assert flags.split() == [f"-I{tmp_path / 'x'}/include", "-DKGEN_PMSIS", "-DKGEN_PULP_BUILTINS"]
    assert not (tmp_path / "x" / "gap_sdk.mk").read_text().count("\r")


def _depfile_project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "my.kg").write_text(USER_KERNEL)
    (proj / "Makefile").write_text(
        "out/generic/manifest.json:\n"
        f"\t{sys.executable} -m kgen build --isa generic --dsl my.kg --only inc_sat --out out/generic "
        "--depfile out/generic.d\n"
        "-include out/generic.d\n")
    return proj


@pytest.mark.skipif(shutil.which("make") is None, reason="make missing")
def test_depfile_drives_incremental_make(tmp_path):
    proj = _depfile_project(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    make = lambda *a: subprocess.run(["make", "-C", str(proj), *a], capture_output=True, text=True,  # noqa: E731
                                     env=env, timeout=120)
    assert make("-q").returncode == 1  # nothing built yet
    first = make()
    assert first.returncode == 0, first.stdout + first.stderr
    assert (proj / "out" / "generic" / "src" / "kgen_inc_sat_s8_generic.c").is_file()
    assert make("-q").returncode == 0, "up to date right after the build"
    time.sleep(0.05)
    (proj / "my.kg").write_text(USER_KERNEL.replace("+ 1,", "+ 2,"))  # the DSL file changes
    assert make("-q").returncode == 1, "a newer DSL file makes the release out of date"
    assert make().returncode == 0 and make("-q").returncode == 0
    (proj / "out" / "generic.d").unlink()
    assert make("-q").returncode == 0  # no depfile: the target exists and has no known inputs


@pytest.mark.skipif(shutil.which("make") is None, reason="make missing")
def test_depfile_lists_every_input_sorted_and_relative(tmp_path):
    proj = _depfile_project(tmp_path)
    proc = run_kgen("build", "--isa", "generic", "--dsl", "my.kg", "--only", "inc_sat", "--out", "out/generic",
                    "--depfile", "out/generic.d", cwd=proj)
    assert proc.returncode == 0, proc.stderr
    text = (proj / "out" / "generic.d").read_text()
    again = run_kgen("build", "--isa", "generic", "--dsl", "my.kg", "--only", "inc_sat", "--out", "out/generic",
                     "--depfile", "out/generic.d", cwd=proj)
    assert again.returncode == 0 and (proj / "out" / "generic.d").read_text() == text  # deterministic
    head, _, phony = text.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "out/generic/manifest.json: \\"
    deps = [line.strip().rstrip(" \\") for line in lines[1:]]
    assert deps == sorted(deps) and all(not d.startswith("/") for d in deps)
    rel = os.path.relpath(REPO, proj)
    for needed in ("my.kg", f"{rel}/kernels/matmul_nt_s8.kg", f"{rel}/kernels/variants.toml",
                   f"{rel}/isa/xpulpv2.toml", f"{rel}/grammar/kgen.lark", f"{rel}/kgen/cgen.py",
                   f"{rel}/kgen/data/templates/kernel.c.j2", f"{rel}/kgen/backends/armv7em.py"):
        assert needed in deps, needed
    assert not any("/kgen/sim/" in d or "__pycache__" in d for d in deps)
    assert phony.splitlines() == [f"{d}:" for d in deps]
