"""The arithmetic of the DSL, defined once in Python.

Both interpreters (the tree walker used for constants and ISA semantics, and the compiled
reference interpreter used as the test oracle) call these functions, so the language has exactly
one definition of what ``>>``, ``/`` or ``requant`` mean.

- Data types wrap around (two's complement); ``idx`` is unbounded.
- ``/`` and ``%`` truncate toward zero, like C99.  Division by zero is an error.
- ``>>`` is arithmetic; shift amounts outside 0..bits-1 are an error (undefined in C).
- ``requant(acc, mul, shift, mode)`` = clip((acc*mul + r) >> shift, -128, 127) where the product and
  the sum wrap to 32 bits and r = 0 (``floor``) or 2**(shift-1) (``nearest``, shift > 0).
"""
from __future__ import annotations

from .ir import Type


class SemanticsError(ValueError):
    """An operation with no defined result (division by zero, shift out of range, ...)."""


def wrap(value: int, t: Type) -> int:
    return t.wrap(value)


def tdiv(a: int, b: int) -> int:
    if b == 0:
        raise SemanticsError("division by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def tmod(a: int, b: int) -> int:
    return a - b * tdiv(a, b)


def shift_amount(s: int, t: Type) -> int:
    limit = t.bits if t.is_data else 63
    if not 0 <= s < limit:
        raise SemanticsError(f"shift amount {s} out of range 0..{limit - 1} for {t}")
    return s


def requant(acc: int, mul: int, shift: int, mode: str) -> int:
    if not 0 <= shift <= 31:
        raise SemanticsError(f"requant shift {shift} out of range 0..31")
    t = acc * mul
    if mode == "nearest" and shift > 0:
        t += 1 << (shift - 1)
    t = ((t + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return min(max(t >> shift, -128), 127)


def apply_bin(op: str, a: int, b: int, t: Type) -> int:
    """Value of ``a op b`` where ``t`` is the operands' type."""
    if op == "add":
        return wrap(a + b, t)
    if op == "sub":
        return wrap(a - b, t)
    if op == "mul":
        return wrap(a * b, t)
    if op == "div":
        return wrap(tdiv(a, b), t)
    if op == "mod":
        return wrap(tmod(a, b), t)
    if op == "shl":
        return wrap(a << shift_amount(b, t), t)
    if op == "shr":
        return a >> shift_amount(b, t)
    if op == "and":
        return wrap(a & b, t)
    if op == "or":
        return wrap(a | b, t)
    if op == "xor":
        return wrap(a ^ b, t)
    if op == "lt":
        return int(a < b)
    if op == "le":
        return int(a <= b)
    if op == "gt":
        return int(a > b)
    if op == "ge":
        return int(a >= b)
    if op == "eq":
        return int(a == b)
    if op == "ne":
        return int(a != b)
    if op == "land":
        return int(bool(a) and bool(b))
    if op == "lor":
        return int(bool(a) or bool(b))
    raise ValueError(op)


def apply_un(op: str, a: int, t: Type) -> int:
    if op == "neg":
        return wrap(-a, t)
    if op == "bnot":
        return wrap(~a, t)
    if op == "lnot":
        return int(not a)
    raise ValueError(op)


def apply_call(fn: str, args: list[int], t: Type, flags: tuple[str, ...]) -> int:
    if fn == "min":
        return min(args)
    if fn == "max":
        return max(args)
    if fn == "clip":
        return min(max(args[0], args[1]), args[2])
    if fn == "abs":
        return wrap(abs(args[0]), t)
    if fn == "select":
        return args[1] if args[0] else args[2]
    if fn == "requant":
        return requant(args[0], args[1], args[2], flags[0])
    raise ValueError(f"no semantics for function {fn}")
