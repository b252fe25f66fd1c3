"""Path splitting on a scalar that takes one of a few constants (a model of gcc's jump threading).

``var sg: i32 = select(x > 0, 1, select(x < 0, -1, 0))`` followed by arithmetic that multiplies by
``sg``: gcc -O3 does not materialise ``sg``.  It branches on the conditions and duplicates the
statements up to the last one that depends on ``sg`` into each path, where ``sg`` is a constant and
the product folds (``·1`` disappears, ``·-1`` becomes a negation, ``·0`` removes the operand) and
``abs(x)`` of a compared ``x`` is known.  The cost walk (:mod:`kgen.model.cost`) prices such a
block as that branch tree: the conditions in order (each a data-dependent branch), and each arm's
copy of the dependent statements with the constant substituted and folded by :func:`fold`,
weighted by the probability of reaching it (each branch taken half of the time, as every
data-dependent branch of the model).  Toolchains opt in with
``[loops] split_constant_selects = true`` (``isa/platforms/FORMAT.md``).
"""
from __future__ import annotations

from ..ir import Assign, Bin, Call, Cast, Const, Decl, Expr, Stmt, Un, Var, stmt_exprs, walk_expr, walk_stmts
from ..rewrite import map_body_exprs, map_expr


Arm = tuple[float, tuple[tuple[Expr, bool], ...], Const]


def constant_arms(e: Expr) -> list[Arm] | None:
    """``select(c1, k1, select(c2, k2, …))`` with constant leaves → [(probability, the conditions
    evaluated on the way with their outcomes, constant)]; None for anything else (or one arm)."""
    arms: list[Arm] = []

    def visit(x: Expr, p: float, conds: tuple[tuple[Expr, bool], ...]) -> bool:
        if isinstance(x, Const):
            arms.append((p, conds, x))
            return True
        if isinstance(x, Call) and x.fn == "select":
            c, a, b = x.args
            return visit(a, p / 2, conds + ((c, True),)) and visit(b, p / 2, conds + ((c, False),))
        return False

    return arms if visit(e, 1.0, ()) and len(arms) > 1 else None


def signs(conds: tuple[tuple[Expr, bool], ...]) -> dict[str, int]:
    """Scalars whose sign the outcomes of comparisons with constants fix: name -> +1 (> 0) or -1 (< 0)."""
    out: dict[str, int] = {}
    flip = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}
    for c, outcome in conds:
        if not (isinstance(c, Bin) and c.op in flip and isinstance(c.a, Var) and isinstance(c.b, Const)):
            continue
        op, k = (c.op if outcome else flip[c.op]), c.b.value
        if (op == "gt" and k >= 0) or (op == "ge" and k >= 1):
            out[c.a.name] = 1
        elif (op == "lt" and k <= 0) or (op == "le" and k <= -1):
            out[c.a.name] = -1
    return out


def splits(s: Stmt, rest: tuple[Stmt, ...]) -> list[Arm] | None:
    """The arms of ``s`` when it is a constant-valued select whose variable multiplies something
    in ``rest`` (what makes gcc split the paths); else None."""
    if not (isinstance(s, Decl) and s.init is not None and s.type.is_data):
        return None
    arms = constant_arms(s.init)
    if arms is None:
        return None
    v = Var(s.name, s.type)
    if any(isinstance(st, (Assign, Decl)) and st.name == s.name for st in walk_stmts(rest)):
        return None
    for st in walk_stmts(rest):
        for e in stmt_exprs(st):
            if any(isinstance(x, Bin) and x.op == "mul" and v in (x.a, x.b) for x in walk_expr(e)):
                return arms
    return None


def dependents(s: Decl, rest: list[Stmt]) -> tuple[tuple[Stmt, ...], list[Stmt]]:
    """(the statements from ``s`` through the last one that reads it, directly or through scalars
    computed from it — where the duplicated paths join again —, the statements after them).  The
    region ends before the next constant-valued select, which splits on its own."""
    names = {s.name}
    last = -1
    for i, st in enumerate(rest):
        if isinstance(st, Decl) and st.init is not None and constant_arms(st.init) is not None:
            break
        read = {x.name for st2 in walk_stmts((st,)) for e in stmt_exprs(st2) for x in walk_expr(e)
                if isinstance(x, Var)}
        if read & names:
            last = i
            names |= {x.name for x in walk_stmts((st,)) if isinstance(x, (Decl, Assign))}
    return tuple(rest[:last + 1]), rest[last + 1:]


def _const(value: int, like: Expr) -> Const:
    return Const(like.type.wrap(value) if like.type.is_data else value, like.type)


def fold(e: Expr) -> Expr:
    """Constant folding of what a known constant leaves behind: ``0·x``, ``1·x``, ``-1·x``,
    ``x ± 0``, negation and casts of constants."""

    def fn(x: Expr) -> Expr:
        if isinstance(x, Bin) and x.type.is_data and x.op in ("mul", "add", "sub"):
            a, b = x.a, x.b
            if isinstance(a, Const) and isinstance(b, Const):
                v = {"mul": a.value * b.value, "add": a.value + b.value, "sub": a.value - b.value}[x.op]
                return _const(v, x)
            if x.op == "mul":
                for k, other in ((a, b), (b, a)):
                    if isinstance(k, Const) and k.value in (0, 1, -1):
                        return _const(0, x) if k.value == 0 else other if k.value == 1 else Un("neg", other, x.type)
            if isinstance(b, Const) and b.value == 0:
                return a
            if x.op == "add" and isinstance(a, Const) and a.value == 0:
                return b
        if isinstance(x, Un) and x.op == "neg" and isinstance(x.a, Const):
            return _const(-x.a.value, x)
        if isinstance(x, Cast) and isinstance(x.a, Const) and x.type.is_data:
            return _const(x.a.value, x)
        return x

    return map_expr(e, fn)


def specialise(rest: tuple[Stmt, ...], name: str, value: Const, sign: dict[str, int]) -> tuple[Stmt, ...]:
    """``rest`` on one path: the scalar ``name`` replaced by ``value`` and folded, and ``abs(v)``
    of a scalar whose sign the path fixes replaced by ``v`` or ``-v``."""

    def fn(x: Expr) -> Expr:
        if isinstance(x, Var) and x.name == name:
            return value
        if isinstance(x, Call) and x.fn == "abs" and isinstance(x.args[0], Var) and x.args[0].name in sign:
            v = x.args[0]
            return v if sign[v.name] > 0 else Un("neg", v, x.type)
        return x

    return map_body_exprs(map_body_exprs(rest, fn), fold)


__all__ = ["Arm", "constant_arms", "signs", "splits", "dependents", "fold", "specialise"]
