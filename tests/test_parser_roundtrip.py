"""Parse/print round trip: ``parse_kernel(print_kernel(k)) == k`` and printing is a fixed point.

``EVERYTHING`` uses every construct of the DSL; :func:`test_everything_covers_every_construct`
guards that it keeps doing so when the language grows.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import KERNELS, DATA_TYPES, ExprGen, scalar_params_text
from kgen.errors import KgenError
from kgen.ir import (BINOPS, UNOPS, Alloc, Assign, Bin, BufferParam, Call, Cast, Const, Decl, For, If,
                     ScalarParam, Store, Un, Var, View, stmt_exprs, walk_expr, walk_stmts)
from kgen.parser import parse_kernel, parse_kernels
from kgen.printer import print_expr, print_kernel

EVERYTHING = """\
## Every construct of the DSL.
# A second doc line; the blank comment line below is part of the doc block.
#
kernel everything(
    X: in i8[M, K],
    W: in i8[N, K] strides [K, 1],
    bias: in i32[N] strides [1],
    Y: out i8[S, H * P],
    Z: inout i32[M, N],
    U: out u8[M],
    mul: i32,
    shift: i32 in 0..32,
    lo: i8 in -128..128,
    big: u32,
    wide: i64 in -5..0x10,
    h: i16,
    uh: u16 in 0..65536
) where K % 4 == 0, M >= 2, N > 1 {  # trailing comment
    var t: i32[4, N];
    var c: i32;
    var d: i64 = 7;
    var e: u16 = uh;
    # a view re-indexing Y's storage
    view V = Y[H, S, P] strides [P, H * P, 1] offset 0;
    view V2 = Y[S, H * P] strides [H * P, 1] offset 0;
    view Zt = Z[N, M] strides [1, N];
    view Tail = Z[M - 1, N] strides [N, 1] offset N;
    for m in 0..M @unroll @parallel(8) {
        for n in 1 - 1..N @unroll(2) {
            c = 0;
            c += 1;
            c -= 2;
            c *= 3;
            c |= 4;
            c &= 5;
            c ^= 6;
            Z[m, n] += c;
            Z[m, n] -= 1;
            Z[m, n] *= 2;
            Z[m, n] |= 1;
            Z[m, n] &= 3;
            Z[m, n] ^= 7;
            t[3, n] = c;
            if c < 0 && c <= 1 || !(c > 2) {
                c = -c + ~c * 2 / 3 % 4 - 5;
            } else if c >= 3 {
                c = (c << 2) >> 1 | c & 1 ^ 3;
            } else if c == 1 {
                c = c - (c - 1);
            } else {
                c = min(c, 1) + max(c, 2) + clip(c, -3, 3) + abs(c) + select(c == 1, c, 2);
            }
            if c != 0 {
                c = c * (c + 1);
            }
            Zt[n, m] = Zt[n, m] + i32(W[n, 0x0]);
        }
        U[m] = u8(i16(i64(u16(u32(i32(i8(X[m, 0])))))));
        d = d + i64(-(-5)) - - -d;
        e = e ^ ~e;
    }
    for s in 0..S {
        for i in 0..H * P {
            Y[s, i] = requant(bias[0], mul, shift, floor) + requant(1, 2, 3, nearest)
                + requant(c, mul, shift) + i8(lo) + i8(big) + i8(wide) + i8(h) + i8(e);
        }
        for hh in 0..H {
            for p in 0..P {
                V[hh, s, p] = V2[s, hh * P + p];
            }
        }
    }
    for r in 0..M - 1 {
        Tail[r, 0] = t[0, 0];
    }
}

# The second kernel of the file: an empty parameter list and an empty body.
kernel nothing() {
}
"""


def roundtrip(text: str) -> None:
    kernels = parse_kernels(text)
    for k in kernels:
        printed = print_kernel(k)
        again = parse_kernel(printed, "<printed>")
        assert again == k, printed
        assert print_kernel(again) == printed, "printing is not a fixed point"


def test_everything_roundtrip():
    roundtrip(EVERYTHING)


def test_everything_doc_and_second_kernel():
    k, empty = parse_kernels(EVERYTHING)
    assert k.doc.splitlines()[:2] == ["# Every construct of the DSL.",
                                      "A second doc line; the blank comment line below is part of the doc block."]
    assert empty.name == "nothing" and empty.params == () and empty.body == ()
    assert empty.doc == "The second kernel of the file: an empty parameter list and an empty body."
    printed = print_kernel(k)
    assert printed.startswith("# # Every construct of the DSL.\n# A second doc line")
    assert parse_kernel(printed).doc.strip() == k.doc.strip()


def _ops_in(k):
    bins, uns, casts, calls, flags = set(), set(), set(), set(), set()
    for s in walk_stmts(k.body):
        for e in stmt_exprs(s):
            for sub in walk_expr(e):
                if isinstance(sub, Bin):
                    bins.add(sub.op)
                elif isinstance(sub, Un):
                    uns.add(sub.op)
                elif isinstance(sub, Cast):
                    casts.add(sub.type.name)
                elif isinstance(sub, Call):
                    calls.add(sub.fn)
                    flags.update(sub.flags)
    for w in k.where:
        bins.update(x.op for x in walk_expr(w) if isinstance(x, Bin))
    return bins, uns, casts, calls, flags


def test_everything_covers_every_construct():
    k = parse_kernels(EVERYTHING)[0]
    bins, uns, casts, calls, flags = _ops_in(k)
    assert bins == set(BINOPS), set(BINOPS) - bins
    assert uns == set(UNOPS)
    assert casts == set(DATA_TYPES)
    assert calls == {"min", "max", "clip", "abs", "select", "requant"}
    assert flags == {"floor", "nearest"}
    stmts = list(walk_stmts(k.body))
    kinds = {type(s) for s in stmts}
    assert kinds == {For, Decl, Alloc, View, Assign, Store, If}
    assert any(isinstance(s, Decl) and s.init is None for s in stmts)
    assert any(isinstance(s, Decl) and s.init is not None for s in stmts)
    assert any(isinstance(s, View) and s.offset != Const(0, s.offset.type) for s in stmts)
    attrs = {(a.name, len(a.args)) for s in stmts if isinstance(s, For) for a in s.attrs}
    assert {("unroll", 0), ("parallel", 1), ("unroll", 1)} <= attrs
    # else-if chains become nested Ifs in the else branch
    assert any(isinstance(s, If) and len(s.orelse) == 1 and isinstance(s.orelse[0], If)
               and s.orelse[0].orelse for s in stmts)
    dirs = {p.direction for p in k.params if isinstance(p, BufferParam)}
    assert dirs == {"in", "out", "inout"}
    assert any(isinstance(p, BufferParam) and p.strides for p in k.params)
    ranged = [p for p in k.params if isinstance(p, ScalarParam) and p.lo is not None]
    assert {p.name for p in ranged} == {"shift", "lo", "wide", "uh"}
    assert fold(ranged, "lo") == (-128, 128) and fold(ranged, "wide") == (-5, 16)
    assert len(k.where) == 3
    printed = print_kernel(k)
    for op in ("+=", "-=", "*=", "|=", "&=", "^="):
        assert f" {op} " in printed, op


def fold(params, name):
    p = next(p for p in params if p.name == name)
    return p.lo.value, p.hi.value


@pytest.mark.parametrize("path", sorted(KERNELS.glob("*.kg")), ids=lambda p: p.name)
def test_library_kernels_roundtrip(path):
    roundtrip(path.read_text())


# ----------------------------------------------------------------------------------- expressions

HEAD = "kernel p(a: i32, b: i32, c: i32, x: i8, f: i32, Y: out i32[1], B: out i32[1]) {\n"


def expr_of(text: str, target: str = "Y[0]") -> object:
    k = parse_kernel(HEAD + f"    {target} = {text};\n    B[0] = i32(x) + f;\n}}\n")
    return k.body[0].value


def bool_of(text: str) -> object:
    return expr_of(f"select({text}, 1, 0)").args[0]


@pytest.mark.parametrize("text, root, left, right", [
    ("a + b * c", "add", "a", "mul"),
    ("a * b + c", "add", "mul", "c"),
    ("a - b - c", "sub", "sub", "c"),
    ("a - (b - c)", "sub", "a", "sub"),
    ("a / b / c", "div", "div", "c"),
    ("a / (b * c)", "div", "a", "mul"),
    ("a % b * c", "mul", "mod", "c"),
    ("a << b + c", "shl", "a", "add"),
    ("a + b << c", "shl", "add", "c"),
    ("a >> b >> c", "shr", "shr", "c"),
    ("a & b | c", "or", "and", "c"),
    ("a | b & c", "or", "a", "and"),
    ("a ^ b & c", "xor", "a", "and"),
    ("a | b ^ c", "or", "a", "xor"),
    ("a & b << c", "and", "a", "shl"),
    ("(a | b) & c", "and", "or", "c"),
    ("-a * b", "mul", "neg", "b"),
    ("~a + b", "add", "bnot", "b"),
    ("-(a * b)", "neg", "mul", None),
])
def test_precedence(text, root, left, right):
    e = expr_of(text)
    name = lambda x: x.name if isinstance(x, Var) else x.op  # noqa: E731
    assert name(e) == root
    if right is None:
        assert name(e.a) == left
    else:
        assert (name(e.a), name(e.b)) == (left, right)
    again = expr_of(print_expr(e))
    assert again == e
    assert print_expr(again) == print_expr(e)


@pytest.mark.parametrize("text, root", [
    ("a < b && b <= c || c > a", "lor"),
    ("a < b || b >= c && c != a", "lor"),
    ("(a < b || b >= c) && c == a", "land"),
    ("!(a < b) && !(b < c)", "land"),
    ("!(a < b && b < c)", "lnot"),
    ("a + 1 < b << 2", "lt"),
    ("a & b == c & a", None),  # '==' binds tighter than '&': a type error (bool operand)
])
def test_boolean_precedence(text, root):
    if root is None:
        with pytest.raises(KgenError, match="condition"):
            bool_of(text)
        return
    e = bool_of(text)
    assert e.op == root
    assert bool_of(print_expr(e)) == e


_ALL_BIN = ["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^"]
_ALL_CMP = ["<", "<=", ">", ">=", "==", "!="]


@pytest.mark.parametrize("op1", _ALL_BIN)
def test_every_operator_pair_roundtrips(op1):
    """Every pair of integer operators, in every grouping, prints back to an equal tree."""
    for op2 in _ALL_BIN:
        for text in (f"a {op1} b {op2} c", f"(a {op1} b) {op2} c", f"a {op1} (b {op2} c)",
                     f"-a {op1} ~b {op2} -(c {op1} a)"):
            e = expr_of(text)
            assert expr_of(print_expr(e)) == e, text
    for cmp in _ALL_CMP:
        op2 = _ALL_BIN[(_ALL_BIN.index(op1) + 3) % len(_ALL_BIN)]
        for text in (f"(a {op1} b) {cmp} (c {op2} a)", f"a {cmp} b && (b {op1} c) {cmp} a || !(c {cmp} a)"):
            e = bool_of(text)
            assert bool_of(print_expr(e)) == e, text


@pytest.mark.parametrize("t", DATA_TYPES)
def test_casts_and_literals_of_every_type(t):
    k = parse_kernel(f"kernel c(a: i32, v: {t}, Y: out {t}[2]) {{\n"
                     f"    var z: {t} = {t}(a) + v;\n    Y[0] = z;\n    Y[1] = {t}(0x7f) ^ {t}(z + 1);\n}}\n")
    roundtrip(print_kernel(k))
    assert k.body[0].init.a == Cast(Var("a", k.param("a").type), k.param("v").type)


@pytest.mark.parametrize("text", [
    "min(a, b)", "max(a, 3)", "clip(a, -128, 127)", "abs(a - b)", "select(a < b, a, b)",
    "i32(requant(a, b, 7))", "i32(requant(a, 1073741824, 31, floor))", "i32(requant(a, b, 0, nearest))",
    "min(max(a, b), clip(c, a, b))", "-2147483648 + a", "a * -1", "0x7fffffff & a", "- - -a",
    "-(-(a))", "~~a", "a - -b", "i32(i8(i16(a)))", "i32(!(a < b))",
])
def test_builtins_and_unary_roundtrip(text):
    e = expr_of(text)
    assert expr_of(print_expr(e)) == e


def test_requant_default_mode_is_floor():
    assert expr_of("i32(requant(a, b, 3))") == expr_of("i32(requant(a, b, 3, floor))")
    assert expr_of("i32(requant(a, b, 3))") != expr_of("i32(requant(a, b, 3, nearest))")


def test_else_if_equals_nested_if():
    body = "if a < b {{ Y[0] = 1; }} else {mid} B[0] = i32(x) + f;"
    flat = parse_kernel(HEAD + body.format(mid="if a < c { Y[0] = 2; } else { Y[0] = 3; }") + "}")
    nested = parse_kernel(HEAD + body.format(mid="{ if a < c { Y[0] = 2; } else { Y[0] = 3; } }") + "}")
    assert flat == nested
    roundtrip(print_kernel(flat))


def test_comments_and_whitespace_do_not_matter():
    plain = parse_kernel(HEAD + "    Y[0] = a + b;\n    B[0] = i32(x) + f;\n}\n")
    noisy = parse_kernel("# doc\n" + HEAD.replace("(", "(  # params\n").replace(", ", " ,\n\t")
                         + "  Y [ 0 ] =  # comment inside a statement\n a\n+\tb ;   #c\n"
                         "    B[0] = i32(x) + f; # more\n} # end\n# after\n")
    assert plain == noisy
    assert noisy.doc == "doc" and plain.doc == ""


def test_equality_ignores_locations_but_not_structure():
    a = parse_kernel(HEAD + "Y[0] = a + b; B[0] = i32(x) + f; }")
    b = parse_kernel("\n\n" + HEAD + "   Y[0]   =   a+b;\nB[0] = i32(x) + f;}")
    c = parse_kernel(HEAD + "Y[0] = b + a; B[0] = i32(x) + f; }")
    assert a == b and a != c
    assert a.body[0].loc != b.body[0].loc


def test_hex_and_negative_literals_print_in_decimal():
    e = expr_of("a + 0x10 * -3")
    assert print_expr(e) == "a + 16 * -3"


def test_parse_kernel_requires_exactly_one_kernel():
    with pytest.raises(KgenError, match="exactly one kernel, found 2"):
        parse_kernel(EVERYTHING)
    with pytest.raises(KgenError, match="unexpected end of file"):
        parse_kernel("# only a comment\n")


def test_buffer_direction_defaults_to_in():
    k = parse_kernel("kernel d(X: i8[M], Y: out i8[M]) { for m in 0..M { Y[m] = X[m]; } }")
    assert k.param("X").direction == "in"


# ----------------------------------------------------------------------------------- property test

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), t=st.sampled_from(DATA_TYPES), depth=st.integers(1, 5))
def test_random_expressions_roundtrip(seed, t, depth):
    gen = ExprGen(random.Random(seed))
    body = [f"    R[{i}] = i64({gen.expr(t, depth)});" for i in range(3)]
    body.append(f"    if {gen.cond(depth)} {{ R[3] = 1; }} else {{ R[3] = 0; }}")
    text = f"kernel r({scalar_params_text()}, R: out i64[4]) {{\n" + "\n".join(body) + "\n}\n"
    try:
        parse_kernel(text)
    except KgenError as exc:  # e.g. a literal-only subexpression that does not fit: fine, but located
        assert exc.loc is not None
        return
    roundtrip(text)
