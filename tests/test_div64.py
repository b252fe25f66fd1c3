"""The RV32 64-by-32-bit division path of kgen_common.h (kgen_div_i64 with KGEN_DIV64_32) equals C's
int64_t division on random and edge-case operands (host gcc with UBSan; Spike runs it in every
xpulpv2 kernel that divides)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from kgen.emit import common_header

PROGRAM = r"""
#include <stdio.h>
#include <stdint.h>
#include "kgen_common.h"
static uint64_t x = 88172645463325252ull;
static uint64_t rnd(void) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }
int main(void) {
    long bad = 0;
    for (int i = 0; i < 2000000; ++i) {
        uint64_t r = rnd(), r2 = rnd();
        int64_t a = (int64_t)r >> (r2 % 64);
        int64_t b = (int64_t)rnd() >> (32 + (int)((r2 >> 12) % 32));
        if ((r2 >> 20) % 7 == 0) b = (int64_t)rnd() >> (int)((r2 >> 24) % 64);
        if ((r2 >> 30) % 13 == 0) a = INT64_MIN;
        if (b == 0) b = 1;
        if (b == -1 && a == INT64_MIN) continue;
        bad += kgen_div_i64(a, b) != a / b;
    }
    const uint32_t ds[] = {1, 2, 3, 255, 0xFFFF, 0x10000, 0x10001, 0x7FFFFFFF, 0x80000000u, 0xFFFF0000u,
                           0x8000FFFFu, 0xFFFFFFFFu};
    for (unsigned j = 0; j < sizeof ds / sizeof ds[0]; ++j)
        for (int i = 0; i < 20000; ++i) {
            uint64_t n = rnd() >> (i % 64);
            bad += kgen_udiv64_32(n, ds[j]) != n / ds[j];
            bad += kgen_udiv64_32(~(uint64_t)0 - (uint64_t)i, ds[j]) != (~(uint64_t)0 - (uint64_t)i) / ds[j];
        }
    printf("%ld\n", bad);
    return bad != 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_div64_32_path_matches_c_division(tmp_path):
    (tmp_path / "kgen_common.h").write_text(common_header())
    (tmp_path / "t.c").write_text(PROGRAM)
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-DKGEN_DIV64_32",
                    "-fsanitize=undefined", "-fno-sanitize-recover", f"-I{tmp_path}", str(tmp_path / "t.c"),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "0", out.stdout + out.stderr
