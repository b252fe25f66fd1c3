"""Static instruction and cycle counts of a (lowered) kernel: the cost model behind kgen's predictions.

The model walks the IR that a backend emits as C and counts, per statement and expression, the
machine operations the toolchain turns it into (a *count vector*: instruction class -> number),
multiplied by loop trip counts.  What a C operation costs is data (the toolchain file's ``[ops]``,
``isa/platforms/FORMAT.md``); ISA instructions (``isa.*`` calls) count one instruction of their
own class, whose cycles come from the ISA file.  The walk models what an optimising compiler does
to the structure, no more:

- **common subexpressions**: a pure expression already computed in the same straight-line block
  (and not invalidated by an assignment or a store) costs nothing;
- **loop-invariant code motion**: an expression invariant in a loop is charged once per execution
  of the outermost loop it is invariant in;
- **address streams**: index arithmetic is strength-reduced into pointers; each distinct stream
  (buffer and index pattern) stepping with a loop costs ``stream_step`` per iteration (free with
  post-increment addressing when the stream has a single access) and ``stream_entry`` per loop
  execution;
- **loop overhead**: ``iteration`` per iteration (the back branch is taken except on exit),
  ``counter`` when no pointer stream can serve as the induction variable, ``entry`` per execution;
- **register pressure**: a block that needs more registers than the ISA allows spills
  (:meth:`CostWalk.spills`); invariant values a rolled loop leaves no register for are reloaded
  once per iteration (:meth:`CostWalk.reloads`);
- **full unrolling**: a loop with a constant trip count ``T <= full_unroll_max_trip`` whose
  unrolled size ``T × body`` stays within ``full_unroll_max_insns`` has no loop overhead;
- **data-dependent branches** take either side with equal probability; index-only conditions
  take the side their index values select (fraction computed exactly over the loop space);
- **path splitting** (toolchains with ``split_constant_selects``): a scalar that takes one of a
  few constants and multiplies later in its block makes the compiler branch and specialise the
  rest of the block per constant (:mod:`kgen.model.paths`);
- ``@parallel(P)`` loops are charged with ``ceil(T / P)`` iterations: the critical path of one core.

Trip counts may be sympy expressions (a symbolic formula in the shape symbols); unrolling and branch
decisions are then taken at the concrete ``sizes`` given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import sympy as sp

from ..ir import (IDX, Alloc, Assign, Bin, Call, Const, Decl, Expr, For, If, Kernel, Load, Stmt, Store, Var, View,
                  stmt_exprs, sub_bodies, walk_expr, walk_stmts)
from ..memo import by_identity, per_object
from .platform import Toolchain, instructions_of
from .cost_expr import ExprCosts, _free, _iadd, add, scale
from .paths import dependents, signs, specialise, splits
from .regs import Pressure, block_pressure, scalars_declared

Counts = dict[str, Any]


class _Avail:
    """Expressions available in registers, indexed by the names and buffers they read."""

    def __init__(self) -> None:
        self.items: set = set()
        self.by_name: dict[str, set] = {}
        self.by_buf: dict[str, set] = {}

    def __contains__(self, e: Expr) -> bool:
        return e in self.items

    def add(self, e: Expr) -> None:
        if e in self.items:
            return
        self.items.add(e)
        names, bufs = _free(e)
        for n in names:
            self.by_name.setdefault(n, set()).add(e)
        for b in bufs:
            self.by_buf.setdefault(b, set()).add(e)

    def invalidate(self, names: Iterable[str], bufs: Iterable[str]) -> None:
        for table, keys in ((self.by_name, names), (self.by_buf, bufs)):
            for k in keys:
                for e in table.pop(k, ()):
                    self.items.discard(e)

    def copy(self) -> "_Avail":
        out = _Avail()
        out.items = set(self.items)
        out.by_name = {k: set(v) for k, v in self.by_name.items()}
        out.by_buf = {k: set(v) for k, v in self.by_buf.items()}
        return out


@dataclass
class _Frame:
    """A loop being walked: what varies in it and what is hoisted to its pre-header (at most
    ``budget`` values: the registers its body leaves free)."""

    var: str
    variant: set[str]
    stored: set[str]
    avail: "_Avail"
    budget: int = 0
    hoisted: Counts = field(default_factory=dict)
    nhoisted: float = 0
    #: trip count when the compiler unrolls this loop completely, else 0
    unrolled: int = 0


@dataclass(frozen=True)
class LoopReport:
    """One loop of the walk (for ``kgen explain``): trip, unrolled by the compiler, streams."""

    var: str
    depth: int
    trip: Any
    unrolled: bool
    streams: int
    body_instructions: float


def _assigned(body: tuple[Stmt, ...]) -> tuple[set[str], set[str]]:
    names, bufs = set(), set()
    for s in walk_stmts(body):
        if isinstance(s, (Assign, Decl)):
            names.add(s.name)
        elif isinstance(s, For):
            names.add(s.var)
        elif isinstance(s, Store):
            bufs.add(s.buf)
    return names, bufs


def _strip_const(e: Expr) -> Expr:
    """An index with its constant terms removed (accesses differing by a constant share a pointer)."""
    if isinstance(e, Const):
        return Const(0, e.type)
    if isinstance(e, Bin) and e.op in ("add", "sub"):
        a, b = _strip_const(e.a), _strip_const(e.b)
        if isinstance(b, Const) and b.value == 0:
            return a
        if isinstance(a, Const) and a.value == 0 and e.op == "add":
            return b
        return Bin(e.op, a, b, e.type)
    return e


class CostWalk(ExprCosts):
    """One walk of a kernel under a toolchain model.  ``count()`` returns the count vector of one call."""

    def __init__(self, kernel: Kernel, toolchain: Toolchain, paired: Iterable[str] = (),
                 sizes: Mapping[str, int] | None = None, symbols: Mapping[str, sp.Symbol] | None = None,
                 allocatable: int = 14, only: Any = None) -> None:
        self.kernel = kernel
        self.tc = toolchain
        self.paired = frozenset(paired)
        self.sizes = dict(sizes or {})
        self.symbols = dict(symbols or {})
        self.frames: list[_Frame] = []
        self.loops: list[tuple[Any, Any]] = []  # (var, numeric range) of enclosing loops
        self.memo: dict = {}
        self.reports: list[LoopReport] = []
        self.has_parallel = False
        self.only = only
        self.estimates: dict[int, tuple[tuple[Stmt, ...], float]] = {}
        self.allocatable = allocatable
        self.reserved = int(toolchain.loops.get("reserved_registers", 2))
        self.all_scalars, self.locals = _kernel_names(kernel)

    # ------------------------------------------------------------------------------ numbers
    def trip(self, s: For) -> tuple[Any, float]:
        """(trip count as written — a number or a sympy expression, its numeric value)."""
        from ..check import NotAffine, to_sympy

        if isinstance(s.lo, Const) and isinstance(s.hi, Const):
            t = max(s.hi.value - s.lo.value, 0)
            return t, float(t)
        try:
            syms = {n: sp.Symbol(n, integer=True) for n in self.symbols}
            expr = sp.Max(to_sympy(s.hi, syms) - to_sympy(s.lo, syms), 0)
        except NotAffine:
            expr = sp.Integer(1)
        env = {sp.Symbol(k, integer=True): v for k, v in self.sizes.items()}
        for var, rng in self.loops:
            env[sp.Symbol(var, integer=True)] = (rng[0] + rng[1] - 1) / 2
        num = float(expr.subs(env)) if expr.free_symbols else float(expr)
        sym = expr.subs({sp.Symbol(v, integer=True): (r[0] + r[1] - 1) / 2 for v, r in self.loops})
        return sym, num

    # ------------------------------------------------------------------------------ statements
    def block(self, body: tuple[Stmt, ...], avail: "_Avail") -> Counts:
        total: Counts = {}
        if self.only is not None:
            return self.masked_block(body, avail)
        split = bool(self.tc.loops.get("split_constant_selects", False))
        todo = list(body)
        while todo:
            s = todo.pop(0)
            arms = splits(s, tuple(todo)) if split else None
            if arms is not None:
                dep, todo = dependents(s, todo)
                _iadd(total, self.split_paths(s, arms, dep, avail))
                continue
            if isinstance(s, Decl):
                if s.init is not None:
                    _iadd(total, self.expr(s.init, avail))
                avail.invalidate((s.name,), ())
            elif isinstance(s, Assign):
                _iadd(total, self.expr(s.value, avail))
                avail.invalidate((s.name,), ())
            elif isinstance(s, Store):
                _iadd(total, self.expr(s.value, avail, into_store=True))
                if isinstance(s.value, Load) and s.value.type.lanes == 1:
                    _iadd(total, {"load_use": 1})
                _iadd(total, self.op("store"))
                avail.invalidate((), (s.buf,))
            elif isinstance(s, If):
                _iadd(total, self.if_stmt(s, avail))
            elif isinstance(s, For) and s.has("barrier") and not s.body:  # kgen_barrier()
                self.has_parallel = True
                _iadd(total, self.tc.parallel.get("barrier", {}))
            elif isinstance(s, For):
                _iadd(total, self.loop(s, avail))
            elif isinstance(s, (Alloc, View)):
                continue
        return total

    def split_paths(self, s: Decl, arms: list, rest: tuple[Stmt, ...], avail: "_Avail") -> Counts:
        """A block whose scalar ``s`` takes one of a few constants, split into one path per
        constant (:mod:`kgen.model.paths`): the conditions on the way to each arm (a compare and a
        data-dependent branch, weighted by how often they are reached), then each arm's copy of
        ``rest`` (the statements that depend on ``s``) with the constant folded in, weighted by the
        arm's probability, and the jump back to the join on every path but the fall-through one."""
        total: Counts = {}
        reach: dict[tuple, float] = {}
        for p, conds, _ in arms:
            cs = tuple(c for c, _ in conds)
            for j in range(len(cs)):
                reach[cs[:j + 1]] = reach.get(cs[:j + 1], 0.0) + p
        for node, p in reach.items():
            _iadd(total, add(self.expr(node[-1], avail.copy()), self.op("branch_if")), p)
        for i, (p, conds, value) in enumerate(arms):
            _iadd(total, self.block(specialise(rest, s.name, value, signs(conds)), avail.copy()), p)
            if i:  # every path but the fall-through one jumps back to where the paths join
                _iadd(total, {"branch_taken": p})
        names, bufs = _assigned(rest)
        avail.invalidate(names | {s.name}, bufs)
        return total

    def masked_block(self, body: tuple[Stmt, ...], avail: "_Avail") -> Counts:
        """:meth:`block` counting only the statements ``self.only`` selects (and the loops and
        branches around them)."""
        only, self.only = self.only, None
        total: Counts = {}
        try:
            for s in body:
                if isinstance(s, (For, If)) and self._selects(s, only):
                    self.only = only
                    _iadd(total, self.loop(s, avail) if isinstance(s, For) else self.if_stmt(s, avail))
                    self.only = None
                elif isinstance(s, (Decl, Assign, Store)) and only(s):
                    _iadd(total, self.block((s,), avail))
                elif isinstance(s, (Decl, Assign)):
                    self.expr(s.init if isinstance(s, Decl) and s.init is not None else Const(0, IDX), avail)
                    avail.invalidate((s.name,), ())
                elif isinstance(s, Store):
                    avail.invalidate((), (s.buf,))
        finally:
            self.only = only
        return total

    def _selects(self, s: Stmt, only: Any) -> bool:
        """``only`` selects a statement in ``s`` (nested ones included; cached per statement)."""
        key = ("selects", id(s))
        hit = self.memo.get(key)
        if hit is None or hit[0] is not s:
            if isinstance(s, (Decl, Assign, Store)):
                found = bool(only(s))
            else:
                found = any(self._selects(x, only) for b in sub_bodies(s) for x in b)
            hit = self.memo[key] = (s, found)
        return hit[1]

    def if_stmt(self, s: If, avail: "_Avail") -> Counts:
        names, _ = _free(s.cond)
        loop_vars = {v for v, _ in self.loops}
        index_only = all(isinstance(x, Var) and x.type == IDX for x in walk_expr(s.cond) if isinstance(x, Var))
        then = self.block(s.then, avail.copy())
        orelse = self.block(s.orelse, avail.copy())
        if index_only:
            frac = self.fraction_true(s.cond)
            total = add(scale(then, frac), scale(orelse, 1 - frac))
            if names & loop_vars and 0 < frac < 1:
                _iadd(total, self.op("index_if"))
            return total
        total = self.expr(s.cond, avail)
        _iadd(total, self.op("branch_if"))
        _iadd(total, scale(add(then, orelse), 0.5))
        return total

    def fraction_true(self, cond: Expr) -> float:
        """Fraction of the enclosing loop space (at the concrete sizes) where an index condition holds."""
        from ..interp import eval_expr

        names = {x.name for x in walk_expr(cond) if isinstance(x, Var)}
        loops = [(v, r) for v, r in self.loops if v in names]
        env = {k: v for k, v in self.sizes.items()}
        points = [env]
        for v, (lo, hi) in loops:
            lo_i, hi_i = int(lo), int(hi)
            if hi_i <= lo_i or len(points) * (hi_i - lo_i) > 1 << 14:
                return 0.5
            points = [dict(p, **{v: i}) for p in points for i in range(lo_i, hi_i)]
        try:
            hits = sum(1 for p in points if eval_expr(cond, p))
        except (KeyError, ValueError, ZeroDivisionError):
            return 0.5
        return hits / len(points)

    def streams(self, s: For) -> tuple[int, int]:
        """(address streams stepping with loop ``s``, streams needing an explicit pointer step)."""
        post = bool(self.tc.loops.get("post_increment", False))
        return _streams(s, post)

    def estimate(self, body: tuple[Stmt, ...]) -> float:
        """Instructions of one execution of ``body`` on its own (for unrolling decisions)."""
        key = id(body)
        if key not in self.estimates:
            w = CostWalk(self.kernel, self.tc, self.paired, self.sizes, self.symbols, self.allocatable, self.only)
            w.loops = list(self.loops)
            w.estimates = self.estimates
            self.estimates[key] = (body, float(instructions_of(w.block(body, _Avail()), self.tc)))
        return self.estimates[key][1]

    def unrolls(self, s: For, sym_trip: Any, trip: float, n_streams: int) -> bool:
        """Does the compiler unroll loop ``s`` completely?"""
        lp = self.tc.loops
        if trip == 1:
            return True
        if not isinstance(sym_trip, int) or trip > lp["full_unroll_max_trip"] or trip > lp["full_unroll_max_insns"]:
            return False
        floor = _instruction_floor(s)
        if trip * floor > lp["full_unroll_max_insns"]:
            return False  # every store and ISA instruction is at least one instruction
        per = self.estimate(s.body) + lp.get("unroll_stream_size", 0) * n_streams + lp.get("unroll_iteration_size", 0)
        return trip * per <= lp["full_unroll_max_insns"]

    def loop(self, s: For, avail: "_Avail") -> Counts:
        sym_trip, trip = self.trip(s)
        if trip <= 0:
            return {}
        parallel = next((a for a in s.attrs if a.name == "parallel"), None)
        if parallel is not None:
            self.has_parallel = True
            cores = parallel.args[0].value if parallel.args and isinstance(parallel.args[0], Const) else 1
            sym_trip = sp.ceiling(sp.sympify(sym_trip) / cores) if not isinstance(sym_trip, int) else -(-sym_trip // cores)
            trip = math.ceil(trip / cores)
        n_streams, n_step = self.streams(s)
        lo = float(s.lo.value) if isinstance(s.lo, Const) else 0.0
        self.loops.append((s.var, (lo, lo + trip)))
        try:
            unrolled = parallel is None and self.unrolls(s, sym_trip, trip, n_streams)
        finally:
            self.loops.pop()
        names, bufs = _assigned(s.body)
        pressure = block_pressure(s.body, self.declared_outside(s))
        need = pressure.need(self.reserved)
        budget = max(0, self.allocatable - need - pressure.inputs - int(self.tc.loops.get("licm_reserved", 0))
                     - int(sum(f.nhoisted for f in self.frames)))
        frame = _Frame(s.var, names | {s.var}, bufs, _Avail(), budget, unrolled=int(trip) if unrolled else 0)
        inner = avail.copy()
        inner.invalidate(frame.variant, bufs)
        self.frames.append(frame)
        self.loops.append((s.var, (lo, lo + trip)))
        try:
            body = self.block(s.body, inner)
        finally:
            self.frames.pop()
            self.loops.pop()
        avail.invalidate(frame.variant, bufs)
        _iadd(body, self.spills(pressure))
        size = float(instructions_of(body, self.tc))
        self.reports.append(LoopReport(s.var, len(self.frames), sym_trip, unrolled, n_streams, size))
        lp = self.tc.loops
        total: Counts = {}
        straight = not any(isinstance(x, For) for x in walk_stmts(s.body))
        if (unrolled and trip > 1 or straight and body.get("load_use", 0) >= 2) and "load_use" in body:
            # the scheduler separates some loads from their uses in a body with several independent
            # loads: one the compiler unrolled, or a straight-line body of several (unrolled) copies
            body = dict(body, load_use=body["load_use"] * float(lp.get("unrolled_load_use", 1.0)))
        if unrolled:
            _iadd(total, body, sym_trip)
        else:
            per_iter = add(add(body, scale(lp["stream_step"], n_step)), self.reloads(pressure))
            it = dict(lp["iteration"])
            back = it.pop("branch", 0)
            _iadd(per_iter, it)
            if n_streams == 0:
                _iadd(per_iter, lp["counter"])
            _iadd(total, per_iter, sym_trip)
            _iadd(total, {"branch_taken": back}, sym_trip - 1)
            _iadd(total, {"branch_nt": back})
            _iadd(total, lp["entry"])
            _iadd(total, lp["stream_entry"], n_streams)
        if parallel is not None:
            _iadd(total, self.tc.parallel.get("setup", {}))
        _iadd(total, frame.hoisted)
        return total

    def declared_outside(self, s: For) -> frozenset[str]:
        return self.all_scalars - scalars_declared(s.body)

    def reloads(self, p: Pressure) -> Counts:
        """Invariant values a rolled loop's body leaves no register for: the body's live values,
        a pointer per buffer it addresses, the scalars it reads from outside and the loop's bound
        compete for the allocatable registers; each value that does not fit stays in memory and is
        loaded once per iteration (where the block's own values have died, e.g. the epilogue)."""
        excess = p.live + p.carried + p.addressed + self.reserved + p.inputs + 1 - self.allocatable
        return scale(self.op("load"), excess) if excess > 0 and p.updates else {}

    def spills(self, p: Pressure) -> Counts:
        """Spill code of a block that needs more registers than the ISA allows: per update, a
        reload and a store with probability ``0.25 + excess/16`` each (at most 0.75), i.e. one to
        one and a half extra instructions per accumulator update once the block spills."""
        need = p.need(self.reserved)
        if need <= self.allocatable or p.updates == 0:
            return {}
        k = min(0.75, 0.25 + (need - self.allocatable) / 16) * p.updates
        return add(scale(self.op("load"), k), scale(self.op("store"), k))

    def count(self) -> Counts:
        top = block_pressure(self.kernel.body)
        total = self.block(self.kernel.body, _Avail())
        if self.only is not None:
            return {k: v for k, v in total.items() if v}
        _iadd(total, self.spills(top))
        _iadd(total, self.tc.function)
        if self.has_parallel:
            _iadd(total, self.tc.parallel.get("barrier", {}))
        return {k: v for k, v in total.items() if v}


@per_object
def _kernel_names(kernel: Kernel) -> tuple[frozenset[str], frozenset[str]]:
    """(the kernel's scalars, its local arrays and the views of their storage): every sub-walk asks."""
    scalars = scalars_declared(kernel.body) | frozenset(p.name for p in kernel.scalars)
    local: set[str] = set()
    for st in walk_stmts(kernel.body):
        if isinstance(st, Alloc) or (isinstance(st, View) and st.base in local):
            local.add(st.name)
    return scalars, frozenset(local)


@per_object
def _loads_in(e: Expr) -> tuple[Load, ...]:
    return tuple(x for x in walk_expr(e) if isinstance(x, Load))


@by_identity(200_000)
def _names_in(index: tuple[Expr, ...]) -> frozenset[str]:
    return frozenset(v.name for i in index for v in walk_expr(i) if isinstance(v, Var))


@per_object
def _instruction_floor(s: For) -> int:
    """Instructions one iteration of ``s`` runs at least: its stores and ISA instructions."""
    n = 0
    for st in s.body:  # nested loops from their own (cached) floors
        if isinstance(st, For):
            n += _instruction_floor(st)
            continue
        n += isinstance(st, Store) + sum(1 for e in stmt_exprs(st) for x in walk_expr(e)
                                         if isinstance(x, Call) and x.fn.startswith("isa."))
        if isinstance(st, If):
            n += _instruction_floor(For("_", Const(0, IDX), Const(1, IDX), st.then + st.orelse))
    return n


@by_identity(50_000)
def _streams(s: For, post: bool) -> tuple[int, int]:
    """(address streams stepping with loop ``s``, streams needing an explicit pointer step when
    the toolchain has (``post``) or lacks post-increment addressing)."""
    sites: dict[tuple, int] = {}

    def visit(e: Expr, direct: bool) -> None:
        for x in _loads_in(e):
            note(x.buf, x.index, direct)

    def note(buf: str, index: tuple[Expr, ...], direct: bool) -> None:
        if s.var not in _names_in(index):
            return
        key = (buf, tuple(_strip_const(i) for i in index))
        sites[key] = sites.get(key, 0) + (1 if direct else 2)

    def walk(body: tuple[Stmt, ...], direct: bool) -> None:
        for st in body:
            if isinstance(st, Store):
                note(st.buf, st.index, direct)
            if isinstance(st, For):
                walk(st.body, False)
                continue
            for e in stmt_exprs(st):
                visit(e, direct)
            if isinstance(st, If):
                walk(st.then, direct)
                walk(st.orelse, direct)

    walk(s.body, True)
    stepped = sum(1 for n in sites.values() if not (post and n == 1))
    return len(sites), stepped


def count_kernel(kernel: Kernel, toolchain: Toolchain, paired: Iterable[str] = (),
                 sizes: Mapping[str, int] | None = None, allocatable: int = 14, only: Any = None
                 ) -> tuple[Counts, list[LoopReport]]:
    """Count vector of one call of ``kernel`` (lowered IR) and the report of every loop; with
    ``only`` (a statement predicate), of the selected statements and the loops around them."""
    w = CostWalk(kernel, toolchain, paired, sizes, {n: None for n in kernel.sizes}, allocatable, only)
    return w.count(), w.reports


__all__ = ["Counts", "CostWalk", "LoopReport", "count_kernel", "add", "scale"]
