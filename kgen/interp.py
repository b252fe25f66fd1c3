"""Reference interpreter: the oracle for every test and every ISA.

A kernel plus concrete sizes is translated to a Python function over flat lists of Python ints
(fast enough for the shapes we verify, and exact: every operation goes through
:mod:`kgen.semantics`).  Output buffers start out as ``None`` so that a kernel that leaves an
output element unwritten, or reads a value it never wrote, fails loudly instead of passing by luck.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any, Mapping

import numpy as np

from . import semantics as sem
from .ir import (BOOL, IDX, LIT, Alloc, Assign, Bin, BufferParam, Call, Cast, Const, Decl, Expr,
                 For, If, Kernel, Load, Stmt, Store, Type, Un, Var, View)


#: Initial value of output storage that a strided output's view does not cover (harnesses fill
#: outputs with it before the call, so untouched gaps must still hold it afterwards).
CANARY = 0x5A


def eval_expr(e: Expr, env: Mapping[str, Any]) -> int:
    """Tree-walking evaluation; names map to ints, indexed names to sequences (ISA lanes)."""
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Var):
        return int(env[e.name])
    if isinstance(e, Load):
        seq = env[e.buf]
        return int(seq[eval_expr(e.index[0], env)]) if len(e.index) == 1 else int(
            seq[tuple(eval_expr(i, env) for i in e.index)])
    if isinstance(e, Bin):
        if e.op in ("land", "lor"):
            a = eval_expr(e.a, env)
            if (e.op == "land" and not a) or (e.op == "lor" and a):
                return int(bool(a))
            return int(bool(eval_expr(e.b, env)))
        return sem.apply_bin(e.op, eval_expr(e.a, env), eval_expr(e.b, env), e.a.type)
    if isinstance(e, Un):
        return sem.apply_un(e.op, eval_expr(e.a, env), e.type)
    if isinstance(e, Cast):
        return e.type.wrap(eval_expr(e.a, env))
    if isinstance(e, Call):
        if e.fn == "select":
            return eval_expr(e.args[1], env) if eval_expr(e.args[0], env) else eval_expr(e.args[2], env)
        return sem.apply_call(e.fn, [eval_expr(a, env) for a in e.args], e.type, e.flags)
    raise TypeError(e)


def eval_const(e: Expr) -> int:
    """Value of an expression without names (raises KeyError if it has any)."""
    return eval_expr(e, {})


# ------------------------------------------------------------------------------ compiled form


def storage_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def storage_size(shape: tuple[int, ...], strides: tuple[int, ...]) -> int:
    if any(d <= 0 for d in shape):
        return 0
    return 1 + sum((d - 1) * s for d, s in zip(shape, strides))


@dataclass(frozen=True)
class _Layout:
    storage: str  # Python name of the flat list
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: str  # Python expression


class _Compiler:
    def __init__(self, kernel: Kernel, sizes: Mapping[str, int], checked: bool) -> None:
        self.sizes = dict(sizes)
        self.checked = checked
        self.layouts: dict[str, _Layout] = {}
        self.lines: list[str] = []
        for p in kernel.buffers:
            shape = tuple(self.const(d) for d in p.shape)
            strides = tuple(self.const(s) for s in p.strides) if p.strides else storage_strides(shape)
            self.layouts[p.name] = _Layout(f"b_{p.name}", shape, strides, "0")

    def const(self, e: Expr) -> int:
        return eval_expr(e, self.sizes)

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    # expressions -------------------------------------------------------------------
    def ex(self, e: Expr) -> str:
        if isinstance(e, Const):
            return repr(e.value)
        if isinstance(e, Var):
            return repr(self.sizes[e.name]) if e.name in self.sizes else f"v_{e.name}"
        if isinstance(e, Load):
            lay = self.layouts[e.buf]
            if e.type.lanes > 1:  # packed register: consecutive elements of the last dimension
                off = self.offset(e.buf, e.index)
                return "[" + ", ".join(f"{lay.storage}[{off} + {i * lay.strides[-1]}]"
                                       for i in range(e.type.lanes)) + "]"
            return f"{lay.storage}[{self.offset(e.buf, e.index)}]"
        if isinstance(e, Bin):
            a, b, t = self.ex(e.a), self.ex(e.b), e.a.type
            if e.op == "land":
                return f"({a} and {b})"
            if e.op == "lor":
                return f"({a} or {b})"
            simple = {"add": "+", "sub": "-", "mul": "*", "and": "&", "or": "|", "xor": "^"}
            cmp = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
            if e.op in cmp:
                return f"({a} {cmp[e.op]} {b})"
            if e.op in simple:
                return self.wrap(f"{a} {simple[e.op]} {b}", t)
            return f"_bin({e.op!r}, {a}, {b}, {self.tname(t)})"
        if isinstance(e, Un):
            if e.op == "lnot":
                return f"(not {self.ex(e.a)})"
            return self.wrap(f"{'-' if e.op == 'neg' else '~'}{self.paren(self.ex(e.a))}", e.type)
        if isinstance(e, Cast):
            inner = self.ex(e.a)
            if e.a.type == BOOL:
                inner = f"int({inner})"
            src = e.a.type
            if not e.type.is_data:
                return inner  # idx(value): the value itself (check.py proved its range)
            if src.is_data and src.min >= e.type.min and src.max <= e.type.max:
                return inner  # widening: the value is representable, nothing to wrap
            return self.wrap(inner, e.type)
        if isinstance(e, Call):
            args = [self.ex(a) for a in e.args]
            if e.fn in ("min", "max"):
                return f"{e.fn}({args[0]}, {args[1]})"
            if e.fn == "clip":
                return f"min(max({args[0]}, {args[1]}), {args[2]})"
            if e.fn == "select":
                return f"({args[1]} if {args[0]} else {args[2]})"
            if e.fn == "requant":
                return f"_requant({args[0]}, {args[1]}, {args[2]}, {e.flags[0]!r})"
            if e.fn.startswith("isa."):
                return f"_isa({e.fn!r}, [{', '.join(args)}])"
            return f"_call({e.fn!r}, [{', '.join(args)}], {self.tname(e.type)}, {e.flags!r})"
        raise TypeError(e)

    @staticmethod
    def paren(text: str) -> str:
        return f"({text})"

    @staticmethod
    def tname(t: Type) -> str:
        return f"_T[{t.name!r}]"

    @staticmethod
    def wrap(text: str, t: Type) -> str:
        if not t.is_data:
            return f"({text})"
        mask = (1 << t.bits) - 1
        if t.signed:
            half = 1 << (t.bits - 1)
            return f"(((({text}) + {half}) & {mask}) - {half})"
        return f"(({text}) & {mask})"

    def offset(self, buf: str, index: tuple[Expr, ...]) -> str:
        lay = self.layouts[buf]
        parts = [lay.offset] if lay.offset != "0" else []
        for i, (ix, stride) in enumerate(zip(index, lay.strides)):
            text = self.ex(ix)
            if self.checked:
                text = f"_chk({text}, {lay.shape[i]}, {buf!r}, {i})"
            parts.append(text if stride == 1 else f"{text} * {stride}")
        return " + ".join(parts) or "0"

    # statements -------------------------------------------------------------------
    def body(self, stmts: tuple[Stmt, ...], depth: int) -> None:
        if not stmts:
            self.emit(depth, "pass")
        for s in stmts:
            self.stmt(s, depth)

    def stmt(self, s: Stmt, depth: int) -> None:
        if isinstance(s, For):
            self.emit(depth, f"for v_{s.var} in range({self.ex(s.lo)}, {self.ex(s.hi)}):")
            self.body(s.body, depth + 1)
        elif isinstance(s, Decl):
            self.emit(depth, f"v_{s.name} = {self.ex(s.init) if s.init is not None else 'None'}")
        elif isinstance(s, Alloc):
            shape = tuple(self.const(d) for d in s.shape)
            self.layouts[s.name] = _Layout(f"b_{s.name}", shape, storage_strides(shape), "0")
            self.emit(depth, f"b_{s.name} = [None] * {prod(shape)}")
        elif isinstance(s, View):
            base = self.layouts[s.base]
            shape = tuple(self.const(d) for d in s.shape)
            strides = tuple(self.const(x) for x in s.strides)
            off_name = f"o_{s.name}"
            self.emit(depth, f"{off_name} = {self.ex(s.offset)}")
            self.layouts[s.name] = _Layout(base.storage, shape, strides, off_name)
        elif isinstance(s, Assign):
            self.emit(depth, f"v_{s.name} = {self.ex(s.value)}")
        elif isinstance(s, Store):
            lay = self.layouts[s.buf]
            self.emit(depth, f"{lay.storage}[{self.offset(s.buf, s.index)}] = {self.ex(s.value)}")
        elif isinstance(s, If):
            self.emit(depth, f"if {self.ex(s.cond)}:")
            self.body(s.then, depth + 1)
            if s.orelse:
                self.emit(depth, "else:")
                self.body(s.orelse, depth + 1)
        else:
            raise TypeError(s)


def _chk(i: int, n: int, buf: str, dim: int) -> int:
    if not 0 <= i < n:
        raise IndexError(f"index {i} out of range 0..{n - 1} in dimension {dim} of '{buf}'")
    return i


_RUNTIME = {"_bin": sem.apply_bin, "_call": sem.apply_call, "_requant": sem.requant, "_chk": _chk}


def _isa(fn: str, args: list) -> Any:
    from .isafile import isa_of_call

    return isa_of_call(fn).evaluate(args)


def _runtime() -> dict[str, Any]:
    from .ir import SCALAR_TYPES

    env = dict(_RUNTIME)
    env["_T"] = {**SCALAR_TYPES, "idx": IDX, "bool": BOOL, "lit": LIT}
    env["_isa"] = _isa
    return env


def buffer_extent(p: BufferParam, sizes: Mapping[str, int]) -> int:
    shape = tuple(eval_expr(d, sizes) for d in p.shape)
    strides = tuple(eval_expr(s, sizes) for s in p.strides) if p.strides else storage_strides(shape)
    return storage_size(shape, strides)


def buffer_shape(p: BufferParam, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The array shape a caller passes: the logical shape, or flat storage for strided buffers."""
    if p.strides:
        return (buffer_extent(p, sizes),)
    return tuple(eval_expr(d, sizes) for d in p.shape)


def compile_kernel(kernel: Kernel, sizes: Mapping[str, int], checked: bool = False):
    """Python function ``f(**buffers_and_scalars)`` running ``kernel`` at the given sizes."""
    missing = [s for s in kernel.sizes if s not in sizes]
    if missing:
        raise ValueError(f"kernel {kernel.name}: missing sizes {', '.join(missing)}")
    comp = _Compiler(kernel, sizes, checked)
    args = [f"b_{p.name}" if isinstance(p, BufferParam) else f"v_{p.name}" for p in kernel.params]
    comp.emit(0, f"def _kernel({', '.join(args)}):")
    comp.body(kernel.body, 1)
    src = "\n".join(comp.lines)
    namespace = _runtime()
    exec(compile(src, f"<kgen reference {kernel.name}>", "exec"), namespace)
    return namespace["_kernel"]


def run_reference(kernel: Kernel, sizes: Mapping[str, int], args: Mapping[str, Any],
                  checked: bool = False) -> dict[str, np.ndarray]:
    """Execute ``kernel``; returns the final contents of every out/inout buffer.

    ``args`` maps input buffers to integer numpy arrays (logical shape, or flat storage for
    buffers with explicit strides) and scalar parameters to ints.  Raises
    :class:`~kgen.semantics.SemanticsError` on undefined operations and ``ValueError`` when an
    output element is left unwritten.
    """
    for w in kernel.where:
        if not eval_expr(w, sizes):
            from .printer import print_expr

            raise ValueError(f"sizes {dict(sizes)} violate constraint '{print_expr(w)}'")
    fn = compile_kernel(kernel, sizes, checked)
    call_args = []
    outs: dict[str, list] = {}
    for p in kernel.params:
        if isinstance(p, BufferParam):
            n = buffer_extent(p, sizes)
            if p.direction == "out":
                data: list = [None] * n
            else:
                arr = np.asarray(args[p.name])
                if arr.size != n:
                    raise ValueError(f"buffer {p.name}: expected {n} elements, got {arr.size}")
                data = [int(x) for x in arr.reshape(-1)]
                if data and (min(data) < p.type.min or max(data) > p.type.max):
                    raise ValueError(f"buffer {p.name}: values outside the range of {p.type}")
            if p.direction != "in":
                outs[p.name] = data
            call_args.append(data)
        else:
            v = int(args[p.name])
            if p.type.wrap(v) != v:
                raise ValueError(f"scalar {p.name}={v} does not fit in {p.type}")
            call_args.append(v)
    try:
        fn(*call_args)
    except TypeError as exc:  # arithmetic on None: a value read before it was written
        raise ValueError(f"kernel {kernel.name} reads a value before writing it ({exc})") from None
    result = {}
    for p in kernel.buffers:
        if p.name in outs:
            data = outs[p.name]
            if p.strides is None and any(v is None for v in data):
                first = next(i for i, v in enumerate(data) if v is None)
                raise ValueError(f"kernel {kernel.name} leaves element {first} of output '{p.name}' unwritten")
            dtype = np.dtype(f"{'' if p.type.signed else 'u'}int{p.type.bits}")
            filled = [CANARY if v is None else v for v in data]
            result[p.name] = np.array(filled, dtype=dtype).reshape(buffer_shape(p, sizes))
    return result
