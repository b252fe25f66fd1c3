"""Parser fuzzing: mutated and grammar-generated DSL never crashes the front end.

Every input either parses — and then round-trips through the printer — or raises
:class:`kgen.errors.KgenError` carrying a location.  Any other exception is a failure.  The seed is
fixed, so a failure reproduces; the offending input is printed.

The grammar-based generator avoids constant divisions by zero and where-constraints over run-time
scalars: those crash the bounds prover (known bugs, pinned by xfail tests in test_dsl_errors.py).
"""
from __future__ import annotations

import multiprocessing
import random
import re
import time
from concurrent.futures import ProcessPoolExecutor

from conftest import KERNELS
from kgen.errors import KgenError
from kgen.parser import parse_kernel, parse_kernels
from kgen.printer import print_kernel

SEED = 20240611

#: A compact seed with every statement kind, operator and builtin but few buffer accesses (the
#: bounds prover's cost grows with accesses, and most mutants of a seed reach the prover).
MIXED = """\
# A compact kernel with every construct.
kernel mixed(X: in i8[M, K], Y: out i8[M], Z: inout i32[M] strides [1], s: i32 in 0..32, w: u16) where K % 4 == 0 {
    var t: i32[4];
    var c: i32;
    var u: i64 = 0x7f;
    view V = Y[M] strides [1] offset 0;
    for m in 0..M @unroll @parallel(2) {
        c = i32(X[m, 0]) * 3;  # a comment
        c += s; c -= 1; c *= 2; c |= 1; c &= 7; c ^= 5;
        if c < 0 && !(c > 2) || c == 1 {
            c = -c + ~c / 3 % 4 << 1 >> 1 & c | c ^ 1;
        } else if c >= 3 && c <= 9 {
            c = min(c, 1) + max(c, 2) + clip(c, -3, 3) + abs(c) + select(c != 1, c, 2);
        } else {
            c = i32(u8(i16(i64(u16(u32(c)))))) - i32(w) - i32(u);
        }
        t[0] = c;
        Z[m] += t[0];
        V[m] = requant(Z[m], c, s, nearest) + requant(c, c, 3, floor) + requant(c, 1, 0);
    }
}
"""
N_MUTATED = 7600
N_GENERATED = 2400

_TOKEN = re.compile(r"\s+|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|0x[0-9a-fA-F]+|[0-9]+|\.\.|<<|>>|<=|>=|==|!=|&&|\|\|"
                    r"|[+\-*|&^]=|.", re.S)

VOCAB = ["kernel", "for", "in", "var", "view", "if", "else", "where", "strides", "offset", "out", "inout",
         "i8", "u8", "i16", "u16", "i32", "u32", "i64", "min", "max", "clip", "abs", "select", "requant",
         "floor", "nearest", "M", "N", "K", "m", "n", "k", "acc", "X", "W", "Y", "bias", "mul", "shift",
         "0", "1", "2", "31", "32", "128", "255", "0x10", "99999999999999999999", "-1",
         "(", ")", "[", "]", "{", "}", ",", ";", ":", "..", "@", "@unroll", "@parallel(2)",
         "=", "+=", "-=", "*=", "|=", "&=", "^=", "+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^",
         "<", "<=", ">", ">=", "==", "!=", "&&", "||", "!", "~", "#", "\n", " ", "\t", "é", "\x00", "'", '"']
CHARS = "abcxyzMNK019_ (){}[];:,.+-*/%<>=!~&|^@#\n\t\"'\\$`?é∑\x00\x7f\u00a0"


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def mutate(text: str, rng: random.Random) -> str:
    toks = tokens(text)
    solid = [i for i, t in enumerate(toks) if not t.isspace()]
    if not solid:
        return text + rng.choice(VOCAB)
    op = rng.randrange(10)
    if op == 0:  # delete a token
        del toks[rng.choice(solid)]
    elif op == 1:  # duplicate a token
        i = rng.choice(solid)
        toks.insert(i, toks[i] + rng.choice(["", " "]))
    elif op == 2:  # swap two tokens (adjacent or anywhere)
        i = rng.choice(solid)
        j = solid[min(solid.index(i) + 1, len(solid) - 1)] if rng.random() < 0.5 else rng.choice(solid)
        toks[i], toks[j] = toks[j], toks[i]
    elif op == 3:  # replace a token by a vocabulary token
        toks[rng.choice(solid)] = rng.choice(VOCAB)
    elif op == 4:  # insert a vocabulary token
        toks.insert(rng.randrange(len(toks) + 1), rng.choice(VOCAB) + " ")
    elif op == 5:  # insert random characters
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + "".join(rng.choice(CHARS) for _ in range(rng.randint(1, 4))) + text[pos:]
    elif op == 6:  # replace a character
        pos = rng.randrange(len(text))
        return text[:pos] + rng.choice(CHARS) + text[pos + 1:]
    elif op == 7:  # truncate
        return text[:rng.randrange(len(text))]
    elif op == 8:  # delete, duplicate or swap whole lines
        lines = text.split("\n")
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        what = rng.randrange(3)
        if what == 0:
            del lines[i]
        elif what == 1:
            lines.insert(i, lines[j])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    else:  # delete a span of tokens
        i = rng.randrange(len(toks))
        del toks[i:i + rng.randint(2, 8)]
    return "".join(toks)


# --------------------------------------------------------------------------- grammar-based generator

TYPES = ["i8", "u8", "i16", "u16", "i32", "u32", "i64"]


class ProgramGen:
    """Random programs that follow the grammar; names are mostly, not always, in scope."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, seq):
        return self.rng.choice(seq)

    def index(self, loops: list[str], sizes: list[str], depth: int = 2) -> str:
        r = self.rng.random()
        if depth <= 0 or r < 0.5:
            return self.pick(loops + sizes + ["0", "1", "2"]) if loops or sizes else "0"
        op = self.pick(["+", "-", "*", "+"])
        return f"{self.index(loops, sizes, depth - 1)} {op} {self.index(loops, sizes, depth - 1)}"

    def expr(self, names: list[str], bufs: dict[str, int], loops: list[str], sizes: list[str], depth: int) -> str:
        rng = self.rng
        r = rng.random()
        if depth <= 0 or r < 0.25:
            pool = names + ["q"] if names else ["1"]
            leaf = self.pick(pool + [str(rng.choice([0, 1, 7, 127, 128, 255, 65535, 2 ** 31, -3]))])
            return leaf
        if r < 0.35 and bufs:
            b = self.pick(list(bufs))
            rank = bufs[b] if rng.random() < 0.9 else rng.randint(0, 3)
            return f"{b}[{', '.join(self.index(loops, sizes) for _ in range(max(rank, 1)))}]"
        if r < 0.6:
            op = self.pick(["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "<", "<=", ">", ">=",
                            "==", "!=", "&&", "||"])
            b = self.expr(names, bufs, loops, sizes, depth - 1)
            if op in ("/", "%") and b.lstrip("-~!").isdigit() and int(b.lstrip("-~!")) == 0:
                b = "3"  # constant division by zero crashes kgen.check (known bug)
            return f"({self.expr(names, bufs, loops, sizes, depth - 1)} {op} {b})"
        if r < 0.7:
            return f"{self.pick(['-', '~', '!'])}{self.expr(names, bufs, loops, sizes, depth - 1)}"
        if r < 0.8:
            return f"{self.pick(TYPES)}({self.expr(names, bufs, loops, sizes, depth - 1)})"
        fn = self.pick(["min", "max", "clip", "abs", "select", "requant", "requant", "sqrt"])
        n = {"min": 2, "max": 2, "clip": 3, "abs": 1, "select": 3, "requant": 3, "sqrt": 1}[fn]
        n += rng.choice([0, 0, 0, 0, 1, -1])
        args = [self.expr(names, bufs, loops, sizes, depth - 1) for _ in range(max(n, 0))]
        if fn == "requant" and rng.random() < 0.6:
            args.append(self.pick(["floor", "nearest", "ceil"]))
        return f"{fn}({', '.join(args)})"

    def block(self, scope: dict, bufs: dict[str, int], loops: list[str], sizes: list[str], depth: int,
              indent: int) -> list[str]:
        rng = self.rng
        pad = "    " * indent
        out: list[str] = []
        scope = dict(scope)
        for _ in range(rng.randint(0, 3)):
            names = list(scope)
            r = rng.random()
            if r < 0.25 and depth > 0:
                v = self.pick(["m", "n", "k", "i", "j"]) + ("" if rng.random() < 0.7 else "2")
                hi = self.pick(sizes + ["4"]) if sizes else "4"
                lo = "0" if rng.random() < 0.9 else "1"
                ann = self.pick(["", "", " @unroll", " @parallel(2)", " @unroll @parallel(8)"])
                out.append(f"{pad}for {v} in {lo}..{hi}{ann} {{")
                out += self.block(scope | {v: "idx"}, bufs, loops + [v], sizes, depth - 1, indent + 1)
                out.append(f"{pad}}}")
            elif r < 0.4:
                v = self.pick(["acc", "t", "u", "acc2"])
                t = self.pick(TYPES)
                if rng.random() < 0.7:
                    out.append(f"{pad}var {v}: {t} = {self.expr(names, bufs, loops, sizes, 2)};")
                else:
                    out.append(f"{pad}var {v}: {t};")
                scope[v] = t
            elif r < 0.45:
                a = self.pick(["tmp", "buf"])
                out.append(f"{pad}var {a}: {self.pick(TYPES)}[{', '.join(self.index([], sizes, 1) for _ in range(rng.randint(1, 2)))}];")
                bufs = dict(bufs) | {a: out[-1].count(",") + 1}
            elif r < 0.5 and bufs:
                base = self.pick(list(bufs))
                dims = rng.randint(1, 3)
                off = self.pick(["", " offset 0", " offset 1"])
                out.append(f"{pad}view V = {base}[{', '.join(self.index([], sizes, 1) for _ in range(dims))}] "
                           f"strides [{', '.join(self.index([], sizes, 1) for _ in range(dims))}]{off};")
                bufs = dict(bufs) | {"V": dims}
            elif r < 0.75:
                op = self.pick(["=", "=", "+=", "-=", "*=", "|=", "&=", "^="])
                if bufs and rng.random() < 0.5:
                    b = self.pick(list(bufs))
                    target = f"{b}[{', '.join(self.index(loops, sizes) for _ in range(bufs[b]))}]"
                else:
                    target = self.pick(names + ["zz"]) if names else "zz"
                out.append(f"{pad}{target} {op} {self.expr(names, bufs, loops, sizes, 3)};")
            elif depth > 0:
                out.append(f"{pad}if {self.expr(names, bufs, loops, sizes, 2)} {{")
                out += self.block(scope, bufs, loops, sizes, depth - 1, indent + 1)
                tail = rng.random()
                if tail < 0.3:
                    out.append(f"{pad}}} else {{")
                    out += self.block(scope, bufs, loops, sizes, depth - 1, indent + 1)
                elif tail < 0.5:
                    out.append(f"{pad}}} else if {self.expr(names, bufs, loops, sizes, 1)} {{")
                    out += self.block(scope, bufs, loops, sizes, depth - 1, indent + 1)
                out.append(f"{pad}}}")
        return out

    def kernel(self) -> str:
        rng = self.rng
        sizes = rng.sample(["M", "N", "K", "S"], rng.randint(0, 3))
        params, scope, bufs = [], {}, {}
        for i in range(rng.randint(0, 5)):
            if rng.random() < 0.55 and sizes:
                name = self.pick(["X", "W", "Y", "Z", "B"]) + ("" if rng.random() < 0.8 else str(i))
                dims = rng.sample(sizes, rng.randint(1, len(sizes)))
                direction = self.pick(["in", "in", "out", "inout"])
                strides = ""
                if rng.random() < 0.2:
                    strides = f" strides [{', '.join(self.pick(sizes + ['1']) for _ in dims)}]"
                params.append(f"{name}: {direction} {self.pick(TYPES)}[{', '.join(dims)}]{strides}")
                bufs[name] = len(dims)
            else:
                name = self.pick(["mul", "shift", "a", "b", "zp"])
                t = self.pick(TYPES)
                rng_text = ""
                if rng.random() < 0.3:
                    lo = rng.choice([-1, 0, 1, 5])
                    rng_text = f" in {lo}..{lo + rng.choice([0, 1, 32, 300])}"
                params.append(f"{name}: {t}{rng_text}")
                scope[name] = t
        where = ""
        if sizes and rng.random() < 0.3:
            s = self.pick(sizes)
            where = " where " + self.pick([f"{s} % 4 == 0", f"{s} >= 2", f"{s} > 1", f"{s} % 2 == 0, {s} >= 4"])
        body = self.block(scope, bufs, [], sizes, 2, 1)
        doc = "# generated kernel\n" if rng.random() < 0.5 else ""
        return f"{doc}kernel g{rng.randrange(3)}({', '.join(params)}){where} {{\n" + "\n".join(body) + "\n}\n"


# --------------------------------------------------------------------------- the test

def check_input(text: str, stats: dict[str, int], checked: set) -> str | None:
    """None when the front end behaves; otherwise a description of the failure.

    ``checked`` holds the (kernel, doc) pairs already round-tripped: many distinct mutants parse
    to the same IR (comment and whitespace edits), and re-printing those proves nothing new.
    """
    try:
        kernels = parse_kernels(text, "fuzz.kg")
    except KgenError as exc:
        stats["rejected"] += 1
        if exc.loc is None or exc.loc.line < 1 or exc.loc.col < 1:
            return f"KgenError without a valid location: {exc.message!r} loc={exc.loc}"
        if exc.loc.line > text.count("\n") + 1:
            return f"KgenError location {exc.loc} is past the end of the input"
        if not exc.render().startswith(f"{exc.loc}: error: "):
            return "bad rendering"
        return None
    except RecursionError:
        stats["recursion"] += 1
        return "RecursionError"
    except Exception as exc:  # noqa: BLE001 - any other exception is the bug we are looking for
        return f"{type(exc).__name__}: {exc}"
    stats["parsed"] += 1
    for k in kernels:
        if (k, k.doc) in checked:
            continue
        checked.add((k, k.doc))
        stats["roundtrips"] += 1
        printed = print_kernel(k)
        try:
            again = parse_kernel(printed, "printed.kg")
        except Exception as exc:  # noqa: BLE001
            return f"printed kernel does not parse: {exc}\n--- printed ---\n{printed}"
        if again != k:
            return f"round trip changed the kernel\n--- printed ---\n{printed}"
        if print_kernel(again) != printed:
            return "printing is not a fixed point"
    return None


def fuzz_inputs() -> list[str]:
    """The fixed-seed input list: mutants of the seeds, then grammar-generated programs."""
    rng = random.Random(SEED)
    seeds = [(KERNELS / "matmul_nt_s8.kg").read_text(), (KERNELS / "matmul_nn_s8.kg").read_text(), MIXED]
    inputs = []
    for _ in range(N_MUTATED):
        text = rng.choice(seeds)
        for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
            text = mutate(text, rng)
        inputs.append(text)
    gen = ProgramGen(rng)
    inputs += [gen.kernel() + (gen.kernel() if rng.random() < 0.1 else "") for _ in range(N_GENERATED)]
    return inputs


def run_chunk(texts: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    stats = {"rejected": 0, "parsed": 0, "recursion": 0, "roundtrips": 0}
    checked: set = set()
    failures = []
    for text in texts:
        problem = check_input(text, stats, checked)
        if problem is not None:
            failures.append((problem, text))
    return stats, failures


def test_fuzz_parser():
    inputs = fuzz_inputs()
    assert len(inputs) >= 10_000
    distinct = list(dict.fromkeys(inputs))
    start = time.monotonic()
    # Two worker processes (fork: they inherit the built parser); results do not depend on the split.
    chunks = [distinct[i::2] for i in range(2)]
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            results = list(pool.map(run_chunk, chunks))
    except (OSError, ValueError):  # no fork here: run in-process
        results = [run_chunk(c) for c in chunks]
    stats = {k: sum(r[0][k] for r in results) for k in results[0][0]}
    failures = [f for r in results for f in r[1]]
    elapsed = time.monotonic() - start
    print(f"fuzz: {len(inputs)} inputs ({len(distinct)} distinct) in {elapsed:.1f} s: {stats}")
    assert stats["roundtrips"] >= 100 and stats["rejected"] >= 5000, stats  # both paths well exercised
    if failures:
        problem, text = failures[0]
        raise AssertionError(f"{len(failures)} fuzz failures; first: {problem}\n--- input ---\n{text}")
