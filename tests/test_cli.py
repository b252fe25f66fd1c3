"""The command line: exit statuses (0 ok, 1 mismatch, 2 bad input, 3 tool failure, 130 interrupted),
located messages without tracebacks, and the verification report helpers behind ``kgen verify``."""
from __future__ import annotations

import pytest

import kgen
from conftest import KERNELS, _builtin_sources, have_compiler, run_kgen
from kgen import cli
from kgen.errors import KgenError, ToolchainError
from kgen.harness import Mismatch, Report, parse_output
from kgen.parser import parse_file
from kgen.printer import print_kernel
from kgen.testdata import CASE_MODES
from kgen.verify import Target, VerifyResult, describe_failure


@pytest.fixture
def fast_library(monkeypatch):
    """Serve the (already parsed) shipped library so in-process CLI calls skip re-parsing it."""
    import kgen.library

    cached = _builtin_sources()
    monkeypatch.setattr(kgen.library, "builtin_sources", lambda: dict(cached))


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- subprocess smoke tests

def test_version():
    proc = run_kgen("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"kgen {kgen.__version__}"


@pytest.mark.skipif(not (have_compiler("gcc") and have_compiler("clang")), reason="gcc and clang-19 needed")
def test_verify_matmul_nt_generic_passes():
    proc = run_kgen("verify", "matmul_nt_s8", "--isa", "generic", "--shape", "M=3,K=67,N=5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("PASS matmul_nt_s8 isa=generic target=host/gcc/O2/asan+ubsan sizes={'M': 3, 'K': 67, 'N': 5}")
    assert lines[1].startswith("PASS matmul_nt_s8 isa=generic target=host/clang/O2/asan+ubsan")
    assert f"{len(CASE_MODES)} cases, {len(CASE_MODES) * 15} outputs bit-exact" in lines[0]


@pytest.mark.parametrize("argv, message", [
    (["verify", "matmul_nt_s8", "--shape", "M=abc"], "error: --shape: value of M must be an integer, got 'abc'"),
    (["verify", "no_such_kernel"], "error: unknown kernel 'no_such_kernel'; available: "),
    (["verify", "matmul_nt_s8", "--isa", "armv7em", "--cpu", "cortex-m3"], "argument --cpu: invalid choice: 'cortex-m3'"),
    (["bench", "--isa", "armv7em", "--cpu", "m4", "--json", "x.json"], "argument --cpu: invalid choice: 'm4'"),
])
def test_bad_input_exits_2_without_traceback(argv, message):
    proc = run_kgen(*argv)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_usage_errors_exit_2():
    for argv in ([], ["verify"], ["frobnicate"], ["verify", "matmul_nt_s8", "--compiler", "icc"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2


# --------------------------------------------------------------------------- --shape

@pytest.mark.parametrize("text, message", [
    ("M", "expected NAME=VALUE, got 'M'"),
    ("=3", "expected NAME=VALUE, got '=3'"),
    ("3=4", "expected NAME=VALUE, got '3=4'"),
    ("M=3,,K=2", "expected NAME=VALUE, got ''"),
    ("M=", "value of M must be an integer, got ''"),
    ("M=1.5", "value of M must be an integer, got '1.5'"),
    ("M=0", "M must be >= 1, got 0"),
    ("M=-2", "M must be >= 1, got -2"),
])
def test_parse_shape_errors(text, message):
    with pytest.raises(KgenError, match=message.replace("(", r"\(").replace(".", r"\.")):
        cli.parse_shape(text)


def test_parse_shape():
    assert cli.parse_shape("M=5, K = 67 ,N=0x10") == {"M": 5, "K": 67, "N": 16}
    assert cli.parse_shape(None) == {} and cli.parse_shape("") == {}


@pytest.mark.parametrize("shape, message", [
    ("M=x", "--shape: value of M must be an integer"),
    ("Q=3", "--shape: kernel matmul_nt_s8 has no size 'Q' (its sizes: M, K, N)"),
    ("M=0", "--shape: M must be >= 1"),
])
def test_verify_bad_shape_exits_2(capsys, fast_library, monkeypatch, shape, message):
    import kgen.verify

    monkeypatch.setattr(kgen.verify, "verify", lambda *a, **k: pytest.fail("must not verify"))
    code, out, err = run_main(capsys, "verify", "matmul_nt_s8", "--shape", shape)
    assert code == 2 and err.startswith(f"error: {message}") and out == ""


def test_unknown_kernel_and_isa_exit_2(capsys, fast_library, tmp_path):
    code, _, err = run_main(capsys, "verify", "matmul_xx")
    assert code == 2 and "unknown kernel 'matmul_xx'" in err and "matmul_nt_s8" in err
    code, _, err = run_main(capsys, "verify", "matmul_nt_s8", "--isa", "z80")
    assert code == 2 and "no verification target for ISA 'z80'" in err
    code, _, err = run_main(capsys, "build", "--isa", "z80", "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown ISA 'z80'" in err
    code, _, err = run_main(capsys, "build", "--only", "zzz", "--out", str(tmp_path / "o"))
    assert code == 2 and "--only zzz: no kernel matches" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- verify exit statuses

def _result(ok: bool, sizes: dict, compiler: str = "gcc") -> VerifyResult:
    text = ("KGEN summary case=0 buf=Y mismatches=0 total=6 maxerr=0\nKGEN done mismatches=0\n" if ok else
            "KGEN mismatch case=0 buf=Y idx=4 got=-3 exp=7\n"
            "KGEN summary case=0 buf=Y mismatches=1 total=6 maxerr=10\nKGEN done mismatches=1\n")
    return VerifyResult("matmul_nt_s8", "generic", dict(sizes), Target("host", compiler, sanitize=True),
                        parse_output(text), 0 if ok else 1, text)


def test_verify_exit_1_on_mismatch(capsys, fast_library, monkeypatch):
    import kgen.verify

    calls = []

    def fake_verify(src, isa, sizes, target, seed=0, **kwargs):
        calls.append(target.compiler)
        return _result(target.compiler == "gcc", sizes, target.compiler)

    monkeypatch.setattr(kgen.verify, "verify", fake_verify)
    code, out, err = run_main(capsys, "verify", "matmul_nt_s8", "--shape", "M=2,K=3,N=3")
    assert code == 1 and calls == ["gcc", "clang"]
    lines = out.splitlines()
    assert lines[0].startswith("PASS matmul_nt_s8 isa=generic target=host/gcc/O2/asan+ubsan")
    assert "1 cases, 6 outputs bit-exact" in lines[0]
    assert lines[1] == "FAIL matmul_nt_s8 isa=generic target=host/clang/O2/asan+ubsan sizes={'M': 2, 'K': 3, 'N': 3}"
    assert "  case 0: Y[1, 1] = -3, expected 7" in lines
    assert "Traceback" not in out + err

    code, out, _ = run_main(capsys, "verify", "matmul_nt_s8", "--compiler", "gcc", "--shape", "M=2,K=3,N=3")
    assert code == 0 and out.startswith("PASS")


def test_verify_exit_3_on_toolchain_failure(capsys, fast_library, monkeypatch):
    import kgen.verify

    def broken(*args, **kwargs):
        raise ToolchainError("gcc failed:\nboom")

    monkeypatch.setattr(kgen.verify, "verify", broken)
    code, _, err = run_main(capsys, "verify", "matmul_nt_s8", "--shape", "M=1,K=1,N=1")
    assert code == 3 and err.startswith("error: gcc failed:") and "Traceback" not in err


def test_keyboard_interrupt_exits_130(capsys, fast_library, monkeypatch):
    import kgen.verify

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kgen.verify, "verify", interrupted)
    code, _, err = run_main(capsys, "verify", "matmul_nt_s8")
    assert code == 130 and err.strip() == "interrupted"


@pytest.mark.skipif(not have_compiler("gcc"), reason="gcc missing")
def test_verify_user_dsl_kernel(capsys, fast_library, tmp_path):
    path = tmp_path / "user.kg"
    path.write_text("# Adds a bias with saturation.\n"
                    "kernel add_bias(X: in i8[N], b: i8, Y: out i8[N]) {\n"
                    "    for n in 0..N { Y[n] = i8(clip(i16(X[n]) + i16(b), -128, 127)); }\n}\n")
    code, out, err = run_main(capsys, "verify", "add_bias", "--dsl", str(path), "--compiler", "gcc",
                              "--shape", "N=7")
    assert code == 0, out + err
    assert out.startswith("PASS add_bias isa=generic target=host/gcc/O2/asan+ubsan sizes={'N': 7}")
    code, out, _ = run_main(capsys, "list", "--dsl", str(path))
    assert code == 0 and any(l.startswith("add_bias") and "Adds a bias with saturation." in l
                             for l in out.splitlines())


def test_verify_user_dsl_with_error_exits_2(capsys, fast_library, tmp_path):
    path = tmp_path / "bad.kg"
    path.write_text("kernel bad(Y: out i8[N]) {\n    for n in 0..N { Y[n] = z; }\n}\n")
    code, out, err = run_main(capsys, "verify", "bad", "--dsl", str(path))
    assert code == 2 and out == ""
    assert err.splitlines()[0] == f"{path}:2:28: error: undefined name 'z'"


# --------------------------------------------------------------------------- check / list

def test_check_and_print(capsys):
    files = [str(KERNELS / "matmul_nt_s8.kg"), str(KERNELS / "matmul_nn_s8.kg")]
    code, out, _ = run_main(capsys, "check", *files)
    assert code == 0 and out.splitlines() == [f"{f}: 1 kernel OK" for f in files]
    code, out, _ = run_main(capsys, "check", "--print", *files)
    assert code == 0
    assert out == "".join(print_kernel(k) for f in files for k in parse_file(f))


def test_list(capsys, fast_library):
    code, out, _ = run_main(capsys, "list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(names) and {"matmul_nt_s8", "matmul_nn_s8"} <= set(names)
    nt = next(line for line in out.splitlines() if line.startswith("matmul_nt_s8 "))
    assert "kernels/matmul_nt_s8.kg" in nt


# --------------------------------------------------------------------------- report helpers

REPORT = """\
noise before
KGEN mismatch case=0 buf=Y idx=0 got=5 exp=-5
KGEN mismatch case=0 buf=Y idx=7 got=-128 exp=127
KGEN summary case=0 buf=Y mismatches=2 total=12 maxerr=255
KGEN summary case=1 buf=Y mismatches=0 total=12 maxerr=0
KGEN mismatch case=2 buf=Z idx=3 got=-9000000000 exp=1
KGEN summary case=2 buf=Z mismatches=1 total=4 maxerr=9000000001
KGEN done mismatches=3
"""


def test_parse_output():
    rep = parse_output(REPORT)
    assert rep.done and rep.total_bad == 3
    assert rep.mismatches == [Mismatch(0, "Y", 0, 5, -5), Mismatch(0, "Y", 7, -128, 127),
                              Mismatch(2, "Z", 3, -9000000000, 1)]
    assert rep.summaries[0] == {"case": 0, "buf": "Y", "mismatches": 2, "total": 12, "maxerr": 255}
    assert rep.summaries[2]["maxerr"] == 9000000001
    unfinished = parse_output("KGEN summary case=0 buf=Y mismatches=0 total=1 maxerr=0\nSegmentation fault\n")
    assert not unfinished.done and unfinished.total_bad == 0
    assert parse_output("") == Report([], [], False)


def test_describe_failure():
    src = _builtin_sources()["matmul_nt_s8"]
    sizes = {"M": 3, "K": 5, "N": 4}
    text = REPORT.replace("buf=Z", "buf=Y")
    result = VerifyResult("matmul_nt_s8", "generic", sizes, Target("host", "clang", sanitize=True),
                          parse_output(text), 3, text)
    assert not result.ok
    lines = describe_failure(result, src).splitlines()
    assert lines[0] == "FAIL matmul_nt_s8 isa=generic target=host/clang/O2/asan+ubsan sizes={'M': 3, 'K': 5, 'N': 4}"
    assert "  case 0: Y[0, 0] = 5, expected -5" in lines
    assert "  case 0: Y[1, 3] = -128, expected 127" in lines  # flat index 7 in a [3][4] output
    assert "  case 2: Y[0, 3] = -9000000000, expected 1" in lines
    assert "  case 0: Y: 2/12 mismatching (16.67 %), max error 255" in lines
    assert not any("case 1:" in line for line in lines)


def test_describe_failure_of_a_crashed_program():
    src = _builtin_sources()["matmul_nt_s8"]
    out = "KGEN summary case=0 buf=Y mismatches=0 total=2 maxerr=0\n" + "\n".join(f"asan line {i}" for i in range(30))
    result = VerifyResult("matmul_nt_s8", "generic", {"M": 1, "K": 1, "N": 2}, Target("host", "gcc"),
                          parse_output(out), 1, out)
    assert not result.ok
    text = describe_failure(result, src)
    assert "program did not finish (exit status 1):" in text
    assert "    asan line 29" in text and "asan line 14" not in text  # the last 15 lines
