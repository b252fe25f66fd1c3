"""``kgen explain``: golden reports (regenerate with ``pytest --update-golden`` after an intended change
of a backend or of the model), and the command line around it."""
from __future__ import annotations

import pytest

from conftest import GOLDEN, run_kgen
from kgen import cli

CASES = {
    "matmul_nt_s8-armv7em-m16k64n64": ["matmul_nt_s8", "--isa", "armv7em", "--shape", "M=16,K=64,N=64"],
    "matmul_nt_s8-xpulpv2-m32k32n32-L1-2k": ["matmul_nt_s8", "--isa", "xpulpv2", "--shape", "M=32,K=32,N=32",
                                            "--budget", "L1=2k"],
    "softmax_s8_u8-armv7em-r16c32": ["softmax_s8_u8", "--isa", "armv7em", "--shape", "R=16,C=32"],
    "matmul_nt_s8-armv7em-tile-2x2": ["matmul_nt_s8", "--isa", "armv7em", "--shape", "M=8,K=16,N=8", "--tile", "2x2"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_golden(name, capsys, update_golden):
    code = cli.main(["explain", *CASES[name]])
    out, err = capsys.readouterr()
    assert code == 0, err
    path = GOLDEN / "explain" / f"{name}.txt"
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out)
    assert path.exists(), f"{path} missing: run pytest --update-golden"
    assert out == path.read_text()


def test_explain_report_sections(capsys):
    assert cli.main(["explain", "matmul_nt_s8", "--isa", "xpulpv2", "--shape", "M=32,K=32,N=32", "--budget",
                     "L1=2k"]) == 0
    out = capsys.readouterr().out
    for section in ("== loop nest after each schedule step", "-- 1. DSL kernel", "-- 2. specialise",
                    "== schedule", "binding memory constraint: L1 = 2048 B", "memory tile:",
                    "== formulas", "MACs         = K*M*N", "instructions = ", "cycles       = ",
                    "== accumulator bounds", "safe while K <= 131071",
                    "== alternatives on the memory <-> cycles Pareto front", "<- chosen"):
        assert section in out, section


def test_explain_bad_input_exits_2():
    for argv, msg in ((["explain", "matmul_nt_s8", "--isa", "generic"], "needs a specialising ISA"),
                      (["explain", "matmul_nt_s8", "--isa", "armv7em", "--tile", "4by2"], "--tile: expected ROWSxCOLS"),
                      (["explain", "matmul_nt_s8", "--isa", "xpulpv2", "--budget", "L9=1k"], "has no memory 'L9'")):
        proc = run_kgen(*argv)
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
