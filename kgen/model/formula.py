"""Per-kernel instruction and cycle formulas, symbolic in the shape symbols.

The prediction at a shape comes from the lowered (specialised) code.  The formula spreads it over
the kernel's symbolic work units from :mod:`kgen.model.analysis`:

    instructions(shape) = i_mac · MACs(shape) + i_out · outputs(shape) + i_call

where ``i_mac`` is what the lowered code spends per multiply-accumulate (the statements holding a
product of two loads or an ISA dot-product instruction, with the loops around them), ``i_out`` what
it spends per output element on everything else, and ``i_call`` the call overhead; likewise for
cycles.  The formula reproduces the prediction exactly at the shape it was derived at and scales
the per-unit costs elsewhere (tails and unrolling decisions change with the shape, so it is an
estimate away from that shape).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sympy as sp

from ..ir import Assign, Call, Cast, Decl, Kernel, Load, Stmt, Store, Bin, stmt_exprs, walk_expr
from .analysis import Analysis, analyze
from .cost import count_kernel
from .platform import platform_for, toolchain_for
from .predict import allocatable, price


@dataclass(frozen=True)
class Formula:
    instructions: sp.Expr
    cycles: sp.Expr
    per_mac: tuple[float, float]     # (instructions, cycles) per MAC
    per_output: tuple[float, float]  # per output element
    per_call: tuple[float, float]
    analysis: Analysis

    def text(self, what: str = "instructions") -> str:
        return sp.sstr(self.instructions if what == "instructions" else self.cycles)

    def as_json(self) -> dict[str, Any]:
        return {"instructions": sp.sstr(self.instructions), "cycles": sp.sstr(self.cycles),
                "per_mac": list(self.per_mac), "per_output": list(self.per_output), "per_call": list(self.per_call),
                "macs": sp.sstr(self.analysis.macs), "outputs": sp.sstr(self.analysis.outputs)}


def _strip(e):
    while isinstance(e, Cast):
        e = e.a
    return e


def is_mac_statement(s: Stmt) -> bool:
    """A statement that multiply-accumulates: a product of two loaded values or an ISA dot product."""
    if not isinstance(s, (Assign, Decl, Store)):
        return False
    for e in stmt_exprs(s):
        for x in walk_expr(e):
            if isinstance(x, Bin) and x.op == "mul" and x.type.is_data and \
                    isinstance(_strip(x.a), Load) and isinstance(_strip(x.b), Load):
                return True
            if isinstance(x, Call) and x.fn.startswith("isa.") and _dot(x.fn):
                return True
    return False


def _dot(fn: str) -> bool:
    from ..isafile import isa_of_call

    try:
        return "dot" in isa_of_call(fn).cls or "mac" in isa_of_call(fn).cls
    except (KeyError, ValueError):
        return False


def _round(v: float) -> sp.Expr:
    return sp.Float(float(f"{v:.4g}"), 4) if v else sp.Integer(0)


def kernel_formula(kernel: Kernel, lowered: Kernel, isa: str, sizes: Mapping[str, int], paired=(),
                   compiler: str | None = None, platform: str | None = None) -> Formula:
    """The formula of ``kernel`` (DSL) from its lowering ``lowered`` at ``sizes``."""
    plat = platform_for(isa, platform)
    tc = toolchain_for(isa, compiler)
    regs = allocatable(plat.isa)
    total, _ = count_kernel(lowered, tc, paired, sizes, regs)
    mac, _ = count_kernel(lowered, tc, paired, sizes, regs, only=is_mac_statement)
    ti, tcyc = (float(x) for x in price(total, plat, tc))
    mi, mcyc = (float(x) for x in price(mac, plat, tc))
    ci, ccyc = (float(x) for x in price(tc.function, plat, tc))
    a = analyze(kernel)
    macs, outs = a.at(a.macs, sizes), a.at(a.outputs, sizes)
    if not macs:
        mi = mcyc = 0.0
    per_mac = (mi / macs if macs else 0.0, mcyc / macs if macs else 0.0)
    rest_i, rest_c = ti - mi - ci, tcyc - mcyc - ccyc
    per_out = (rest_i / outs if outs else 0.0, rest_c / outs if outs else 0.0)
    if not outs:
        ci, ccyc = ci + rest_i, ccyc + rest_c
    ins = _round(per_mac[0]) * a.macs + _round(per_out[0]) * a.outputs + _round(ci)
    cyc = _round(per_mac[1]) * a.macs + _round(per_out[1]) * a.outputs + _round(ccyc)
    return Formula(ins, cyc, per_mac, per_out, (ci, ccyc), a)


__all__ = ["Formula", "kernel_formula", "is_mac_statement"]
