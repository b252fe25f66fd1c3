"""Malformed DSL: every file of ``tests/dsl_errors/`` is rejected with a located diagnostic.

Each corpus file starts with ``# expect: LINE:COL: MESSAGE-SUBSTRING``.  ``kgen check FILE`` must
exit with status 2 and print ``FILE:LINE:COL: error: ...``, the offending source line and a caret
under the column, and no Python traceback.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import TESTS, run_kgen
from kgen.errors import KgenError
from kgen.parser import parse_file, parse_kernels

CORPUS = sorted((TESTS / "dsl_errors").glob("*.kg"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")


def expectation(path: Path) -> tuple[int, int, str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = _EXPECT.match(first)
    assert m, f"{path.name}: first line must be '# expect: LINE:COL: message', got {first!r}"
    return int(m.group(1)), int(m.group(2)), m.group(3)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30
    kinds = {p.name.split("_")[0] for p in CORPUS}
    assert {"syntax", "undefined", "type", "assign", "rank", "oob", "duplicate", "literal"} <= kinds


@pytest.fixture(scope="module")
def cli_results() -> dict[Path, object]:
    """``kgen check FILE`` for every corpus file, run concurrently (one process per file)."""
    rel = [p.relative_to(TESTS.parent) for p in CORPUS]
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        results = list(pool.map(lambda p: run_kgen("check", str(p)), rel))
    return dict(zip(CORPUS, zip(rel, results)))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_kgen_check_reports_located_error(path, cli_results):
    line, col, message = expectation(path)
    rel, proc = cli_results[path]
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    assert err.startswith(f"{rel}:{line}:{col}: error: "), err
    head, *rest = err.splitlines()
    assert message in head, err
    src_line = path.read_text(encoding="utf-8").splitlines()[line - 1]
    assert len(rest) >= 2, err
    assert rest[0] == f"  {src_line.expandtabs(1)}"
    caret = rest[1]
    assert caret.strip() == "^" and len(caret) == 2 + col, err
    assert proc.stdout == ""


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_parse_file_raises_kgen_error(path):
    """The same diagnostics in-process: a KgenError carrying file, line, column and source."""
    line, col, message = expectation(path)
    with pytest.raises(KgenError) as info:
        parse_file(path)
    exc = info.value
    assert exc.loc is not None and (exc.loc.file, exc.loc.line, exc.loc.col) == (str(path), line, col)
    assert message in exc.message
    rendered = exc.render()
    assert rendered.startswith(f"{path}:{line}:{col}: error: {exc.message}")
    assert str(exc) == rendered


def test_unreadable_file_is_a_clean_error(tmp_path):
    missing = tmp_path / "nope.kg"
    proc = run_kgen("check", str(missing))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot read") and "Traceback" not in proc.stderr
    binary = tmp_path / "bin.kg"
    binary.write_bytes(b"kernel \xff\xfe()")
    with pytest.raises(KgenError, match="cannot read"):
        parse_file(binary)


def test_tab_indented_source_caret_lines_up(tmp_path):
    path = tmp_path / "tabs.kg"
    path.write_text("kernel t(Y: out i8[N]) {\n\tfor n in 0..N {\n\t\tY[n] = q;\n\t}\n}\n")
    with pytest.raises(KgenError) as info:
        parse_file(path)
    _, src, caret = info.value.render().splitlines()
    assert src[caret.index("^")] == "q"


# --------------------------------------------------------------------------- known checker bugs
# Inputs that crash the bounds prover instead of producing a located KgenError, and an access
# the prover accepts although it leaves its buffer.  Each must become a clean diagnostic.

def _kernel(where: str = "", ix: str = "m", loop: str = "0..M") -> str:
    return (f"kernel k(X: in i8[M], mul: i32, Y: out i8[M]){where} {{\n"
            f"    for m in {loop} {{ Y[m] = X[{ix}] + i8(mul); }}\n}}\n")


@pytest.mark.parametrize("text", [
    pytest.param(_kernel(where=" where M % 0 == 0"), id="where-mod-zero"),
    pytest.param(_kernel(ix="4 / 0"), id="index-div-zero"),
    pytest.param(_kernel(where=" where M / 0 == 1", ix="m + 1"), id="where-div-zero-unproven"),
    pytest.param(_kernel(loop="0..M / 0"), id="loop-bound-div-zero"),
    pytest.param(_kernel(where=" where mul > 0", ix="m + 1"), id="where-uses-scalar"),
])
def test_checker_never_crashes(text):
    with pytest.raises(KgenError) as info:
        parse_kernels(text)
    assert info.value.loc is not None


def test_view_outside_its_base_is_rejected():
    text = ("kernel v(X: in i8[M], Y: out i8[M]) {\n    view V = X[M] strides [2] offset 0;\n"
            "    for m in 0..M { Y[m] = V[m]; }\n}\n")
    with pytest.raises(KgenError, match="V"):
        parse_kernels(text)


def test_view_inside_its_base_is_accepted():
    text = ("kernel v(X: in i8[M, N], Y: out i8[N, M]) {\n    view T = X[N, M] strides [1, N];\n"
            "    for n in 0..N { for m in 0..M { Y[n, m] = T[n, m]; } }\n}\n")
    (k,) = parse_kernels(text)
    assert k.body[0].strides[1].name == "N"


@pytest.mark.parametrize("text, fragment", [
    ("kernel w(X: in i8[M, K], Y: out i8[M]) where K % 4 == 0 {\n"
     "    for m in 0..M { for k in 0..K / 4 { Y[m] = X[m, 4 * k + 3]; } }\n}\n", None),
    ("kernel w(X: in i8[M, K], Y: out i8[M]) where K >= 2 {\n"
     "    for m in 0..M { Y[m] = X[m, 1]; }\n}\n", None),
    ("kernel w(X: in i8[M, K], Y: out i8[M]) {\n"
     "    for m in 0..M { Y[m] = X[m, 1]; }\n}\n", "add a 'where' constraint|may leave 'X'"),
    ("kernel w(X: in i8[M], Y: out i8[M]) {\n"
     "    for m in 0..min(M, 4) { Y[m] = X[m]; }\n    for m in min(M, 4)..M { Y[m] = X[m]; }\n}\n", None),
])
def test_where_constraints_and_guards(text, fragment):
    """The prover uses where-constraints (multiples, lower bounds), min() bounds and if-guards."""
    if fragment is None:
        parse_kernels(text)
    else:
        with pytest.raises(KgenError, match=fragment):
            parse_kernels(text)


def test_guarded_access_is_accepted():
    parse_kernels("kernel w(X: in i8[M], Y: out i8[M]) {\n"
                  "    for m in 0..M { if m + 1 < M { Y[m] = X[m + 1]; } else { Y[m] = 0; } }\n}\n")
