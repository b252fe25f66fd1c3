"""Multi-core split: ``@parallel(P)`` loops and the small runtime interface they use.

A ``@parallel(P)`` loop has the semantics of the plain loop (its iterations must be independent;
the reference interpreter runs it sequentially).  In C, every core executes the function and takes
a contiguous chunk of the iterations: with n iterations, core c gets n//P of them plus one more
when c < n % P, so chunks differ by at most one iteration for **any** P and n (no power-of-two
assumption).  The function ends with a barrier so all outputs are complete when any core returns.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir import IDX, Alloc, Attr, Bin, Const, Decl, For, Kernel, Stmt, Var
from ..rewrite import simplify_index, substitute_body


def _collapse(outer: For, inner_var: str) -> For | None:
    """``for a in 0..A { for b in 0..B { S } }`` → ``for t in 0..A*B { S[a := t / B, b := t % B] }``."""
    if len(outer.body) != 1 or not isinstance(outer.body[0], For) or outer.body[0].var != inner_var:
        return None
    inner = outer.body[0]
    if not all(isinstance(x, Const) for x in (outer.lo, outer.hi, inner.lo, inner.hi)) or \
            outer.lo != Const(0, IDX) or inner.lo != Const(0, IDX):
        return None
    a, b = outer.hi.value, inner.hi.value  # type: ignore[union-attr]
    t = f"{outer.var}_{inner.var}"
    tv = Var(t, IDX)
    env = {outer.var: simplify_index(Bin("div", tv, Const(b, IDX), IDX)),
           inner.var: simplify_index(Bin("mod", tv, Const(b, IDX), IDX))}
    return For(t, Const(0, IDX), Const(a * b, IDX), substitute_body(inner.body, env), (), outer.loc)


def parallelize_blocks(kernel: Kernel, block_vars: tuple[str, str], cores: int) -> Kernel:
    """Split every top-level loop nest over ``cores`` (collapsing the block loops when perfectly
    nested, so that work is balanced over all tiles); top-level straight-line code runs on one core."""
    out: list[Stmt] = []
    pending: list[Stmt] = []

    def flush() -> None:
        if pending:
            out.append(For("kgen_serial", Const(0, IDX), Const(1, IDX), tuple(pending),
                           (Attr("parallel", (Const(cores, IDX),)),)))
            pending.clear()

    declared: set[str] = set()  # top-level locals: a loop that uses one stays with their serial group
    for s in kernel.body:
        if isinstance(s, For) and not (declared & _names_used((s,))):
            flush()
            collapsed = _collapse(s, block_vars[1]) if s.var == block_vars[0] else None
            loop = collapsed or s
            out.append(replace(loop, attrs=loop.attrs + (Attr("parallel", (Const(cores, IDX),)),)))
        else:
            pending.append(s)
            if isinstance(s, (Decl, Alloc)):
                declared.add(s.name)
    flush()
    return replace(kernel, body=tuple(out))


def _names_used(body: tuple[Stmt, ...]) -> set[str]:
    """Scalars and buffers read, assigned or stored anywhere in ``body``."""
    from ..ir import Assign, Load, Store, Var, stmt_exprs, walk_expr, walk_stmts

    out: set[str] = set()
    for s in walk_stmts(body):
        if isinstance(s, Assign):
            out.add(s.name)
        elif isinstance(s, Store):
            out.add(s.buf)
        for e in stmt_exprs(s):
            out.update(x.name for x in walk_expr(e) if isinstance(x, Var))
            out.update(x.buf for x in walk_expr(e) if isinstance(x, Load))
    return out


def _independent_iterations(loop: For, outputs: set[str]) -> bool:
    """Conservative: the loop body writes only output buffers, each store indexes one dimension by
    the bare loop variable, no output is read, and scalars assigned are declared inside."""
    from ..ir import Assign, Decl, Load, Store, Var, stmt_exprs, walk_expr, walk_stmts

    declared = {s.name for s in walk_stmts(loop.body) if isinstance(s, Decl)}
    for s in walk_stmts(loop.body):
        if isinstance(s, Assign) and s.name not in declared:
            return False
        if isinstance(s, Store):
            if s.buf in outputs and Var(loop.var, IDX) not in s.index:
                return False
        for e in stmt_exprs(s):
            if any(isinstance(x, Load) and x.buf in outputs for x in walk_expr(e)):
                return False
    return True


def parallelize_outer(kernel: Kernel, cores: int) -> Kernel:
    """For kernels without a tiled contraction: split each top-level loop whose iterations are
    provably independent; everything else runs on one core (still correct, just not parallel)."""
    outputs = {p.name for p in kernel.buffers if p.direction != "in"}
    par = Attr("parallel", (Const(cores, IDX),))
    if not all(isinstance(s, For) for s in kernel.body):
        # Top-level declarations (scalars, scratch arrays) are per-core stack data: sharing them
        # between cores would need shared memory, so such kernels run on one core.
        return replace(kernel, body=(For("kgen_serial", Const(0, IDX), Const(1, IDX), kernel.body, (par,)),))
    out: list[Stmt] = []
    serial: list[Stmt] = []

    def flush() -> None:
        if serial:
            out.append(For("kgen_serial", Const(0, IDX), Const(1, IDX), tuple(serial), (par,)))
            serial.clear()

    for s in kernel.body:
        if isinstance(s, For) and _independent_iterations(s, outputs):
            flush()
            out.append(replace(s, attrs=s.attrs + (par,)))
        else:
            serial.append(s)
    flush()
    return replace(kernel, body=tuple(out))


def runtime_header() -> str:
    from .. import __version__

    return f"""/*
 * kgen_runtime.h: generated by kgen {__version__}; do not edit.
 * The multi-core interface of kgen kernels.  On GAP9 (PMSIS), define KGEN_PMSIS: the calls map to
 * pi_core_id() and pi_cl_team_barrier().  Elsewhere the application (or kgen's test runtimes on
 * Spike and the host) provides the two functions.  Kernels generated for P cores must be called by
 * P cores (the cluster's team), each with the same arguments.
 */
#ifndef KGEN_RUNTIME_H
#define KGEN_RUNTIME_H

#if defined(KGEN_PMSIS)
#include "pmsis.h"
#define kgen_core_id() ((int)pi_core_id())
#define kgen_barrier() pi_cl_team_barrier()
#else
int kgen_core_id(void);
void kgen_barrier(void);
#endif

#endif /* KGEN_RUNTIME_H */
"""
