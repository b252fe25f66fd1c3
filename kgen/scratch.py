"""Scratch memory: which local arrays of a kernel live in the caller's buffer, and where.

The placement rule (documented in README.md, "Use the generated library"):

* every local array (IR ``Alloc``) at **function scope** — the top level of the kernel body, or
  the top level of a one-core region (``kgen_serial``) of a multi-core kernel — and every local
  array whose size is only known at run time is carved out of a scratch buffer that the caller
  passes as the kernel's last parameter (``void *restrict scratch``);
* so is every local array larger than :data:`STACK_LIMIT` bytes nested inside loops (the run-time
  copies of a contraction's operands, declared where the copy runs so that copies of different
  loop nests can share bytes), except inside multi-core loops;
* smaller local arrays of constant size nested inside loops (the per-tile staging buffers of
  register-blocked kernels: at most a few hundred bytes, private to the core that runs the
  iteration) stay on the stack.

Each scratch array starts at an 8-byte aligned offset (the buffer itself must be 8-byte aligned)
and takes its size rounded up to 8 bytes.  Arrays whose lifetimes do not overlap share bytes:
a lifetime runs from the array's declaration to the last statement of its scope that uses it (or a
view of it).  With constant sizes the planner is greedy first-fit by decreasing size (as
TensorFlow Lite Micro's planner); with run-time sizes an array is placed above every overlapping
array placed before it, longest-lived first, and offsets are ``max`` expressions of the sizes.

In a multi-core kernel an array's lifetime extends to the next barrier after its last use (the
cores are only in step at barriers), and arrays a split loop privatises take one copy per core.

The plan is computed from the lowered IR that is emitted, so ``<function>_get_buffer_size()``,
the offsets in the C body and ``manifest.json`` cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import sympy as sp

from .errors import KgenError
from .ir import (Alloc, Bin, Call, Const, Expr, For, Kernel, Load, Stmt, Store, Un, Var, View, stmt_exprs,
                 sub_bodies, walk_expr, walk_stmts)

ALIGN = 8
#: Bytes above which a local array never goes on the stack (Cortex-M stacks are a few kB).
STACK_LIMIT = 1024


class Round8(sp.Function):
    """``x`` rounded up to a multiple of 8 (sizes are integers ≥ 0)."""

    is_integer = True

    @classmethod
    def eval(cls, x):  # noqa: D102
        if x.is_Integer:
            return sp.Integer(-(-int(x) // ALIGN) * ALIGN)
        terms = sp.Add.make_args(sp.expand(x))
        if all(t.as_coeff_Mul()[0].is_Integer and int(t.as_coeff_Mul()[0]) % ALIGN == 0 for t in terms):
            return x
        return None

    def _eval_is_positive(self):
        return self.args[0].is_positive

    def _eval_is_nonnegative(self):
        return self.args[0].is_nonnegative


@dataclass(frozen=True)
class ScratchArray:
    name: str  # the Alloc's name (its C pointer is ``<name>_storage``)
    ctype: str
    size: sp.Expr  # bytes, rounded up to 8
    offset: sp.Expr  # bytes from the start of the buffer, a multiple of 8
    live: tuple[int, int]  # first and last statement (pre-order numbers) of its lifetime


@dataclass(frozen=True)
class ScratchPlan:
    arrays: tuple[ScratchArray, ...]
    total: sp.Expr  # bytes the kernel needs
    symbols: tuple[str, ...]  # size arguments of get_buffer_size (the kernel's run-time sizes)

    @property
    def constant(self) -> int | None:
        """The byte count when it does not depend on run-time sizes."""
        return int(self.total) if self.total.is_Integer else None

    def bytes_for(self, sizes: Mapping[str, int]) -> int:
        """Bytes needed for concrete sizes."""
        value = self.total.subs({sp.Symbol(s, integer=True, positive=True): int(sizes[s]) for s in self.symbols})
        return int(value)

    def offset_c(self, name: str) -> str:
        """C expression of an array's byte offset (for the kernel body)."""
        arr = next(a for a in self.arrays if a.name == name)
        return c_size_expr(arr.offset)

    def total_c(self) -> str:
        return c_size_expr(self.total)

    def formula(self) -> str:
        """The byte count as a readable formula (manifest.json)."""
        return str(self.total).replace("Round8", "round8")


def _positive_symbols(kernel: Kernel) -> dict[str, sp.Symbol]:
    return {s: sp.Symbol(s, integer=True, positive=True) for s in kernel.sizes}


def _to_sympy(e: Expr, symbols: dict[str, sp.Symbol]) -> sp.Expr:
    if isinstance(e, Const):
        return sp.Integer(e.value)
    if isinstance(e, Var) and e.name in symbols:
        return symbols[e.name]
    if isinstance(e, Bin) and e.op in ("add", "sub", "mul", "div"):
        a, b = _to_sympy(e.a, symbols), _to_sympy(e.b, symbols)
        if e.op == "div":
            if not b.is_Integer or int(b) <= 0:
                raise KgenError(f"scratch array size: cannot divide by {b}", getattr(e, "loc", None))
            return sp.floor(a / b)
        return a + b if e.op == "add" else a - b if e.op == "sub" else a * b
    if isinstance(e, Un) and e.op == "neg":
        return -_to_sympy(e.a, symbols)
    if isinstance(e, Call) and e.fn in ("min", "max"):
        args = [_to_sympy(a, symbols) for a in e.args]
        return sp.Min(*args) if e.fn == "min" else sp.Max(*args)
    raise KgenError(f"scratch array size must be an expression of the kernel's sizes, got {e}")


def _bytes(a: Alloc) -> int:
    """Bytes of a constant-size local array."""
    n = a.type.bits // 8
    for d in a.shape:
        n *= d.value if isinstance(d, Const) else 0
    return n


@dataclass
class _Local:
    alloc: Alloc
    index: int  # position in its statement list
    scratch: bool
    live: tuple[int, int] = (0, 0)


class _Lifetimes:
    """Pre-order numbering of statements and, for each Alloc, the span of its lifetime."""

    def __init__(self) -> None:
        self.counter = 0
        self.locals: list[_Local] = []

    def walk(self, stmts: tuple[Stmt, ...], scope: dict[str, int], function_scope: bool,
             parallel: bool) -> set[int]:
        scope = dict(scope)
        entries: list[tuple[int, int, set[int]]] = []
        mine: list[int] = []
        for s in stmts:
            pre = self.counter
            self.counter += 1
            refs: set[int] = set()
            if isinstance(s, Alloc):
                constant = all(not any(isinstance(x, Var) for x in walk_expr(d)) for d in s.shape)
                in_scratch = function_scope or not constant or (not parallel and _bytes(s) > STACK_LIMIT)
                if in_scratch and parallel:
                    raise KgenError(f"local array {s.name} has a run-time size inside a multi-core loop: "
                                    "it cannot be placed in the (shared) scratch buffer", s.loc)
                key = len(self.locals)
                self.locals.append(_Local(s, len(entries), in_scratch))
                scope[s.name] = key
                mine.append(key)
                refs.add(key)
            elif isinstance(s, View):
                if s.base in scope:
                    scope[s.name] = scope[s.base]
                    refs.add(scope[s.base])
            if isinstance(s, Store) and s.buf in scope:
                refs.add(scope[s.buf])
            for e in stmt_exprs(s):
                refs.update(scope[x.buf] for x in walk_expr(e) if isinstance(x, Load) and x.buf in scope)
            for body in sub_bodies(s):
                serial = isinstance(s, For) and s.var == "kgen_serial" and function_scope
                par = parallel or (isinstance(s, For) and s.has("parallel") and s.var != "kgen_serial")
                refs |= self.walk(body, scope, serial, par)
            entries.append((pre, self.counter - 1, refs))
        for key in mine:
            loc = self.locals[key]
            last = max(post for _, post, refs in entries[loc.index:] if key in refs)
            loc.live = (entries[loc.index][0], last)
        return set().union(*(refs for _, _, refs in entries)) - set(mine)


def _extend_to_barriers(body: tuple[Stmt, ...], locals_: list[_Local]) -> None:
    """Multi-core kernels: cores run a region at their own pace until the next barrier, so an array
    lives until the first top-level ``kgen_barrier`` after the statement that last uses it (or to
    the end of the function); arrays share bytes only across a barrier."""
    pre = [0]
    for s in body:
        pre.append(pre[-1] + sum(1 for _ in walk_stmts((s,))))
    barriers = [i for i, s in enumerate(body) if isinstance(s, For) and s.has("barrier") and not s.body]
    for loc in locals_:
        i = max(j for j in range(len(body)) if pre[j] <= loc.live[1])
        nxt = next((b for b in barriers if b > i), None)
        loc.live = (loc.live[0], pre[nxt] if nxt is not None else pre[-1] - 1)


def plan_scratch(kernel: Kernel) -> ScratchPlan | None:
    """The scratch plan of a lowered kernel, or None when it needs no scratch."""
    walker = _Lifetimes()
    walker.walk(kernel.body, {}, True, False)
    if any(isinstance(s, For) and s.has("parallel") for s in walk_stmts(kernel.body)):
        _extend_to_barriers(kernel.body, walker.locals)
    chosen = [loc for loc in walker.locals if loc.scratch]
    if not chosen:
        return None
    names = [loc.alloc.name for loc in chosen]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise KgenError(f"two scratch arrays are named '{dup}'; local array names must be unique in a kernel")
    symbols = _positive_symbols(kernel)
    copies = private_copies(kernel)
    sizes = []
    for loc in chosen:
        count: sp.Expr = sp.Integer(1)
        for d in loc.alloc.shape:
            count = count * _to_sympy(d, symbols)
        sizes.append(Round8(sp.expand(count * (loc.alloc.type.bits // 8))) * copies.get(loc.alloc.name, 1))
    offsets = _place(chosen, sizes)
    arrays = tuple(ScratchArray(loc.alloc.name, loc.alloc.type.ctype, size, off, loc.live)
                   for loc, size, off in zip(chosen, sizes, offsets))
    total = sp.Max(*(a.offset + a.size for a in arrays))
    return ScratchPlan(arrays, total, tuple(kernel.sizes))


def private_copies(kernel: Kernel) -> dict[str, int]:
    """Arrays that multi-core loops privatise (``@private``): one copy per core, each starting at a
    multiple of 8 bytes (see :mod:`kgen.backends.spmd`)."""
    out: dict[str, int] = {}
    for s in walk_stmts(kernel.body):
        if isinstance(s, For) and s.has("private"):
            par = next(a for a in s.attrs if a.name == "parallel")
            attr = next(a for a in s.attrs if a.name == "private")
            for v in attr.args:
                out[v.name] = max(out.get(v.name, 1), par.args[0].value)  # type: ignore[union-attr]
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _place(chosen: list[_Local], sizes: list[sp.Expr]) -> list[sp.Expr]:
    n = len(chosen)
    offsets: list[sp.Expr | None] = [None] * n
    if all(s.is_Integer for s in sizes):
        for i in sorted(range(n), key=lambda i: (-int(sizes[i]), i)):
            busy = sorted((int(offsets[j]), int(offsets[j]) + int(sizes[j])) for j in range(n)
                          if offsets[j] is not None and _overlap(chosen[i].live, chosen[j].live))
            at = 0
            for lo, hi in busy:
                if at + int(sizes[i]) <= lo:
                    break
                at = max(at, hi)
            offsets[i] = sp.Integer(at)
    else:
        order = sorted(range(n), key=lambda i: (-(chosen[i].live[1] - chosen[i].live[0]), i))
        for i in order:
            below = [offsets[j] + sizes[j] for j in range(n)
                     if offsets[j] is not None and _overlap(chosen[i].live, chosen[j].live)]
            offsets[i] = sp.Max(sp.Integer(0), *below)
    return [o for o in offsets if o is not None]


def c_size_expr(e: sp.Expr, ctype: str = "size_t") -> str:
    """C text of a byte-count expression, computed in ``size_t``; symbols are the ``int32_t``
    size arguments (≥ 1).  ``kgen_scratch_max`` is the generated helper of :func:`uses_max`."""
    if e.is_Integer:
        return str(int(e))
    cast = f"({ctype})"
    if isinstance(e, sp.Symbol):
        return f"{cast}{e.name}"
    if isinstance(e, Round8):
        inner = c_size_expr(e.args[0], ctype)
        return f"((({inner}) + 7) / 8 * 8)"
    if isinstance(e, sp.Max):
        args = [c_size_expr(a, ctype) for a in e.args]
        out = args[0]
        for a in args[1:]:
            out = f"kgen_scratch_max({out}, {a})"
        return out
    if isinstance(e, sp.floor):
        num, den = sp.fraction(sp.together(e.args[0]))
        return f"(({c_size_expr(num, ctype)}) / {c_size_expr(den, ctype)})"
    if isinstance(e, sp.Add):
        terms = sorted(e.args, key=sp.default_sort_key)
        out = c_size_expr(terms[0], ctype)
        for t in terms[1:]:
            coeff, rest = t.as_coeff_Mul()
            if coeff.is_negative:
                out += f" - {c_size_expr(-t, ctype)}"
            else:
                out += f" + {c_size_expr(t, ctype)}"
        return f"({out})"
    if isinstance(e, sp.Mul):
        factors = sorted(e.args, key=sp.default_sort_key)
        return "(" + " * ".join(c_size_expr(f, ctype) for f in factors) + ")"
    if isinstance(e, sp.Pow) and e.exp.is_Integer and int(e.exp) > 0:
        return "(" + " * ".join([c_size_expr(e.base, ctype)] * int(e.exp)) + ")"
    raise KgenError(f"cannot express scratch size {e} in C")


def uses_max(e: sp.Expr) -> bool:
    return any(isinstance(x, sp.Max) for x in sp.preorder_traversal(e))


def scratch_param_name(kernel: Kernel) -> str:
    """``scratch``, unless a parameter or size of the kernel already has that name."""
    taken = {p.name for p in kernel.params} | set(kernel.sizes)
    return "scratch" if "scratch" not in taken else "kgen_scratch"


def get_buffer_size_name(function: str) -> str:
    return f"{function}_get_buffer_size"


def scratch_macro(function: str) -> str:
    return f"{function.upper()}_SCRATCH_BYTES"


__all__ = ["STACK_LIMIT", "ScratchPlan", "ScratchArray", "plan_scratch", "c_size_expr", "scratch_param_name",
           "get_buffer_size_name", "scratch_macro", "Round8"]
