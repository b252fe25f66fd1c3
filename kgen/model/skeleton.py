"""Loop-nest skeletons: a kernel's loops with straight-line code summarised (for ``kgen explain``).

Fully unrolled code can hold thousands of statements; the skeleton keeps every loop (variable,
bounds, annotations) and replaces each run of straight-line statements by one line counting its
statements and the operations in them, e.g. ``{ 4 decl, 64 assign, 4 store: 128 × smlad, 4 × ssat8 }``.
"""
from __future__ import annotations

from collections import Counter

from ..ir import Alloc, Assign, Bin, Call, Decl, For, If, Kernel, Load, Stmt, Store, View, stmt_exprs, walk_expr
from ..printer import print_expr


def _ops(stmts: list[Stmt]) -> Counter:
    c: Counter = Counter()
    for s in stmts:
        for e in stmt_exprs(s):
            for x in walk_expr(e):
                if isinstance(x, Call):
                    c[x.fn.split(".", 2)[2] if x.fn.startswith("isa.") else x.fn] += 1
                elif isinstance(x, Bin) and x.type.is_data and x.op == "mul" and all(
                        isinstance(_strip(y), Load) for y in (x.a, x.b)):
                    c["mac"] += 1
    return c


def _strip(e):
    from ..ir import Cast

    while isinstance(e, Cast):
        e = e.a
    return e


def _summary(stmts: list[Stmt]) -> str:
    kinds: Counter = Counter()
    for s in stmts:
        kinds[{Decl: "decl", Assign: "assign", Store: "store", Alloc: "array", View: "view"}.get(type(s), "stmt")] += 1
    head = ", ".join(f"{n} {k}" for k, n in kinds.items())
    ops = _ops(stmts)
    if ops:
        head += ": " + ", ".join(f"{n} × {k}" for k, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
    return "{ " + head + " }"


def skeleton(body: tuple[Stmt, ...], depth: int = 0, max_lines: int = 60) -> list[str]:
    """Lines of the skeleton of ``body``."""
    out: list[str] = []
    run: list[Stmt] = []
    pad = "  " * depth

    def flush() -> None:
        if run:
            out.append(pad + _summary(run))
            run.clear()

    for s in body:
        if isinstance(s, For):
            flush()
            attrs = "".join(f" @{a.name}" + (f"({', '.join(print_expr(x) for x in a.args)})" if a.args else "")
                            for a in s.attrs)
            out.append(f"{pad}for {s.var} in {print_expr(s.lo)}..{print_expr(s.hi)}{attrs}")
            out.extend(skeleton(s.body, depth + 1, max_lines))
        elif isinstance(s, If):
            flush()
            out.append(f"{pad}if {print_expr(s.cond)}")
            out.extend(skeleton(s.then, depth + 1, max_lines))
            if s.orelse:
                out.append(f"{pad}else")
                out.extend(skeleton(s.orelse, depth + 1, max_lines))
        else:
            run.append(s)
    flush()
    if depth == 0 and len(out) > max_lines:
        out = out[:max_lines] + [f"... ({len(out) - max_lines} more lines)"]
    return out


def kernel_skeleton(kernel: Kernel, max_lines: int = 60) -> str:
    return "\n".join(skeleton(kernel.body, 0, max_lines))


__all__ = ["skeleton", "kernel_skeleton"]
