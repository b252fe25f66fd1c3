"""Static checks on parsed kernels: every buffer index provably stays inside its buffer.

For each access, every index component is an affine function of the enclosing loop variables with
coefficients that are polynomials in the size symbols.  Its extremes are found by substituting
loop bounds from the innermost loop outwards (the sign of each coefficient decides which bound),
and the resulting inequalities in the sizes are proved with sympy for *all* legal sizes: sizes
are at least 1, and ``where`` constraints such as ``K % 4 == 0`` or ``M >= 2`` are applied by
substitution.  When no proof is found, small sizes are searched for a counterexample, which is
reported with the error.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import sympy as sp

from .errors import KgenError
from .ir import (IDX, Alloc, Bin, BufferParam, Call, Cast, Const, Expr, For, If, Kernel, Load, Stmt, Store,
                 Un, Var, View, walk_expr)
from .interp import eval_expr
from .printer import print_expr


class NotAffine(Exception):
    pass


def to_sympy(e: Expr, symbols: dict[str, sp.Symbol]) -> sp.Expr:
    """Index expression → sympy (``/`` and ``%`` are only accepted on constants)."""
    if isinstance(e, Const):
        return sp.Integer(e.value)
    if isinstance(e, Var):
        if e.name not in symbols:
            symbols[e.name] = sp.Symbol(e.name, integer=True)
        return symbols[e.name]
    if isinstance(e, Bin) and e.op in ("add", "sub", "mul"):
        a, b = to_sympy(e.a, symbols), to_sympy(e.b, symbols)
        return a + b if e.op == "add" else a - b if e.op == "sub" else a * b
    if isinstance(e, Un) and e.op == "neg":
        return -to_sympy(e.a, symbols)
    if isinstance(e, Call) and e.fn in ("min", "max"):
        args = [to_sympy(a, symbols) for a in e.args]
        return sp.Min(*args) if e.fn == "min" else sp.Max(*args)
    if isinstance(e, Bin) and e.op in ("div", "mod"):
        a, b = to_sympy(e.a, symbols), to_sympy(e.b, symbols)
        if b == 0:
            raise NotAffine("division by zero")
        if a.is_number and b.is_number:
            return sp.Integer(int(a) // int(b) if e.op == "div" else int(a) % int(b))
        if b.is_number and e.op == "div":
            return sp.floor(a / b)
    raise NotAffine(print_expr(e))


@dataclass(frozen=True)
class _Loop:
    var: sp.Symbol
    lo: sp.Expr
    hi: sp.Expr


@dataclass(frozen=True)
class SizeModel:
    """Sizes ≥ 1 and the substitutions that encode the kernel's ``where`` constraints."""

    sizes: tuple[sp.Symbol, ...]
    subs: dict[sp.Symbol, sp.Expr]

    def nonnegative(self, e: sp.Expr) -> bool:
        """True when ``e >= 0`` is proved for every legal assignment of the sizes."""
        e = sp.expand(e.xreplace(self.subs))  # sizes are atoms: a structural (simultaneous) replace
        if e.is_number:
            return bool(e >= 0)
        fresh = [s for s in e.free_symbols]
        if any(not str(s).endswith("__") for s in fresh):
            return False  # a loop variable survived: not a statement about sizes alone
        try:
            poly = sp.Poly(e, *fresh)
        except sp.PolynomialError:
            return False
        return all(c >= 0 for c in poly.coeffs())


def size_model(kernel: Kernel, symbols: dict[str, sp.Symbol]) -> SizeModel:
    """Express each size as (fresh nonnegative symbol) + lower bound, honouring where-constraints."""
    subs: dict[sp.Symbol, sp.Expr] = {}
    sizes = []
    for name in kernel.sizes:
        s = symbols.setdefault(name, sp.Symbol(name, integer=True))
        sizes.append(s)
        step, low = 1, 1
        for w in kernel.where:
            if isinstance(w, Bin) and isinstance(w.a, Bin) and w.a.op == "mod" and w.op == "eq" \
                    and w.a.a == Var(name, IDX) and isinstance(w.a.b, Const) and w.b == Const(0, IDX):
                if w.a.b.value <= 0:
                    raise NotAffine(f"modulus {w.a.b.value} in a where-constraint must be positive")
                step = w.a.b.value
            if isinstance(w, Bin) and w.a == Var(name, IDX) and isinstance(w.b, Const):
                if w.op == "ge":
                    low = max(low, w.b.value)
                elif w.op == "gt":
                    low = max(low, w.b.value + 1)
        fresh = sp.Symbol(f"{name}__", integer=True, nonnegative=True)
        base = -(-low // step) * step  # smallest legal multiple of step that is >= low
        subs[s] = step * fresh + base
    return SizeModel(tuple(sizes), subs)


def _bound_choices(e: sp.Expr) -> list[sp.Expr]:
    """Valid upper bounds of Min(...)/lower bounds of Max(...): each argument alone."""
    if isinstance(e, (sp.Min, sp.Max)):
        return [x for a in e.args for x in _bound_choices(a)]
    return [e]


def _extremes(e: sp.Expr, loops: list[_Loop], model: SizeModel, want_max: bool) -> Iterator[sp.Expr]:
    """Candidate bounds of ``e`` over the loop box (upper bounds if want_max, else lower bounds)."""
    if not loops:
        yield e
        return
    *outer, inner = loops
    e = sp.expand(e)
    c = e.coeff(inner.var)
    if c.has(inner.var):
        raise NotAffine(str(e))
    if c == 0:
        yield from _extremes(e, outer, model, want_max)
        return
    positive = model.nonnegative(c)
    if not positive and not model.nonnegative(-c):
        raise NotAffine(f"coefficient {c} of {inner.var} has unknown sign")
    use_hi = positive == want_max
    for choice in _bound_choices(inner.hi) if use_hi else _bound_choices(inner.lo):
        b = choice - 1 if use_hi else choice
        yield from _extremes(e.subs(inner.var, b), outer, model, want_max)


def _prove_low(e: sp.Expr, loops: list[_Loop], model: SizeModel) -> bool:
    if isinstance(e, sp.Min):
        return all(_prove_low(a, loops, model) for a in e.args)
    if isinstance(e, sp.Max):
        return any(_prove_low(a, loops, model) for a in e.args)
    return any(model.nonnegative(lo) for lo in _extremes(e, loops, model, want_max=False))


def _prove_high(e: sp.Expr, extent: sp.Expr, loops: list[_Loop], model: SizeModel) -> bool:
    if isinstance(e, sp.Min):
        return any(_prove_high(a, extent, loops, model) for a in e.args)
    if isinstance(e, sp.Max):
        return all(_prove_high(a, extent, loops, model) for a in e.args)
    return any(model.nonnegative(extent - 1 - hi) for hi in _extremes(e, loops, model, want_max=True))


def prove_in_range(e: sp.Expr, extent: sp.Expr, loops: list[_Loop], model: SizeModel) -> bool:
    """Prove 0 <= e <= extent-1 for every iteration and every legal size (``min``/``max`` at the top
    of an index are handled argument by argument)."""
    return _prove_low(e, loops, model) and _prove_high(e, extent, loops, model)


def _access_sites(body: tuple[Stmt, ...], loops: list[For], guards: tuple[tuple[Expr, bool], ...]
                  ) -> Iterator[tuple[Load | Store, list[For], tuple[tuple[Expr, bool], ...]]]:
    """Every buffer access with its enclosing loops and the if-conditions (and branch) guarding it."""
    for s in body:
        exprs: tuple[Expr, ...] = ()
        if isinstance(s, Store):
            yield s, loops, guards
            exprs = s.index + (s.value,)
        elif isinstance(s, For):
            exprs = (s.lo, s.hi)
        elif isinstance(s, If):
            exprs = (s.cond,)
        else:
            from .ir import stmt_exprs

            exprs = stmt_exprs(s)
        for e in exprs:
            for sub in walk_expr(e):
                if isinstance(sub, Load):
                    yield sub, loops, guards
        if isinstance(s, For):
            yield from _access_sites(s.body, loops + [s], guards)
        elif isinstance(s, If):
            yield from _access_sites(s.then, loops, guards + ((s.cond, True),))
            yield from _access_sites(s.orelse, loops, guards + ((s.cond, False),))


def _counterexample(kernel: Kernel, site: Load | Store, loops: list[For], dim: int,
                    extent: Expr, guards: tuple[tuple[Expr, bool], ...] = (), limit: int = 6
                    ) -> dict[str, int] | None:
    """Search small sizes for an iteration whose index leaves [0, extent)."""
    names = kernel.sizes
    for values in itertools.product(range(1, limit + 1), repeat=len(names)):
        env = dict(zip(names, values))
        if not all(eval_expr(w, env) for w in kernel.where):
            continue
        found = _search_loops(loops, env, site.index[dim], extent, guards)
        if found is not None:
            return found
    return None


def _search_loops(loops: list[For], env: dict[str, int], index: Expr, extent: Expr,
                  guards: tuple[tuple[Expr, bool], ...] = (), budget: list[int] | None = None
                  ) -> dict[str, int] | None:
    budget = budget if budget is not None else [20000]
    if not loops:
        budget[0] -= 1
        try:
            if not all(bool(eval_expr(c, env)) == want for c, want in guards):
                return None  # the access does not execute here
        except (KeyError, ValueError, ZeroDivisionError):
            pass  # a guard on run-time data: assume it may hold
        v, n = eval_expr(index, env), eval_expr(extent, env)
        return dict(env, __index__=v, __extent__=n) if not 0 <= v < n else None
    first, *rest = loops
    for i in range(eval_expr(first.lo, env), eval_expr(first.hi, env)):
        if budget[0] <= 0:
            return None
        found = _search_loops(rest, {**env, first.var: i}, index, extent, guards, budget)
        if found is not None:
            return found
    return None


def check_kernel(kernel: Kernel, source: str | None = None) -> None:
    """Raise :class:`KgenError` at the first access that may leave its buffer."""
    shapes: dict[str, tuple[Expr, ...]] = {p.name: p.shape for p in kernel.buffers}
    for s in _all_stmts(kernel.body):
        if isinstance(s, (Alloc, View)):
            shapes[s.name] = s.shape
    try:
        _check(kernel, shapes, source)
    except KgenError:
        raise
    except (NotAffine, ZeroDivisionError, ValueError, TypeError, KeyError, ArithmeticError) as exc:
        loc = _failing_loc or kernel.loc
        raise KgenError(f"cannot check this kernel: {exc}", loc, source) from None


_failing_loc = None


def _check(kernel: Kernel, shapes: dict[str, tuple[Expr, ...]], source: str | None) -> None:
    global _failing_loc
    _failing_loc = None
    symbols: dict[str, sp.Symbol] = {}
    for w in kernel.where:
        _failing_loc = w.loc
        to_sympy_cond_safe(w)
    model = size_model(kernel, symbols)
    _check_views(kernel, symbols, model, source)
    for site, loops, guards in _access_sites(kernel.body, [], ()):
        _failing_loc = site.loc
        guarded = bool(guards)
        shape = shapes[site.buf]
        try:
            sym_loops = [_Loop(symbols.setdefault(f.var, sp.Symbol(f.var, integer=True)),
                               to_sympy(f.lo, symbols), to_sympy(f.hi, symbols)) for f in loops]
        except NotAffine as exc:
            if "division by zero" in str(exc):
                bad = next(f for f in loops if _has_zero_division(f))
                raise KgenError("division by zero in a loop bound", bad.loc, source) from None
            continue  # non-affine loop bounds are left to the interpreter's run-time checks
        for dim, (ix, extent) in enumerate(zip(site.index, shape)):
            if isinstance(ix, Cast) and ix.type == IDX:  # idx(value): a table lookup
                _check_lookup(kernel, site, dim, ix, extent, symbols, model, source)
                continue
            try:
                proved = prove_in_range(to_sympy(ix, symbols), to_sympy(extent, symbols), sym_loops, model)
            except NotAffine as exc:
                raise KgenError(f"index '{print_expr(ix)}' of '{site.buf}' is not affine in the loop "
                                f"variables ({exc})", ix.loc or site.loc, source) from None
            if proved:
                continue
            cex = _counterexample(kernel, site, loops, dim, extent, guards)
            if cex is None and guarded:
                continue
            where = print_expr(ix)
            if cex is not None:
                sizes = ", ".join(f"{k}={v}" for k, v in cex.items() if k in kernel.sizes)
                iters = ", ".join(f"{f.var}={cex[f.var]}" for f in loops if f.var in cex)
                msg = (f"index '{where}' may leave '{site.buf}' (dimension {dim} has extent "
                       f"{print_expr(extent)}): with {sizes}{', ' + iters if iters else ''} it is "
                       f"{cex['__index__']}")
            else:
                msg = (f"cannot prove that index '{where}' stays inside '{site.buf}' (dimension {dim}, "
                       f"extent {print_expr(extent)}) for all sizes; add a 'where' constraint")
            raise KgenError(msg, ix.loc or site.loc, source)


def _check_lookup(kernel: Kernel, site: Load | Store, dim: int, ix: Cast, extent: Expr,
                  symbols: dict[str, sp.Symbol], model: SizeModel, source: str | None) -> None:
    """``buf[.., idx(v), ..]``: the value range of ``v`` (kgen.ranges) must lie in [0, extent)."""
    from .ranges import expr_range, variable_ranges

    lo, hi = expr_range(ix.a, variable_ranges(kernel)) or (ix.a.type.min, ix.a.type.max)
    ext = to_sympy(extent, symbols)
    if lo >= 0 and model.nonnegative(sp.expand(ext - 1 - hi)):
        return
    raise KgenError(f"lookup index '{print_expr(ix)}' of '{site.buf}' may leave dimension {dim} "
                    f"(extent {print_expr(extent)}): its value range is {lo}..{hi}; clamp it "
                    f"(e.g. with min/max or clip) or enlarge the table", ix.loc or site.loc, source)


def _has_zero_division(f: For) -> bool:
    return any(isinstance(x, Bin) and x.op in ("div", "mod") and x.b == Const(0, IDX)
               for e in (f.lo, f.hi) for x in walk_expr(e))


def to_sympy_cond_safe(w: Expr) -> None:
    """Evaluate a where-constraint's arithmetic once at size 1 to surface divisions by zero."""
    from .ir import Var as _Var

    env = {v.name: 1 for v in walk_expr(w) if isinstance(v, _Var)}
    try:
        eval_expr(w, env)
    except Exception as exc:  # noqa: BLE001 - re-raised as a located error by the caller
        raise ValueError(f"where-constraint cannot be evaluated ({exc})") from None


def _check_views(kernel: Kernel, symbols: dict[str, sp.Symbol], model: SizeModel, source: str | None) -> None:
    """Every element a view can address lies inside its base's storage (for views outside loops)."""
    from .ir import Alloc as _Alloc

    extents: dict[str, sp.Expr] = {}
    for p in kernel.buffers:
        dims = [to_sympy(d, symbols) for d in p.shape]
        if p.strides:
            extents[p.name] = 1 + sum((d - 1) * to_sympy(s, symbols) for d, s in zip(dims, p.strides))
        else:
            total = sp.Integer(1)
            for d in dims:
                total *= d
            extents[p.name] = total
    for s in kernel.body:  # top-level declarations (views inside loops are checked per access)
        if isinstance(s, _Alloc):
            total = sp.Integer(1)
            for d in s.shape:
                total *= to_sympy(d, symbols)
            extents[s.name] = total
        if isinstance(s, View) and s.base in extents:
            off = to_sympy(s.offset, symbols)
            last = off + sum((to_sympy(d, symbols) - 1) * to_sympy(st, symbols) for d, st in zip(s.shape, s.strides))
            ok = model.nonnegative(off) and model.nonnegative(extents[s.base] - 1 - last) and all(
                model.nonnegative(to_sympy(st, symbols)) for st in s.strides)
            if not ok:
                raise KgenError(f"view '{s.name}' may address elements outside '{s.base}' (its last element is "
                                f"{last}, the storage of '{s.base}' has {extents[s.base]} elements)", s.loc, source)


def _all_stmts(body: tuple[Stmt, ...]) -> Iterator[Stmt]:
    from .ir import walk_stmts

    return walk_stmts(body)


__all__ = ["check_kernel", "to_sympy", "size_model", "prove_in_range", "NotAffine", "BufferParam"]
