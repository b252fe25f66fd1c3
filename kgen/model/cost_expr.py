"""Expression costs of the static count (:mod:`kgen.model.cost`): what evaluating one IR expression
costs under a toolchain model, with common subexpressions, loop-invariant code motion (limited by the
registers a loop leaves free, and through loops the compiler unrolls completely), fused
multiply-accumulates, load pipelining and load-use stalls.  Mixed into :class:`CostWalk`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ir import IDX, Bin, Call, Cast, Const, Expr, Load, Un, Var, children, expr_reads

if TYPE_CHECKING:  # pragma: no cover
    from .cost import _Avail

Counts = dict[str, Any]


def add(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def scale(a: dict, k: Any) -> dict:
    return {c: v * k for c, v in a.items()}


def _iadd(a: dict, b: dict, k: Any = 1) -> None:
    for c, v in b.items():
        a[c] = a.get(c, 0) + v * k


#: (names read, buffers loaded) by an expression
_free = expr_reads


def _is_pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


def _sext_from_32(e: Expr) -> bool:
    """True when an i64 operand is a widened value of at most 32 bits (or a small constant)."""
    if isinstance(e, Const):
        return -(1 << 31) <= e.value < (1 << 31)
    return isinstance(e, Cast) and e.a.type.is_data and e.a.type.bits <= 32



class ExprCosts:
    """Expression costing; the host class provides ``tc`` (toolchain), ``frames``,
    ``paired`` and ``locals``."""

    # ------------------------------------------------------------------------------ expressions
    def hoist_level(self, e: Expr) -> tuple[int, int] | None:
        """(index of the outermost frame whose pre-header can compute ``e``, number of copies) or
        None when ``e`` varies in the innermost loop.  A loop the compiler unrolls completely does
        not stop an expression that depends on its variable: each of its ``T`` copies has a constant
        there, so ``T`` values are hoisted further out."""
        if not self.frames:
            return None
        names, bufs = _free(e)
        if bufs & self.locals:
            return None  # loads from local arrays stay in the loop (neither gcc nor clang hoists them)
        level, copies = len(self.frames), 1
        pending = 1
        for i in range(len(self.frames) - 1, -1, -1):
            f = self.frames[i]
            if bufs & f.stored or names & (f.variant - {f.var}):
                break
            if f.var in names:
                if not f.unrolled:
                    break
                pending *= f.unrolled
                names = names - {f.var}  # a constant in each copy, for the loops further out
                continue
            level, copies = i, pending
        return None if level == len(self.frames) else (level, copies)

    def expr(self, e: Expr, avail: "_Avail", into_store: bool = False) -> Counts:
        if isinstance(e, (Const, Var)):
            return {}
        if e in avail:
            return {}
        if isinstance(e, Cast) and not self.cast_cost(e, into_store):
            c = self.expr(e.a, avail, into_store)  # a free conversion: the value is its operand's
            avail.add(e)
            return c
        hoist = self.hoist_level(e)
        if hoist is not None:
            level, copies = hoist
            f = self.frames[level]
            if e in f.avail:
                avail.add(e)
                return {}
            raw = self.raw(e, f.avail, into_store)
            kept = min(1.0, max(0, f.budget - f.nhoisted) / copies)
            f.nhoisted += kept * copies
            f.avail.add(e)
            avail.add(e)
            _iadd(f.hoisted, raw, copies * (kept if isinstance(e, Load) else 1))
            if kept >= 1:
                return {}
            # no register left to keep it: a load is done where it is used, anything else is
            # computed in the pre-header, spilled and reloaded at each use
            if isinstance(e, Load):
                return scale(raw, 1 - kept)
            _iadd(f.hoisted, self.op("store"), copies * (1 - kept))
            return scale(self.op("load"), 1 - kept)
        c = self.raw(e, avail, into_store)
        avail.add(e)
        return c

    def cast_cost(self, e: Cast, into_store: bool) -> Counts:
        """What a conversion itself costs (loads widen for free; a narrowing store truncates)."""
        t, src = e.type, e.a.type
        if not (t.is_data and src.is_data) or t.lanes > 1 or src.lanes > 1:
            return {}
        if t.bits > src.bits:
            return self.op("sext64") if t.bits == 64 and src.signed else {}
        if t.bits < src.bits and not into_store and not (src.bits == 64 and t.bits == 32):
            return self.op("narrow")
        return {}

    def op(self, key: str) -> Counts:
        return dict(self.tc.op(key))

    def raw(self, e: Expr, avail: "_Avail", into_store: bool = False) -> Counts:
        """Cost of evaluating ``e`` once (its operands through :meth:`expr`)."""
        t = e.type
        if isinstance(e, Load):
            if t.lanes > 1 and e.buf in self.paired:
                return self.op("load_pair")
            return self.op("load")
        if isinstance(e, Cast):
            return add(self.expr(e.a, avail), self.cast_cost(e, into_store))
        if isinstance(e, Bin):
            return self.binop(e, avail)
        if isinstance(e, Un):
            c = self.expr(e.a, avail)
            if not t.is_data:
                return c
            return add(c, self.op("alu64" if t.bits == 64 and e.op != "lnot" else "alu32"))
        if isinstance(e, Call):
            return self.call(e, avail)
        return {}

    def _operands(self, e: Expr, avail: "_Avail") -> Counts:
        """Cost of the operands of ``e``.  Fresh loads feeding ``e`` directly (widening casts
        included: loads sign- or zero-extend) issue back to back (all but the first are
        ``load_pipe``) and the last one's value is used at once (a ``load_use`` stall on pipelines
        that have one)."""
        total: Counts = {}
        fresh = 0
        for a in children(e):
            ld = a
            while isinstance(ld, Cast) and ld.type.is_data and ld.a.type.is_data and ld.type.bits >= ld.a.type.bits:
                ld = ld.a
            if isinstance(ld, Load) and ld.type.lanes == 1 and ld not in avail and a not in avail \
                    and self.hoist_level(ld) is None:
                fresh += 1
            _iadd(total, self.expr(a, avail))
        if fresh:
            _iadd(total, {"load_use": 1, "load": 1 - fresh, "load_pipe": fresh - 1})
        return total

    def binop(self, e: Bin, avail: "_Avail") -> Counts:
        t = e.type
        if not t.is_data:
            # index arithmetic is folded into addresses; comparisons and logic of conditions
            if t == IDX:
                return {}
            c = self._operands(e, avail)
            wide = e.a.type.is_data and e.a.type.bits == 64
            return add(c, self.op("cmp64" if wide else "cmp32"))
        wide = t.bits == 64
        op = e.op
        if op in ("add", "sub"):
            for x, y in ((e.a, e.b), (e.b, e.a)) if op == "add" else ((e.a, e.b),):
                if isinstance(y, Bin) and y.op == "mul" and y not in avail and self.hoist_level(y) is None:
                    if not wide or (_sext_from_32(y.a) and _sext_from_32(y.b)):
                        c = add(self.expr(x, avail), self._operands(y, avail))
                        avail.add(y)
                        return add(c, self.op("mac64_32" if wide else "mac32"))
            return add(self._operands(e, avail), self.op("alu64" if wide else "alu32"))
        c = self._operands(e, avail)
        if op == "mul":
            if wide:
                return add(c, self.op("mul64_32" if _sext_from_32(e.a) and _sext_from_32(e.b) else "mul64"))
            return add(c, self.op("mul32"))
        if op in ("div", "mod"):
            if wide:
                return add(c, self.op("div64"))
            if isinstance(e.b, Const):
                return add(c, self.op("div32_pow2" if _is_pow2(e.b.value) else "div32_const"))
            return add(c, self.op("div32"))
        if op in ("shl", "shr"):
            if not wide:
                return add(c, self.op("alu32"))
            if isinstance(e.b, Const):
                return add(c, self.op("shr64_32" if op == "shr" and e.b.value == 32 else "shift64_const"))
            return add(c, self.op("shift64_var"))
        if op in ("and", "or", "xor"):
            return add(c, self.op("alu64" if wide else "alu32"))
        return add(c, self.op("cmp64" if wide else "cmp32"))

    def call(self, e: Call, avail: "_Avail") -> Counts:
        c = self._operands(e, avail)
        if e.fn.startswith("isa."):
            mnemonic = e.fn.split(".", 2)[2]
            return add(c, {f"isa:{mnemonic}": 1})
        wide = e.type.is_data and e.type.bits == 64
        if e.fn in ("min", "max"):
            if e.type == IDX:
                return c
            return add(c, self.op("clip64") if wide else self.op("minmax32"))
        if e.fn == "clip":
            lo, hi = e.args[1], e.args[2]
            if wide:
                return add(c, self.op("clip64"))
            if isinstance(lo, Const) and isinstance(hi, Const) and (lo.value, hi.value) in ((-128, 127), (0, 255)):
                return add(c, self.op("clip8"))
            return add(c, scale(self.op("minmax32"), 2))
        if e.fn == "abs":
            return add(c, self.op("abs32"))
        if e.fn == "select":
            return add(c, self.op("select32"))
        if e.fn == "requant":
            return add(c, self.op("requant"))
        return c

