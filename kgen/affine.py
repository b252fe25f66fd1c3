"""Integer affine forms of index expressions, computed without sympy.

Index arithmetic in specialised kernels is almost always ``Σ c·v + k`` with integer ``c`` and
``k``; the analyses and the C emitter ask for that form many thousands of times per kernel, so the
common case is handled here in plain Python and callers fall back to sympy when it answers None.
"""
from __future__ import annotations

from .ir import IDX, Bin, Const, Expr, Un, Var

#: constant, {variable: coefficient} (no zero coefficients)
Form = tuple[int, dict[str, int]]


def affine_form(e: Expr) -> Form | None:
    """``e`` as constant + Σ coefficient·variable with integer coefficients; None when ``e``
    uses anything else (division, min/max, loads, …)."""
    t = type(e)
    if t is Const:
        return e.value, {}
    if t is Var:
        return 0, {e.name: 1}
    if t is Un and e.op == "neg":
        a = affine_form(e.a)
        return None if a is None else (-a[0], {v: -x for v, x in a[1].items()})
    if t is not Bin or e.op not in ("add", "sub", "mul"):
        return None
    a = affine_form(e.a)
    if a is None:
        return None
    b = affine_form(e.b)
    if b is None:
        return None
    if e.op == "mul":
        if a[1] and b[1]:
            return None
        (k, _), (c, terms) = (a, b) if not a[1] else (b, a)
        return c * k, {v: x * k for v, x in terms.items() if x * k}
    sign = 1 if e.op == "add" else -1
    terms = dict(a[1])
    for v, x in b[1].items():
        y = terms.get(v, 0) + sign * x
        if y:
            terms[v] = y
        else:
            terms.pop(v, None)
    return a[0] + sign * b[0], terms


def _term_text(v: str, c: int) -> str:
    """How sympy prints the term ``c·v`` (its sort key in :func:`form_expr`)."""
    return v if c == 1 else f"-{v}" if c == -1 else f"{c}*{v}"


def form_expr(form: Form) -> Expr:
    """The canonical IR of an affine form: ``c1*v1 + c2*v2 + … + const``, terms in the order of
    their printed text (the same tree :func:`kgen.backends.contraction.from_sympy` builds)."""
    const, terms = form
    out: Expr | None = None
    for v, c in sorted(terms.items(), key=lambda vc: _term_text(*vc)):
        t: Expr = Var(v, IDX)
        if c != 1:
            t = Bin("mul", Const(c, IDX), t, IDX)
        out = t if out is None else Bin("add", out, t, IDX)
    if out is None:
        return Const(const, IDX)
    if const:
        out = Bin("add", out, Const(const, IDX), IDX)
    return out
