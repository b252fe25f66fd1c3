"""Instruction selection: replace kernel expressions by ISA instructions with the same semantics.

Each instruction's semantics (from its ISA file) is a pattern.  Scalar operands match any
expression of their type; a vector operand's lanes ``a[0] … a[L-1]`` must match loads of
consecutive elements of one buffer along a contiguous dimension, which become one packed
register load.  Matching is structural on the typed IR, so an instruction is only used where it
computes exactly what the kernel computes.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import sympy as sp

from .affine import affine_form
from .isafile import Instr, Isa
from .ir import (Bin, Call, Cast, Const, Expr, Kernel, Load, Type, Un, Var, children)


class _NoMatch(Exception):
    pass


def _unify(p: Expr, t: Expr, ops: dict[str, Type], binds: dict[str, Expr], lanes: dict[str, dict[int, Load]]) -> None:
    if isinstance(p, Var) and p.name in ops:
        if t.type != ops[p.name]:
            raise _NoMatch
        if p.name in binds and binds[p.name] != t:
            raise _NoMatch
        binds[p.name] = t
        return
    if isinstance(p, Load) and p.buf in ops:
        lane = p.index[0]
        assert isinstance(lane, Const)
        if not isinstance(t, Load) or t.type != ops[p.buf].lane:
            raise _NoMatch
        slot = lanes.setdefault(p.buf, {})
        if lane.value in slot and slot[lane.value] != t:
            raise _NoMatch
        slot[lane.value] = t
        return
    if type(p) is not type(t) or p.type != t.type:
        raise _NoMatch
    if isinstance(p, Const):
        if p.value != t.value:  # type: ignore[union-attr]
            raise _NoMatch
        return
    if isinstance(p, (Bin, Un)) and p.op != t.op:  # type: ignore[union-attr]
        raise _NoMatch
    if isinstance(p, Call) and (p.fn != t.fn or p.flags != t.flags):  # type: ignore[union-attr]
        raise _NoMatch
    pc, tc = children(p), children(t)
    if len(pc) != len(tc):
        raise _NoMatch
    for a, b in zip(pc, tc):
        _unify(a, b, ops, binds, lanes)


def _sym(e: Expr) -> sp.Expr:
    from .check import to_sympy

    return to_sympy(e, {})


def _vector_operand(loads: dict[int, Load], t: Type, contiguous: dict[str, bool]) -> Load:
    """Lanes 0..L-1 must be consecutive elements of one buffer's last (contiguous) dimension."""
    if sorted(loads) != list(range(t.lanes)):
        raise _NoMatch
    first = loads[0]
    if not contiguous.get(first.buf, False):
        raise _NoMatch
    base = affine_form(first.index[-1])
    for i, ld in loads.items():
        if ld.buf != first.buf or ld.index[:-1] != first.index[:-1]:
            raise _NoMatch
        lane = affine_form(ld.index[-1]) if base is not None else None
        if lane is not None:
            if lane[1] != base[1] or lane[0] - base[0] != i:  # type: ignore[index]
                raise _NoMatch
        elif sp.simplify(_sym(ld.index[-1]) - _sym(first.index[-1]) - i) != 0:
            raise _NoMatch
    aligned = (base[0] % t.lanes == 0 and all(c % t.lanes == 0 for c in base[1].values())) if base is not None \
        else _multiple_of(_sym(first.index[-1]), t.lanes)
    if not aligned:
        raise _NoMatch  # a packed register load must be aligned to its own size
    return Load(first.buf, first.index, t)


def _multiple_of(s: sp.Expr, n: int) -> bool:
    """True when the affine ``s`` is a multiple of ``n`` for every value of its symbols."""
    s = sp.expand(s)
    return all(t.as_coeff_Mul()[0].is_integer and int(t.as_coeff_Mul()[0]) % n == 0
               for t in sp.Add.make_args(s) if t != 0)


def match(ins: Instr, isa_name: str, e: Expr, contiguous: dict[str, bool]) -> Call | None:
    """``e`` rewritten as a call of ``ins``, or None when it does not compute the same thing."""
    if ins.result.lanes != 1 or e.type != ins.result:
        return None
    ops = dict(ins.operands)
    binds: dict[str, Expr] = {}
    lanes: dict[str, dict[int, Load]] = {}
    try:
        _unify(ins.semantics[0], e, ops, binds, lanes)
        args = []
        for name, t in ins.operands:
            args.append(_vector_operand(lanes[name], t, contiguous) if t.lanes > 1 else binds[name])
    except (_NoMatch, KeyError):
        return None
    return Call(f"isa.{isa_name}.{ins.mnemonic}", tuple(args), ins.result)


def select_instructions(kernel: Kernel, isa: Isa, classes: Sequence[str],
                        contiguous: dict[str, bool]) -> Kernel:
    """Rewrite every expression that matches an instruction of the given semantic classes.

    ``contiguous`` names the buffers whose last dimension has stride 1 (packed loads allowed).
    Matching is top-down: a matched node's operands are matched again (e.g. the accumulator of
    a dot product that is itself a dot product).
    """
    instrs = [i for c in classes for i in isa.instrs if i.cls == c and i.executable]
    by_root: dict[tuple, list[Instr]] = {}
    memo: dict[int, Expr] = {}

    def candidates(e: Expr) -> list[Instr]:
        """The instructions whose pattern root can match ``e`` (in priority order)."""
        key = _root_key(e)
        if key not in by_root:
            by_root[key] = [i for i in instrs if _root_key(i.semantics[0], dict(i.operands)) in (key, None)]
        return by_root[key]

    def rewrite(e: Expr) -> Expr:
        hit = memo.get(id(e))
        if hit is None:
            hit = memo[id(e)] = _rewrite(e)
        return hit

    def _rewrite(e: Expr) -> Expr:
        for ins in candidates(e):
            m = match(ins, isa.name, e, contiguous)
            if m is not None:
                return replace(m, args=tuple(rewrite(a) if a.type.lanes == 1 else a for a in m.args))
        if isinstance(e, Bin):
            return replace(e, a=rewrite(e.a), b=rewrite(e.b))
        if isinstance(e, (Un, Cast)):
            return replace(e, a=rewrite(e.a))
        if isinstance(e, Call):
            return replace(e, args=tuple(rewrite(a) for a in e.args))
        return e

    body = _map_top(kernel.body, rewrite)
    return replace(kernel, body=body)


def _root_key(e: Expr, operands: dict[str, Type] | None = None) -> tuple | None:
    """What a pattern's root must share with an expression to match it; None for a pattern whose
    root is an operand (it matches any expression of the operand's type)."""
    if operands is not None and (isinstance(e, Var) and e.name in operands
                                 or isinstance(e, Load) and e.buf in operands):
        return None
    return type(e), getattr(e, "op", None) or getattr(e, "fn", None), e.type


def _map_top(body, fn):
    """Apply ``fn`` once to each top-level expression of each statement (fn recurses itself)."""
    from .ir import Assign, Decl, For, If, Store

    out = []
    for s in body:
        if isinstance(s, Assign):
            s = replace(s, value=fn(s.value))
        elif isinstance(s, Store):
            s = replace(s, value=fn(s.value))
        elif isinstance(s, Decl) and s.init is not None:
            s = replace(s, init=fn(s.init))
        elif isinstance(s, For):
            s = replace(s, body=_map_top(s.body, fn))
        elif isinstance(s, If):
            s = replace(s, then=_map_top(s.then, fn), orelse=_map_top(s.orelse, fn))
        out.append(s)
    return tuple(out)
