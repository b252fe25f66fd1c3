"""Multi-core split of any specialised kernel: every core runs the function (SPMD).

Each statement of the lowered single-core kernel gets one of three roles, level by level:

* **split**: a loop whose iterations are independent once its private arrays are privatised
  (:func:`kgen.backends.loopdeps.independent_iterations`) runs as ``@parallel(P)``: each core takes a
  balanced contiguous chunk.  Arrays private to it (:func:`kgen.backends.loopdeps.private_arrays`)
  that live in the caller's scratch are listed in ``@private(…)``: the scratch holds one copy per
  core and each core works in its own (stack arrays declared inside loops are per core already);
* **replicated**: pure code — scalar declarations and assignments, loops and branches that store
  only to per-core (stack) arrays — runs on every core with identical results, and so do loops
  whose bodies contain split loops (a loop over heads, its body transformed level by level);
* **one core**: anything else (straight-line stores, loops that are neither independent nor pure)
  runs in a ``kgen_serial`` region on core 0; scalars it assigns must be its own.

Barriers (``kgen_barrier``, an empty loop with ``@barrier``) are placed where a statement reads
shared storage that split or one-core code wrote since the last barrier, or writes shared storage
that any code read or wrote since then (root storages, conservatively; in a replicated loop the
whole body counts as "since the last barrier" at its top, for the previous iteration); the
function ends with one.  When a level cannot be handled this way, the whole kernel runs on core 0:
still correct, just serial.  Each loop takes the form with the least estimated work on the slowest
core (:func:`work`, :data:`BARRIER_COST`): split, split together with a perfectly nested inner loop
(collapsed, for balance when it has few iterations), replicated with its body transformed (for
instance a loop over a single head around split row loops), or replicated as is when pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import ceil

from ..ir import (IDX, Alloc, Assign, Attr, Const, Decl, For, If, Kernel, Stmt, Store, Var, View, stmt_exprs,
                  stmt_reads, walk_expr, walk_stmts)
from ..memo import by_identity, per_object
from .loopdeps import _assigned_outside, accesses, independent_iterations, private_arrays
from .nests import storages

#: estimated cost of a barrier (instructions of the slowest core, including some waiting)
BARRIER_COST = 40.0
#: estimated extra cost per iteration of a collapsed loop (the division and the addresses it recomputes)
COLLAPSE_COST = 12.0
BARRIER = "kgen_barrier"


class _Refuse(Exception):
    """The kernel cannot be run on all cores this way (the caller falls back to one core);
    ``name``: the scalar one-core code would assign although it is declared outside it."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


@dataclass
class _Sync:
    """Shared roots written / accessed since the last barrier."""

    written: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)


def _eff(trip: int, cores: int) -> float:
    return trip / (cores * ceil(trip / cores)) if trip > 0 else 0.0


def barrier() -> For:
    """The barrier statement: an empty loop that C emission spells ``kgen_barrier();``."""
    return For(BARRIER, Const(0, IDX), Const(0, IDX), (), (Attr("barrier"),))


def is_barrier(s: Stmt) -> bool:
    return isinstance(s, For) and s.var == BARRIER and s.has("barrier")


class Spmd:
    def __init__(self, kernel: Kernel, cores: int, private_budget: int | None = None) -> None:
        self.kernel = kernel
        self.cores = cores
        #: bytes the per-core copies of one split loop's private arrays may take together
        self.private_budget = private_budget
        self.alloc_bytes = {s.name: _bytes(s) for s in walk_stmts(kernel.body) if isinstance(s, Alloc)}
        self.st = storages(kernel)
        self.params = {p.name for p in kernel.buffers}
        #: arrays declared at the top level of the kernel: shared (the caller's scratch)
        self.shared_allocs = {s.name for s in kernel.body if isinstance(s, Alloc)}
        self.core0_scalars: set[str] = set()
        #: per-core arrays written by one-core code (only one-core code may read them)
        self.core0_arrays: set[str] = set()
        self.effs: list[float] = []
        self.plans: dict[tuple, tuple] = {}

    # ------------------------------------------------------------------------------ facts
    def _root(self, buf: str) -> str:
        return self.st[buf].root if buf in self.st else buf

    def shared(self, root: str) -> bool:
        return root in self.params or root in self.shared_allocs

    def writes(self, body: tuple[Stmt, ...]) -> set[str]:
        return {r for r in (self._root(s.buf) for s in walk_stmts(body) if isinstance(s, Store)) if self.shared(r)}

    def reads(self, body: tuple[Stmt, ...]) -> set[str]:
        return {a.root for a in accesses(self.kernel, body) if not a.store and self.shared(a.root)}

    @staticmethod
    def scalars_read(body: tuple[Stmt, ...]) -> set[str]:
        """Scalars ``body`` reads that it does not declare itself (a name declared inside a
        statement is that statement's own, whatever the same name means elsewhere)."""
        out: set[str] = set()
        for s in body:
            out |= _free_scalars(s)
        return out

    def pure(self, s: Stmt) -> bool:
        """Replicable as is: no store to shared storage, no split loop inside, no one-core data."""
        if any(isinstance(x, For) and x.has("parallel") for x in walk_stmts((s,))):
            return False
        if {a.root for a in accesses(self.kernel, (s,))} & self.core0_arrays:
            return False
        return not self.writes((s,)) and not (self.scalars_read((s,)) & self.core0_scalars)

    # ----------------------------------------------------------------------------- barriers
    def emit(self, out: list[Stmt], sync: _Sync, s: Stmt, reads: set[str], writes: set[str]) -> float:
        """Append ``s`` (after a barrier when it conflicts with unsynchronised accesses); returns the
        estimated cost of the barrier added."""
        cost = 0.0
        if (reads | writes) & sync.written or writes & sync.touched:
            out.append(barrier())
            sync.written, sync.touched = set(), set()
            cost = BARRIER_COST
        out.append(s)
        sync.written |= writes
        sync.touched |= reads | writes
        return cost

    def _attrs(self, private: tuple[str, ...] = ()) -> tuple[Attr, ...]:
        out = [Attr("parallel", (Const(self.cores, IDX),))]
        if private:
            out.append(Attr("private", tuple(Var(n, IDX) for n in private)))
        return tuple(out)

    # ------------------------------------------------------------------------------- roles
    def serial(self, stmts: list[Stmt]) -> For:
        body = tuple(stmts)
        declared = {s.name for s in walk_stmts(body) if isinstance(s, Decl)}
        assigned = {s.name for s in walk_stmts(body) if isinstance(s, Assign)}
        if assigned - declared:
            name = sorted(assigned - declared)[0]
            raise _Refuse(f"one-core code assigns {name} declared outside it", name)
        self.core0_scalars |= declared
        self.core0_arrays |= {self._root(x.buf) for x in walk_stmts(body) if isinstance(x, Store)} - \
            {r for r in self.params | self.shared_allocs}
        return For("kgen_serial", Const(0, IDX), Const(1, IDX), body, self._attrs())

    def split_plan(self, lp: For) -> tuple[str, ...] | None:
        """The scratch arrays to privatise when ``lp`` can be split, else None."""
        if not (isinstance(lp.lo, Const) and isinstance(lp.hi, Const)) or lp.hi.value - lp.lo.value < 2:
            return None
        if self.scalars_read((lp,)) & self.core0_scalars or _assigned_outside(lp):
            return None
        key = (id(lp), frozenset(self.core0_arrays))
        hit = self.plans.get(key)
        if hit is None or hit[0] is not lp:
            hit = (lp, self._split_plan(lp))
            self.plans[key] = hit
        return hit[1]

    def _split_plan(self, lp: For) -> tuple[str, ...] | None:
        private = private_arrays(self.kernel, lp)
        if not independent_iterations(self.kernel, lp, private):
            return None
        # per-core arrays declared outside the loop: those it writes must be private to it (each core
        # fills its own chunk), those it reads must be complete on every core (not one-core data)
        inner = {s.name for s in walk_stmts(lp.body) if isinstance(s, Alloc)}
        acc = [a for a in accesses(self.kernel, lp.body) if not self.shared(a.root) and a.root not in inner]
        if {a.root for a in acc if a.store} - private or {a.root for a in acc} & self.core0_arrays:
            return None
        own = tuple(sorted(r for r in private if r in self.shared_allocs))
        if self.private_budget is not None and \
                sum(-(-self.alloc_bytes[r] // 8) * 8 for r in own) * self.cores > self.private_budget:
            return None  # the copies would not fit the memory the cores share
        return own

    def level(self, body: tuple[Stmt, ...], sync: _Sync) -> tuple[list[Stmt], float]:
        """The statements of one level transformed, and the estimated work of the slowest core.  When
        one-core code must assign a scalar declared earlier at this level, the level is redone with
        everything from that declaration on one core."""
        start = (set(self.core0_scalars), set(self.core0_arrays), list(self.effs), set(sync.written),
                 set(sync.touched))
        force: int | None = None
        while True:
            try:
                return self._level(body, sync, force)
            except _Refuse as exc:
                d = next((i for i, x in enumerate(body) if isinstance(x, Decl) and x.name == exc.name), None)
                if exc.name is None or d is None or (force is not None and d >= force):
                    raise
                force = d
                self.core0_scalars, self.core0_arrays, self.effs = set(start[0]), set(start[1]), list(start[2])
                sync.written, sync.touched = set(start[3]), set(start[4])

    def _level(self, body: tuple[Stmt, ...], sync: _Sync, force: int | None) -> tuple[list[Stmt], float]:
        out: list[Stmt] = []
        pending: list[Stmt] = []  # consecutive one-core statements
        cost = [0.0]

        def flush() -> None:
            if pending:
                region = self.serial(pending)
                cost[0] += self.emit(out, sync, region, self.reads(region.body), self.writes(region.body))
                cost[0] += work(region.body)
                pending.clear()

        i = 0
        while i < len(body):
            s = body[i]
            i += 1
            if isinstance(s, (Alloc, View)) and (force is None or i - 1 < force):
                flush()
                out.append(s)
                continue
            if force is not None and i - 1 >= force:
                pending.extend(body[i - 1:])
                break
            if isinstance(s, For):
                flush()
                c = self.loop(s, out, sync)
                if c is not None:
                    cost[0] += c
                    continue
            elif self.pure(s) and not (pending and isinstance(s, (Decl, Assign))):
                # (a scalar between one-core statements joins their region instead of splitting it)
                flush()
                cost[0] += self.emit(out, sync, s, self.reads((s,)), set()) + work((s,))
                continue
            pending.append(s)
            # a one-core region extends to the last statement that reads a scalar it declares
            while True:
                declared = {x.name for x in walk_stmts(tuple(pending)) if isinstance(x, Decl)}
                last = max((j for j in range(i, len(body)) if declared & self.scalars_read((body[j],))), default=None)
                if last is None:
                    break
                pending.extend(body[i:last + 1])
                i = last + 1
        flush()
        return out, cost[0]

    def loop(self, s: For, out: list[Stmt], sync: _Sync) -> float | None:
        """Append loop ``s`` in its cheapest form — split (possibly collapsed with a perfectly nested
        inner loop), replicated with its body transformed, or replicated as is — and return its
        estimated cost on the slowest core; None: it must run on one core."""
        trip = s.hi.value - s.lo.value if isinstance(s.lo, Const) and isinstance(s.hi, Const) else 0
        options: list[tuple[float, int, object]] = []
        for k, cand in enumerate(self._split_candidates(s)):
            plan = self.split_plan(cand)
            if plan is not None:
                t = cand.hi.value - cand.lo.value  # type: ignore[union-attr]
                per = work(cand.body) + (COLLAPSE_COST if cand is not s else 0)
                options.append((per * ceil(t / self.cores) + BARRIER_COST, k, ("split", cand, plan)))
        replicated = None
        if trip >= 1 and not (self.scalars_read((s,)) & self.core0_scalars):
            saved = (set(self.core0_scalars), set(self.core0_arrays))
            saved_effs, self.effs = self.effs, []
            inner_sync = _Sync(sync.written | self.writes(s.body), sync.touched | self.writes(s.body) |
                               self.reads(s.body))
            try:
                body, c = self.level(s.body, inner_sync)
                if any(isinstance(x, For) and x.has("parallel") and x.var != "kgen_serial" for x in walk_stmts(tuple(body))):
                    replicated = (replace(s, body=tuple(body)), inner_sync,
                                  (set(self.core0_scalars), set(self.core0_arrays)), self.effs)
                    options.append((trip * c, 9, ("replicate",)))
            except _Refuse:
                pass
            self.core0_scalars, self.core0_arrays = saved
            self.effs = saved_effs
        if self.pure(s):
            options.append((work((s,)), 10, ("pure",)))
        if not options:
            return None
        best, _, choice = min(options, key=lambda o: (o[0], o[1]))
        if choice[0] == "split":
            _, cand, plan = choice
            return self._split(cand, plan, out, sync) + best
        if choice[0] == "replicate":
            loop, inner_sync, core0, effs = replicated  # type: ignore[misc]
            out.append(loop)
            sync.written, sync.touched = inner_sync.written, inner_sync.touched
            self.core0_scalars, self.core0_arrays = core0
            self.effs.extend(effs)
            return best
        return self.emit(out, sync, s, self.reads((s,)), set()) + best

    def _split_candidates(self, s: For) -> list[For]:
        """``s`` itself and, when ``s`` and its only statement are 0-based constant loops, the two
        collapsed into one (better balance when ``s`` has few iterations)."""
        out = [s]
        if len(s.body) == 1 and isinstance(s.body[0], For):
            c = collapse(s)
            if c is not None:
                out.append(c)
        return out

    def _split(self, s: For, private: tuple[str, ...], out: list[Stmt], sync: _Sync) -> float:
        self.effs.append(_eff(s.hi.value - s.lo.value, self.cores))  # type: ignore[union-attr]
        # (core 0's copy of a privatised array is the array itself, which code after the loop may
        # reuse: it counts as written by the loop)
        reads = {a.root for a in accesses(self.kernel, s.body) if not a.store and self.shared(a.root)}
        return self.emit(out, sync, replace(s, attrs=s.attrs + self._attrs(private)), reads, self.writes(s.body))


def collapse(outer: For) -> For | None:
    """``for a in 0..A { for b in 0..B { S } }`` → ``for t in 0..A·B { S[a := t / B, b := t - B·(t / B)] }``
    (indices stay affine in ``t`` and ``t / B``), or None when the loops are not of that form."""
    from ..ir import Bin
    from ..rewrite import substitute_body

    inner = outer.body[0]
    if not (isinstance(inner, For) and all(isinstance(x, Const) for x in (outer.lo, outer.hi, inner.lo, inner.hi))):
        return None
    if outer.lo.value != 0 or inner.lo.value != 0:  # type: ignore[union-attr]
        return None
    a, b = outer.hi.value, inner.hi.value  # type: ignore[union-attr]
    t = Var(f"{outer.var}_{inner.var}", IDX)
    q = Bin("div", t, Const(b, IDX), IDX)
    env = {outer.var: q, inner.var: Bin("sub", t, Bin("mul", Const(b, IDX), q, IDX), IDX)}
    return For(t.name, Const(0, IDX), Const(a * b, IDX), substitute_body(inner.body, env), (), outer.loc)


def sub_bodies_of(s: Stmt) -> tuple[Stmt, ...]:
    """The statements nested in ``s`` (its own scope)."""
    if isinstance(s, For):
        return s.body
    if isinstance(s, If):
        return s.then + s.orelse
    return ()


@by_identity(100_000)
def work(body: tuple[Stmt, ...]) -> float:
    """Rough instruction count of running ``body`` once (for choosing what to split)."""
    total = 0.0
    for s in body:
        if isinstance(s, For):
            trip = s.hi.value - s.lo.value if isinstance(s.lo, Const) and isinstance(s.hi, Const) else 1
            total += max(trip, 0) * (work(s.body) + 1)
        elif isinstance(s, If):
            total += 1 + max(work(s.then), work(s.orelse))
        elif not isinstance(s, (Alloc, View)):  # data operations; index arithmetic is strength-reduced
            total += 1 + sum(1 for e in stmt_exprs(s) for x in walk_expr(e) if x.type.is_data) / 2
    return total


def _bytes(a: Alloc) -> int:
    n = a.type.bits // 8
    for d in a.shape:
        n *= d.value if isinstance(d, Const) else 1 << 20
    return n


@per_object
def _free_scalars(s: Stmt) -> frozenset[str]:
    """The scalars ``s`` reads and does not declare."""
    read = stmt_reads(s)[0]
    own = {st.name for st in walk_stmts(sub_bodies_of(s)) if isinstance(st, Decl)} | \
        {st.var for st in walk_stmts((s,)) if isinstance(st, For)}
    return frozenset(read - own)


def parallelize(kernel: Kernel, cores: int, private_budget: int | None = None) -> Kernel:
    """``kernel`` (lowered, specialised) run by ``cores`` cores (module docstring); a loop is only
    split if the per-core copies of its private arrays take at most ``private_budget`` bytes."""
    sp = Spmd(kernel, cores, private_budget)
    try:
        body, _ = sp.level(kernel.body, _Sync())
    except _Refuse:
        body = []
    if not sp.effs:
        par = (Attr("parallel", (Const(cores, IDX),)),)
        return replace(kernel, body=(For("kgen_serial", Const(0, IDX), Const(1, IDX), kernel.body, par),))
    return replace(kernel, body=tuple(body))


def parallel_note(kernel: Kernel, cores: int) -> str:
    """Documentation of how a parallelised kernel uses the cores."""
    loops = [s for s in walk_stmts(kernel.body) if isinstance(s, For) and s.has("parallel") and s.var != "kgen_serial"]
    if not loops:
        return (f"Every one of the {cores} cores calls the function; it runs on core 0 (no loop could be split "
                f"provably), and ends with a barrier.")
    private = sorted({n for s in loops for n in private_names(s)})
    own = (f" Each core works in its own copy of {', '.join(f'`{n}`' for n in private)} (the scratch buffer holds "
           f"{cores} copies)." if private else "")
    return (f"Every one of the {cores} cores calls the function: loops "
            f"{', '.join(f'`{s.var}`' for s in loops)} are split in balanced contiguous chunks, pure code runs on "
            f"every core, the rest on core 0, with barriers where data crosses cores; it ends with a barrier.{own}")


def private_names(loop: For) -> tuple[str, ...]:
    """Arrays listed in a loop's ``@private(…)``."""
    attr = next((a for a in loop.attrs if a.name == "private"), None)
    return tuple(a.name for a in attr.args if isinstance(a, Var)) if attr else ()


__all__ = ["parallelize", "parallel_note", "private_names", "barrier", "is_barrier", "BARRIER"]
