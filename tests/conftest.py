"""Shared fixtures and helpers of the kgen core test suite.

Helpers here are plain functions so that test modules can ``from conftest import ...`` them
(pytest puts this directory on ``sys.path``; ``tests/`` is not a package).
"""
from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
KERNELS = REPO / "kernels"
GOLDEN = TESTS / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current generator output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


# ------------------------------------------------------------------------------------ toolchain

COMPILER_EXE = {"gcc": "gcc", "clang": "clang-19"}


def have_compiler(name: str) -> bool:
    return shutil.which(COMPILER_EXE[name]) is not None


def compilers_params() -> list:
    """``gcc`` and ``clang`` as pytest params, skipped when the compiler is missing."""
    return [pytest.param(c, marks=pytest.mark.skipif(not have_compiler(c), reason=f"{COMPILER_EXE[c]} missing"))
            for c in ("gcc", "clang")]


def run_kgen(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python3 -m kgen ARGS`` as a subprocess (text output)."""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "kgen", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=timeout, env=env)


# ------------------------------------------------------------------------------------ kernels

def kernel_source(text: str, name: str = "test.kg"):
    """Parse DSL ``text`` holding exactly one kernel into a :class:`kgen.emit.KernelSource`."""
    from kgen.emit import KernelSource
    from kgen.parser import parse_kernel

    return KernelSource(parse_kernel(text, name), name, hashlib.sha256(text.encode()).hexdigest())


@functools.lru_cache(maxsize=None)
def _builtin_sources() -> dict:
    from kgen.library import builtin_sources

    return builtin_sources()


def builtin(name: str):
    """A kernel of the shipped library (parsed once per test session)."""
    return _builtin_sources()[name]


def run_c_cases(src, sizes: Mapping[str, int], arglist: Sequence[Mapping[str, object]],
                compiler: str = "gcc", sanitize: bool = True):
    """Compile ``src`` (generic ISA) with a harness over hand-picked argument sets and run it.

    Expected outputs come from the reference interpreter.  Returns (HostRun, Report).
    """
    from kgen.emit import common_header
    from kgen.harness import parse_output, render
    from kgen.host import build_and_run
    from kgen.interp import run_reference
    from kgen.testdata import Case
    from kgen.verify import build_variant, harness_spec

    with tempfile.TemporaryDirectory(prefix="kgen-test-") as tmp:
        wd = Path(tmp)
        lowered, emitted = build_variant(src, "generic", sizes)
        inc = wd / "include"
        inc.mkdir()
        (inc / "kgen_common.h").write_text(common_header())
        (inc / emitted.header_name).write_text(emitted.header)
        kernel_c = wd / emitted.source_name
        kernel_c.write_text(emitted.source)
        cases = [Case(f"case{i}", dict(a), run_reference(src.kernel, sizes, a)) for i, a in enumerate(arglist)]
        spec = harness_spec(src, lowered, emitted, sizes, cases)
        main_c = wd / "main.c"
        main_c.write_text(render(spec))
        run = build_and_run([kernel_c, main_c], [inc], wd, compiler, sanitize)
        return run, parse_output(run.stdout)


# ------------------------------------------------------------------------------------ random expressions

DATA_TYPES = ("i8", "u8", "i16", "u16", "i32", "u32", "i64")
_BITS = {"i8": 8, "u8": 8, "i16": 16, "u16": 16, "i32": 32, "u32": 32, "i64": 64}


def type_range(t: str) -> tuple[int, int]:
    bits = _BITS[t]
    if t.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def scalar_names() -> list[tuple[str, str]]:
    """Two scalar parameters per data type: (name, type)."""
    return [(f"{v}_{t}", t) for t in DATA_TYPES for v in ("a", "b")]


def extreme_value(rng: random.Random, t: str, safe_c: bool = False) -> int:
    """Mostly boundary values of ``t``; ``safe_c`` avoids INT64_MIN (a known harness bug)."""
    lo, hi = type_range(t)
    pool = [lo, hi, 0, 1, -1, lo + 1, hi - 1, 2, 7, -2]
    v = rng.choice(pool) if rng.random() < 0.6 else rng.randint(lo, hi)
    if safe_c and t == "i64" and v == lo:
        v = lo + 1
    return v if lo <= v <= hi else 0


class ExprGen:
    """Random well-typed DSL expressions over :func:`scalar_names`.

    ``safe_c=True`` steers around the known C-emission bugs (see test_verify_generic.py: ``clip``
    with lo > hi, 32/64-bit ``MIN / -1``, the INT64_MIN literal) and around constructs that C compilers reject under ``-Werror``
    although the DSL allows them (self-comparisons, comparisons with a type's limits, ``~`` of u8/u16), so that a
    C-vs-reference comparison can be strict about everything else.
    """

    ARITH = ("+", "-", "*", "/", "%", "&", "|", "^")

    def __init__(self, rng: random.Random, safe_c: bool = False, literals: bool = True) -> None:
        self.rng = rng
        self.safe_c = safe_c
        self.literals = literals

    def lit(self, t: str) -> str:
        lo, hi = type_range(t)
        v = self.rng.choice([lo, hi, 0, 1, 2, 3, 5, 100, -1, -7])
        v = v if lo <= v <= hi else 1
        if self.safe_c and t == "i64" and v == lo:
            v = lo + 1
        # Wrapped in a cast so that the literal is typed even when it meets no typed operand.
        return f"{t}({v})"

    def leaf(self, t: str) -> str:
        if self.literals and self.rng.random() < 0.25:
            return self.lit(t)
        return f"{self.rng.choice('ab')}_{t}"

    def shift_amount(self, t: str, depth: int) -> str:
        bits = _BITS[t]
        r = self.rng.random()
        if r < 0.6:
            return str(self.rng.randrange(0, bits))
        if r < 0.7 and not self.safe_c:
            return str(self.rng.choice([bits, bits + 3]))  # out of range: a semantics error
        st = self.rng.choice(DATA_TYPES)
        # Reduce a variable into range, or leave it (errors are filtered by the caller).
        return f"({self.expr(st, depth - 1)} & {st}({bits - 1}))" if self.rng.random() < 0.8 \
            else self.expr(st, depth - 1)

    def expr(self, t: str, depth: int) -> str:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.2:
            return self.leaf(t)
        k = rng.random()
        signed_wide = t in ("i32", "i64")
        if k < 0.35:
            op = rng.choice(self.ARITH)
            a, b = self.expr(t, depth - 1), self.expr(t, depth - 1)
            if self.safe_c and op in ("/", "%") and signed_wide:
                b = f"select({b} > {t}(0), {b}, {t}(3))"  # a positive divisor: never MIN / -1
            return f"({a} {op} {b})"
        if k < 0.45:
            op = rng.choice(["<<", ">>"])
            return f"({self.expr(t, depth - 1)} {op} {self.shift_amount(t, depth)})"
        if k < 0.53:
            # gcc's -Wsign-compare rejects a compared ~ of a promoted u8/u16 (known, see tests)
            ops = "-" if self.safe_c and t in ("u8", "u16") else "-~"
            return f"{rng.choice(ops)}{self.expr(t, depth - 1)}"
        if k < 0.65:
            return f"{t}({self.expr(rng.choice(DATA_TYPES), depth - 1)})"
        if k < 0.85:
            fn = rng.choice(["min", "max", "clip", "abs", "select"])
            if fn in ("min", "max"):
                return f"{fn}({self.expr(t, depth - 1)}, {self.expr(t, depth - 1)})"
            if fn == "clip":
                x, lo, hi = (self.expr(t, depth - 1) for _ in range(3))
                if self.safe_c:  # lo > hi is a known C/reference disagreement
                    lo, hi = f"min({lo}, {hi})", f"max({lo}, {hi})"
                return f"clip({x}, {lo}, {hi})"
            if fn == "abs":
                return f"abs({self.expr(t, depth - 1)})"
            return f"select({self.cond(depth - 1)}, {self.expr(t, depth - 1)}, {self.expr(t, depth - 1)})"
        if t == "i8":
            mode = rng.choice(["floor", "nearest", ""])
            shift = str(rng.randrange(0, 32)) if rng.random() < 0.8 else f"(b_i32 & 31)"
            return (f"requant({self.expr('i32', depth - 1)}, {self.expr('i32', depth - 1)}, {shift}"
                    f"{', ' + mode if mode else ''})")
        return self.leaf(t)

    def operand(self, t: str, depth: int) -> str:
        """A comparison operand: never a bare literal in ``safe_c`` mode (-Wtype-limits)."""
        e = self.expr(t, depth)
        while self.safe_c and e.startswith(f"{t}(") and e[len(t) + 1:-1].lstrip("-").isdigit():
            e = self.expr(t, depth)
        return e

    def cond(self, depth: int) -> str:
        rng = self.rng
        k = rng.random()
        if depth <= 0 or k < 0.6:
            t = rng.choice(DATA_TYPES)
            op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
            a, b = self.operand(t, depth - 1), self.operand(t, depth - 1)
            while self.safe_c and a == b:
                b = self.operand(t, depth - 1)
            return f"({a} {op} {b})"
        if k < 0.85:
            return f"({self.cond(depth - 1)} {rng.choice(['&&', '||'])} {self.cond(depth - 1)})"
        return f"!{self.cond(depth - 1)}"


def scalar_params_text() -> str:
    return ", ".join(f"{n}: {t}" for n, t in scalar_names())


def all_scalars_sum() -> str:
    """An i64 expression that uses every scalar parameter (keeps -Wunused-parameter quiet)."""
    return " + ".join(f"i64({n})" for n, _ in scalar_names())
