"""Register pressure of straight-line blocks, estimated on the IR (no register allocator).

A block's need is the most values live at once — local scalars between their declaration and last
use, loop-carried scalars, and packed operands (``lanes > 1`` loads) between their first and last
use in the block's statement order — plus one base register per buffer the block streams packed
operands from (per buffer it addresses when it has none) and the toolchain's
``reserved_registers``.  The ISA file's ``[registers] allocatable`` is the budget: a block above it
spills, and a loop may keep only as many hoisted invariants in registers as its body leaves free.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Assign, Decl, For, If, Load, Stmt, Store, Var, stmt_exprs, sub_bodies, walk_expr, walk_stmts
from ..memo import by_identity, per_object


@dataclass(frozen=True)
class Pressure:
    """Register need of a block: ``live`` values at the worst point, ``carried`` loop-carried scalars,
    ``bases`` buffer pointers, ``updates`` statements that write a value (what a spill affects)."""

    live: int
    carried: int
    bases: int
    updates: int
    #: values defined outside and read inside (parameters, outer locals): live across iterations
    inputs: int = 0
    #: buffers the block addresses (each needs a pointer register), packed-operand streams or not
    addressed: int = 0

    def need(self, reserved: int) -> int:
        return self.live + self.carried + self.bases + reserved


@dataclass(frozen=True)
class _Facts:
    names: frozenset[str]        # names read anywhere in the statement
    loads: tuple[Load, ...]      # packed operand loads of the statement itself
    assigned: frozenset[str]     # scalars assigned anywhere in it
    bufs: frozenset[str]         # buffers it addresses
    hot: frozenset[str]          # buffers it loads packed operands from


@per_object
def _facts(s: Stmt) -> _Facts:
    names: set[str] = set()
    loads: list[Load] = []
    assigned: set[str] = set()
    bufs: set[str] = set()
    hot: set[str] = set()
    direct = not isinstance(s, (For, If))
    if isinstance(s, Assign):
        assigned.add(s.name)
    elif isinstance(s, Store):
        bufs.add(s.buf)
    for e in stmt_exprs(s):
        for x in walk_expr(e):
            if isinstance(x, Var):
                names.add(x.name)
            elif isinstance(x, Load):
                bufs.add(x.buf)
                if x.type.lanes > 1:
                    hot.add(x.buf)
                    if direct:
                        loads.append(x)
    for inner in sub_bodies(s):  # nested statements: their (cached) facts, so each is walked once
        for x in inner:
            f = _facts(x)
            names |= f.names
            assigned |= f.assigned
            bufs |= f.bufs
            hot |= f.hot
    return _Facts(frozenset(names), tuple(loads), frozenset(assigned), frozenset(bufs), frozenset(hot))


@by_identity(50_000)  # the cost walk asks again for every enclosing loop
def block_pressure(body: tuple[Stmt, ...], outer_scalars: frozenset[str] = frozenset()) -> Pressure:
    """Pressure of ``body`` (a nested loop is one statement reading what it reads, whose own live
    values add to those live across it).

    ``outer_scalars`` are scalars declared outside the block; those the block assigns are
    loop-carried (live throughout)."""
    declared: dict[str, int] = {}
    last: dict[str, int] = {}
    first_load: dict[Load, int] = {}
    last_load: dict[Load, int] = {}
    carried: set[str] = set()
    bufs: set[str] = set()
    hot: set[str] = set()
    updates = 0
    for i, s in enumerate(body):
        f = _facts(s)
        for n in f.names:
            last[n] = i
        for ld in f.loads:
            first_load.setdefault(ld, i)
            last_load[ld] = i
        if isinstance(s, Decl):
            declared[s.name] = i
        if isinstance(s, (Assign, Store)):
            updates += 1
        carried.update(f.assigned & outer_scalars)
        bufs.update(f.bufs)
        hot.update(f.hot)
    events = [0] * (len(body) + 2)
    # a value occupies a register from its definition through its last use (inclusive)
    for n, d in declared.items():
        end = last.get(n, d)
        if end > d:
            events[d] += 1
            events[end + 1] -= 1
    for ld, a in first_load.items():
        events[a] += 1
        events[last_load[ld] + 1] -= 1
    for i, s in enumerate(body):  # a nested loop needs its own values on top of those live across it
        if isinstance(s, For):
            inner = block_pressure(s.body, outer_scalars | frozenset(declared)).live
            events[i] += inner
            events[i + 1] -= inner
    live = peak = 0
    for v in events:
        live += v
        peak = max(peak, live)
    inputs = {n for s in body for n in _facts(s).names} & outer_scalars
    inputs -= carried
    return Pressure(peak, len(carried), len(hot) if hot else len(bufs), updates, len(inputs), len(bufs))


def scalars_declared(body: tuple[Stmt, ...]) -> frozenset[str]:
    return frozenset(s.name for s in walk_stmts(body) if isinstance(s, Decl))


__all__ = ["Pressure", "block_pressure", "scalars_declared"]
