"""isa/armv7em.toml: every declared semantics agrees with the instruction executed on QEMU
(Cortex-M4 and M7), and with the generated portable C path on the host."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from kgen.emit import common_header
from kgen.errors import KgenError
from kgen.isafile import intrinsic_header, load_isa, load_isa_text, operand_samples, pack, unpack

ISA = load_isa("armv7em")


def _cases(ins, n=24, seed=0):
    rng = np.random.default_rng(seed)
    columns = [operand_samples(t, rng, n) for _, t in ins.operands]
    # Pair extremes of every operand with each other and with random values.
    return [tuple(col[(i * (k + 1)) % len(col)] for k, col in enumerate(columns)) for i in range(n)]


def test_required_instructions_declared():
    names = {i.mnemonic for i in ISA.instrs}
    for m in ("smlad", "smuad", "smladx", "sxtb16", "sxtb16.ror8", "sxtab16", "uxtb16", "pkhbt", "pkhtb",
              "ssat8", "usat8", "qadd", "qsub", "smull.lo", "smull.hi", "smlal.hi", "smmulr"):
        assert m in names


@pytest.mark.qemu
@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m7"])
def test_semantics_match_qemu(cpu):
    from kgen.sim import arm

    if not arm.tools_available():
        pytest.skip("arm toolchain / qemu missing")
    snippets, expected, labels = [], [], []
    for ins in ISA.instrs:
        for args in _cases(ins):
            snippets.append((ins.asm, [pack(t, a) for (_, t), a in zip(ins.operands, args)]))
            expected.append(pack(ins.result, ins.evaluate(args)))
            labels.append(f"{ins.mnemonic}{args}")
    got = arm.run_asm_snippets(snippets, cpu)
    bad = [(lbl, unpack(ISA.instrs[0].result, g), e) for lbl, g, e in zip(labels, got, expected) if g != e]
    assert not bad, bad[:5]


def test_portable_path_matches_semantics(tmp_path):
    (tmp_path / "kgen_common.h").write_text(common_header())
    (tmp_path / "kgen_armv7em_isa.h").write_text(intrinsic_header(ISA))
    lines = ['#include <stdio.h>', '#include "kgen_armv7em_isa.h"', "int main(void) {"]
    expected = []
    for ins in ISA.instrs:
        for args in _cases(ins, n=12, seed=1):
            cargs = ", ".join(f"({t.ctype}){pack(t, a)}u" for (_, t), a in zip(ins.operands, args))
            lines.append(f'    printf("%lu\\n", (unsigned long)(uint32_t){ins.c_name}({cargs}));')
            expected.append(pack(ins.result, ins.evaluate(args)))
    lines += ["    return 0;", "}"]
    (tmp_path / "t.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsanitize=undefined",
                    "-fno-sanitize-recover=all", "-I", str(tmp_path), str(tmp_path / "t.c"), "-o",
                    str(tmp_path / "t")], check=True)
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout
    assert [int(x) for x in out.split()] == expected


def test_isa_file_errors_are_located():
    bad = '[isa]\nname = "x"\n\n[[instr]]\nmnemonic = "foo"\nclass = "c"\noperands = [["a", "i32"]]\n' \
          'result = "i32"\nsemantics = "a + b"\nasm = "foo %0, %1"\ncost = { m4 = 1 }\n'
    with pytest.raises(KgenError) as e:
        load_isa_text(bad, "isa/x.toml")
    assert e.value.loc.line == 9 and "undefined name 'b'" in e.value.message
    with pytest.raises(KgenError) as e:
        load_isa_text("[isa]\nname = \n", "isa/y.toml")
    assert e.value.loc.line == 2
