"""Tests of the Cortex-M build/run/count stack (kgen.sim.arm) on qemu-system-arm."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kgen.sim.arm import (
    ArmTarget,
    ToolchainError,
    build_elf,
    cflags,
    m4_cycles,
    run_asm_snippets,
    run_elf,
    tools_available,
)

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(not tools_available(), reason="arm toolchains / qemu-system-arm / capstone missing"),
]

WARN = ["-Wall", "-Wextra", "-Werror"]

# Region 0: empty. Region 1: an assembly loop with a hand-derived count:
#   bl kgen_t_loop (1) + movs (1) + 100 x (subs, bne) (200) + bx lr (1) = 203.
# Region 2: a C loop. Region 3: straight-line assembly for the cycle model.
# main returns 7 (exit-code passthrough).
PROGRAM = r"""
#include "kgen_harness.h"

void kgen_t_loop(void);
void kgen_t_cyc(void);
uint32_t kgen_t_buf[4];

__asm__(
    "  .pushsection .text.kgen_t_loop,\"ax\",%progbits\n"
    "  .syntax unified\n  .thumb\n  .p2align 1\n"
    "  .global kgen_t_loop\n  .type kgen_t_loop, %function\n  .thumb_func\n"
    "kgen_t_loop:\n"
    "  movs r0, #100\n"
    "1:\n"
    "  subs r0, r0, #1\n"
    "  bne 1b\n"
    "  bx lr\n"
    "  .size kgen_t_loop, . - kgen_t_loop\n"
    "  .popsection\n"
    "  .pushsection .text.kgen_t_cyc,\"ax\",%progbits\n"
    "  .syntax unified\n  .thumb\n  .p2align 1\n"
    "  .global kgen_t_cyc\n  .type kgen_t_cyc, %function\n  .thumb_func\n"
    "kgen_t_cyc:\n"
    "  movw r0, #:lower16:kgen_t_buf\n"   /* 1 */
    "  movt r0, #:upper16:kgen_t_buf\n"   /* 1 */
    "  ldr r1, [r0]\n"                    /* 2 + 1: address written by movt */
    "  ldr r2, [r0, r1]\n"                /* 2: address uses the previous load's result */
    "  ldr r3, [r0, #8]\n"                /* 1: pipelined behind a load */
    "  adds r0, r0, #4\n"                 /* 1 */
    "  str r3, [r0]\n"                    /* 1 + 1: address written by adds */
    "  smlad r1, r1, r2, r3\n"            /* 1 */
    "  ldrd r2, r3, [r0]\n"               /* 3 */
    "  push {r4, r5}\n"                   /* 3 */
    "  pop {r4, r5}\n"                    /* 3 */
    "  udiv r1, r2, r3\n"                 /* 12 */
    "  cmp r1, r1\n"                      /* 1 */
    "  it ne\n"                           /* 1 */
    "  movne r1, #1\n"                    /* 1, condition fails */
    "  bx lr\n"                           /* 1 + P */
    "  .size kgen_t_cyc, . - kgen_t_cyc\n"
    "  .popsection\n");

static volatile int32_t data[64];

__attribute__((noinline)) static int32_t sum(const volatile int32_t *p, int n)
{
    int32_t s = 0;
    for (int i = 0; i < n; i++) {
        s += p[i];
    }
    return s;
}

int main(void)
{
    for (int i = 0; i < 64; i++) {
        data[i] = i;
    }
    kgen_region_begin();
    kgen_region_end();
    kgen_region_begin();
    kgen_t_loop();
    kgen_region_end();
    kgen_region_begin();
    int32_t s = sum(data, 64);
    kgen_region_end();
    kgen_region_begin();
    kgen_t_cyc();
    kgen_region_end();
    kgen_puts("sum=");
    kgen_put_i32(s);
    kgen_puts("\n");
    return s == 2016 ? 7 : 100;
}
"""

TARGETS = [ArmTarget(cpu, comp, opt) for cpu in ("cortex-m4", "cortex-m7")
           for comp in ("gcc", "clang") for opt in ("-O3", "-Os")]


def _ids(t: ArmTarget) -> str:
    return f"{t.compiler}-{t.cpu}{t.opt}"


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("prog") / "prog.c"
    src.write_text(PROGRAM)
    return src


def test_cflags_match_baseline() -> None:
    assert cflags(ArmTarget("cortex-m4", "gcc")) == [
        "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-O3", "-g", "-std=c11",
        "-ffunction-sections", "-fdata-sections"]
    clang = cflags(ArmTarget("cortex-m7", "clang", "-Os"))
    assert clang[0] == "--target=thumbv7em-none-eabi" and "-mcpu=cortex-m7" in clang and "-Os" in clang
    assert clang[-2:] == ["-isystem", "/usr/lib/arm-none-eabi/include"]


@pytest.mark.parametrize("target", TARGETS, ids=_ids)
def test_build_run_count_matrix(program: Path, tmp_path: Path, target: ArmTarget) -> None:
    elf = build_elf([program], tmp_path / "p.elf", target, extra_cflags=WARN)
    run = run_elf(elf, target.cpu, count=True)
    assert run.exit_code == 7, run.stdout + run.stderr
    assert run.stdout == "sum=2016\n"
    assert run.overhead == 2
    assert len(run.regions) == 4
    assert run.regions[0] == 0
    assert run.regions[1] == 203
    assert run.regions[3] == 17
    # The C loop's body executes once per element in every build but clang -O3 (unrolled).
    assert run.regions[2] > 64
    assert run.pc_counts is not None and run.taken is not None
    for i, hist in enumerate(run.region_pc_counts):
        assert sum(hist.values()) == run.regions[i] + run.overhead
    # Hand check of the loop's branch: 100 executions, 99 taken.
    loop = run.region_pc_counts[1]
    bne = [pc for pc, n in loop.items() if n == 100 and run.region_taken[1].get(pc) == 99]
    assert len(bne) == 1
    assert sum(1 for n in loop.values() if n == 100) == 2  # subs + bne


def test_determinism(program: Path, tmp_path: Path) -> None:
    target = ArmTarget("cortex-m4", "gcc")
    elf = build_elf([program], tmp_path / "p.elf", target)
    a = run_elf(elf, target.cpu, count=True)
    b = run_elf(elf, target.cpu, count=True)
    assert a.regions == b.regions
    assert a.pc_counts == b.pc_counts and a.taken == b.taken
    assert a.region_pc_counts == b.region_pc_counts and a.total == b.total


def test_exit_code_passthrough_and_saturation(tmp_path: Path) -> None:
    for ret, expect in ((0, 0), (3, 3), (254, 254), (300, 254), (-1, 254)):
        src = tmp_path / f"r{ret}.c"
        src.write_text(f'#include "kgen_harness.h"\nint main(void) {{ return {ret}; }}\n')
        elf = build_elf([src], tmp_path / f"r{ret}.elf", ArmTarget("cortex-m4", "gcc"), extra_cflags=WARN)
        run = run_elf(elf, "cortex-m4")
        assert run.exit_code == expect, (ret, run.exit_code)
        assert run.regions == [] and run.pc_counts is None


def test_fault_exits_255(tmp_path: Path) -> None:
    src = tmp_path / "fault.c"
    src.write_text('#include "kgen_harness.h"\nint main(void) { __asm__ volatile("udf #0"); return 0; }\n')
    elf = build_elf([src], tmp_path / "fault.elf", ArmTarget("cortex-m7", "clang"), extra_cflags=WARN)
    run = run_elf(elf, "cortex-m7")
    assert run.exit_code == 255
    assert "kgen: fault" in run.stdout


def test_build_error_carries_compiler_stderr(tmp_path: Path) -> None:
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { return undefined_name; }\n")
    for comp in ("gcc", "clang"):
        with pytest.raises(ToolchainError, match="undefined_name"):
            build_elf([src], tmp_path / "bad.elf", ArmTarget("cortex-m4", comp))


def test_memcpy_memset_memmove(tmp_path: Path) -> None:
    src = tmp_path / "mem.c"
    src.write_text(r"""
#include "kgen_harness.h"
static uint8_t a[64], b[64];
int main(void)
{
    int bad = 0;
    for (unsigned off = 0; off < 4; off++) {
        for (unsigned n = 0; n < 20; n++) {
            for (unsigned i = 0; i < 64; i++) { a[i] = (uint8_t)(i + 1); b[i] = 0; }
            memcpy(b + off, a + 1, n);
            for (unsigned i = 0; i < 64; i++)
                bad += b[i] != ((i >= off && i < off + n) ? (uint8_t)(i - off + 2) : 0);
            memset(b + off, 0xA5, n);
            for (unsigned i = off; i < off + n; i++) bad += b[i] != 0xA5;
            memmove(a + off + 1, a + 1, n);   /* overlapping, dst > src */
            for (unsigned i = 0; i < n; i++) bad += a[off + 1 + i] != (uint8_t)(i + 2);
        }
    }
    return bad;
}
""")
    for comp in ("gcc", "clang"):
        elf = build_elf([src], tmp_path / f"mem-{comp}.elf", ArmTarget("cortex-m4", comp), extra_cflags=WARN)
        assert run_elf(elf, "cortex-m4").exit_code == 0


def test_m4_cycle_model_straight_line(program: Path, tmp_path: Path) -> None:
    target = ArmTarget("cortex-m4", "gcc")
    elf = build_elf([program], tmp_path / "p.elf", target)
    run = run_elf(elf, target.cpu, count=True)
    # Hand-costed body (see PROGRAM): 36 + bx lr (1 + P), plus the call bl (1 + P).
    est = m4_cycles(elf, run, region=3)
    assert est.instructions == 17
    assert (est.p1, est.p2, est.p3) == (40, 42, 44)
    assert m4_cycles(elf, run, region=0).p2 == 0
    # The loop: bl + movs + 100 subs + 100 bne (99 taken) + bx lr.
    loop = m4_cycles(elf, run, region=1)
    assert (loop.p1, loop.p2, loop.p3) == (203 + 101, 203 + 202, 203 + 303)


def _sxtb16_ror8(x: int) -> int:
    x = ((x >> 8) | (x << 24)) & 0xFFFFFFFF
    lo = x & 0xFF
    hi = (x >> 16) & 0xFF
    lo16 = (lo - 0x100 if lo & 0x80 else lo) & 0xFFFF
    hi16 = (hi - 0x100 if hi & 0x80 else hi) & 0xFFFF
    return lo16 | (hi16 << 16)


def _ssat8(x: int) -> int:
    v = x - (1 << 32) if x & 0x80000000 else x
    return max(-128, min(127, v)) & 0xFFFFFFFF


def _smlad(a: int, b: int, acc: int) -> int:
    def s16(v: int) -> int:
        return v - 0x10000 if v & 0x8000 else v
    r = s16(a & 0xFFFF) * s16(b & 0xFFFF) + s16(a >> 16) * s16(b >> 16) + acc
    return r & 0xFFFFFFFF


@pytest.mark.parametrize("cpu,compiler", [("cortex-m4", "gcc"), ("cortex-m7", "clang")])
def test_run_asm_snippets(cpu: str, compiler: str) -> None:
    rng = random.Random(1234)
    edge = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 127, 128, 0xFFFFFF80, 0xFFFFFF7F]
    vals = edge + [rng.getrandbits(32) for _ in range(60)]
    snippets: list[tuple[str, list[int]]] = []
    expect: list[int] = []
    for v in vals:
        snippets.append(("sxtb16 %0, %1, ror #8", [v]))
        expect.append(_sxtb16_ror8(v))
        snippets.append(("ssat %0, #8, %1", [v]))
        expect.append(_ssat8(v))
        a, b = rng.getrandbits(32), rng.getrandbits(32)
        snippets.append(("smlad %0, %1, %2, %3", [a, b, v]))
        expect.append(_smlad(a, b, v))
    snippets.append(("mov %0, %1\nadd %0, %0, %2", [5, 6]))  # multi-instruction template
    expect.append(11)
    assert run_asm_snippets(snippets, cpu, compiler=compiler) == expect
