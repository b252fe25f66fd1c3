"""Typing rules shared by the DSL front end, the ISA-semantics parser and the rewrites.

Integer literals start with the placeholder type ``lit`` and take the type of the typed operand
they meet (or of their context); :func:`coerce` finalises them and checks that the value fits.
"""
from __future__ import annotations

from typing import Callable

from .errors import KgenError
from .ir import (BOOL, COMPARISONS, I8, I32, IDX, LIT, LOGICAL, Bin, Call, Cast, Const, Expr,
                 Loc, Type, Un, Var, Load)

ErrorFn = Callable[[str, Loc | None], KgenError]


def fold_literal(e: Expr) -> int | None:
    """The value of an expression made only of literals (None when it holds anything else)."""
    from .interp import eval_const  # local import: interp depends on this module

    try:
        return eval_const(e)
    except (KeyError, ValueError, ZeroDivisionError, TypeError):
        return None


def retype_literal(e: Expr, t: Type) -> Expr:
    """Replace the ``lit`` type inside a literal expression by ``t``."""
    if e.type != LIT:
        return e
    if isinstance(e, Const):
        return Const(e.value, t, e.loc)
    if isinstance(e, Un):
        return Un(e.op, retype_literal(e.a, t), t, e.loc)
    if isinstance(e, Bin):
        return Bin(e.op, retype_literal(e.a, t), retype_literal(e.b, t), t, e.loc)
    if isinstance(e, Call):
        args = tuple(retype_literal(a, t) for a in e.args)
        return Call(e.fn, args, t, e.flags, e.loc)
    raise TypeError(e)


def coerce(e: Expr, t: Type, err: ErrorFn, what: str = "value") -> Expr:
    """Give expression ``e`` type ``t``: literals adapt, anything else must already match."""
    if e.type == t:
        return e
    if e.type == LIT:
        if t == BOOL:
            raise err(f"{what} must be a condition (bool), got an integer literal", e.loc)
        value = fold_literal(e)
        if t.is_data and value is not None and not (t.min <= value <= t.max):
            raise err(f"constant {value} does not fit in {t} (range {t.min}..{t.max})", e.loc)
        return retype_literal(e, t)
    hint = f"; write {t}(...) to convert explicitly" if t.is_data and e.type.is_data else ""
    raise err(f"type mismatch: {what} has type {e.type}, expected {t}{hint}", e.loc)


def unify(a: Expr, b: Expr, err: ErrorFn, op: str) -> tuple[Expr, Expr, Type]:
    """Operands of a binary operator: both get the same type (literals adapt)."""
    if a.type == LIT and b.type == LIT:
        return a, b, LIT
    if a.type == LIT:
        return coerce(a, b.type, err), b, b.type
    if b.type == LIT:
        return a, coerce(b, a.type, err), a.type
    if a.type != b.type:
        hint = "; cast one operand explicitly, e.g. i32(x)" if a.type.is_data and b.type.is_data else ""
        raise err(f"type mismatch in '{op}': {a.type} and {b.type}{hint}", a.loc)
    return a, b, a.type


def make_bin(op: str, a: Expr, b: Expr, loc: Loc | None, err: ErrorFn) -> Expr:
    """Build a typed binary expression following the DSL's typing rules."""
    from .ir import BINOPS

    sym = BINOPS[op]
    if op in LOGICAL:
        a = coerce(a, BOOL, err, f"operand of '{sym}'")
        b = coerce(b, BOOL, err, f"operand of '{sym}'")
        return Bin(op, a, b, BOOL, loc)
    if a.type == BOOL or b.type == BOOL:
        raise err(f"'{sym}' needs integer operands, got a condition (bool)", loc)
    if op in ("shl", "shr"):
        # The shift amount may have any integer type; the result has the type of the shifted value.
        if a.type == LIT and b.type != LIT:
            a = coerce(a, I32, err)
        if b.type == LIT and a.type != LIT:
            b = coerce(b, I32 if a.type.is_data else IDX, err)
        return Bin(op, a, b, a.type, loc)
    a, b, t = unify(a, b, err, sym)
    if op in COMPARISONS:
        if t == LIT:
            a, b = coerce(a, I32, err), coerce(b, I32, err)
        return Bin(op, a, b, BOOL, loc)
    if t == IDX and op in ("and", "or", "xor"):
        raise err(f"'{sym}' is not allowed on index expressions", loc)
    return Bin(op, a, b, t, loc)


def make_un(op: str, a: Expr, loc: Loc | None, err: ErrorFn) -> Expr:
    if op == "lnot":
        return Un(op, coerce(a, BOOL, err, "operand of '!'"), BOOL, loc)
    if a.type == BOOL:
        raise err("arithmetic on a condition (bool)", loc)
    return Un(op, a, a.type, loc)


def make_cast(t: Type, a: Expr, loc: Loc | None, err: ErrorFn) -> Expr:
    if a.type == LIT:
        a = coerce(a, t, err)
    return Cast(a, t, loc)


#: Rounding modes of ``requant``: floor (the paper's plain arithmetic shift) and round-to-nearest
#: with ties toward +infinity (add 2**(shift-1) before the shift).
ROUNDING_MODES = ("floor", "nearest")


def make_call(fn: str, args: list[Expr], flags: list[str], loc: Loc | None, err: ErrorFn) -> Expr:
    """Type a builtin call.  ``flags`` are bare names such as the rounding mode of ``requant``."""

    def arity(n: int) -> None:
        if len(args) != n:
            raise err(f"{fn}() takes {n} argument{'s' if n != 1 else ''}, got {len(args)}", loc)

    def no_flags() -> None:
        if flags:
            raise err(f"{fn}() has no option '{flags[0]}'", loc)

    if fn in ("min", "max"):
        arity(2)
        no_flags()
        a, b, t = unify(args[0], args[1], err, fn)
        if t == BOOL:
            raise err(f"{fn}() needs integer operands", loc)
        return Call(fn, (a, b), t, (), loc)
    if fn == "clip":
        arity(3)
        no_flags()
        x, lo, t = unify(args[0], args[1], err, fn)
        x, hi, t = unify(x, args[2], err, fn)
        lo = coerce(lo, t, err) if t != LIT else lo
        if not t.is_data:
            raise err("clip() needs a data-typed operand (e.g. an i32 accumulator)", loc)
        return Call(fn, (x, lo, hi), t, (), loc)
    if fn == "abs":
        arity(1)
        no_flags()
        if not args[0].type.is_data:
            raise err("abs() needs a data-typed operand", loc)
        return Call(fn, (args[0],), args[0].type, (), loc)
    if fn == "select":
        arity(3)
        no_flags()
        c = coerce(args[0], BOOL, err, "condition of select()")
        a, b, t = unify(args[1], args[2], err, fn)
        if t == LIT:
            a, b, t = coerce(a, I32, err), coerce(b, I32, err), I32
        return Call(fn, (c, a, b), t, (), loc)
    if fn == "requant":
        arity(3)
        if len(flags) > 1 or (flags and flags[0] not in ROUNDING_MODES):
            bad = flags[1] if len(flags) > 1 else flags[0]
            raise err(f"requant() rounding mode must be one of {', '.join(ROUNDING_MODES)}, got '{bad}'", loc)
        acc = coerce(args[0], I32, err, "requant() accumulator")
        mul = coerce(args[1], I32, err, "requant() multiplier")
        shift = coerce(args[2], I32, err, "requant() shift")
        return Call(fn, (acc, mul, shift), I8, (flags[0] if flags else "floor",), loc)
    raise err(f"unknown function '{fn}'; builtins are min, max, clip, abs, select, requant", loc)


BUILTIN_FUNCTIONS = ("min", "max", "clip", "abs", "select", "requant")


def is_index_expr(e: Expr) -> bool:
    return e.type in (IDX, LIT)


def default_literal(e: Expr, err: ErrorFn) -> Expr:
    """Give a literal that met no typed context the default data type i32."""
    return coerce(e, I32, err) if e.type == LIT else e


__all__ = ["coerce", "unify", "make_bin", "make_un", "make_cast", "make_call", "ROUNDING_MODES",
           "BUILTIN_FUNCTIONS", "default_literal", "is_index_expr", "Var", "Load"]
