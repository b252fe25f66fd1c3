"""Work counts of a kernel at concrete sizes: multiply-accumulates and output elements."""
from __future__ import annotations

from typing import Mapping

from .interp import buffer_extent, eval_expr
from .ir import Assign, Bin, Cast, Expr, For, If, Kernel, Load, Stmt, Store, walk_expr


def _is_product_of_loads(e: Expr) -> bool:
    if not (isinstance(e, Bin) and e.op == "mul"):
        return False
    strip = lambda x: x.a if isinstance(x, Cast) else x  # noqa: E731
    return isinstance(strip(e.a), Load) and isinstance(strip(e.b), Load)


def macs(kernel: Kernel, sizes: Mapping[str, int]) -> int:
    """Executed products of two loaded values (the MACs of contractions), counted over the loop nest."""

    def count(body: tuple[Stmt, ...], env: dict[str, int]) -> int:
        total = 0
        for s in body:
            if isinstance(s, For):
                lo, hi = eval_expr(s.lo, env), eval_expr(s.hi, env)
                inner_const = _independent(s)
                if inner_const:
                    total += max(hi - lo, 0) * count(s.body, {**env, s.var: lo})
                else:
                    total += sum(count(s.body, {**env, s.var: i}) for i in range(lo, hi))
            elif isinstance(s, If):
                total += count(s.then, env) + count(s.orelse, env)  # upper bound for guarded code
            elif isinstance(s, (Assign, Store)):
                total += sum(1 for x in walk_expr(s.value) if _is_product_of_loads(x))
        return total

    return count(kernel.body, dict(sizes))


def _independent(loop: For) -> bool:
    """True when inner loop bounds do not depend on this loop's variable (count once, multiply)."""
    from .ir import Var, walk_stmts

    for s in walk_stmts(loop.body):
        if isinstance(s, For):
            for e in (s.lo, s.hi):
                if any(isinstance(x, Var) and x.name == loop.var for x in walk_expr(e)):
                    return False
    return True


def output_elements(kernel: Kernel, sizes: Mapping[str, int]) -> int:
    return sum(buffer_extent(p, sizes) for p in kernel.buffers if p.direction != "in")
