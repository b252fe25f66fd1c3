"""Schedule choice: register tile (rows × cols), K-unroll and memory tile by minimising predicted cycles.

For a kernel with a contraction (:func:`kgen.backends.contraction.find_contraction`), every
candidate register tile that can hold its accumulators and one operand register per row and per
column (``R·C + R + C <= allocatable``, the ISA file's register budget) is lowered by the real
backend and counted by the cost model; candidates whose lowered register block needs more
registers than the ISA allows (:mod:`kgen.model.regs`) are infeasible.  The K-unroll factor is then
varied for the best tiles.  The memory tile is the largest number of rows of the contraction's
``m`` extent (a multiple of R) whose operands fit the memory budget; a budget that not even one
row block fits is refused, naming the buffer that binds.  Every choice can be forced (DSL loop
annotations ``@tile(R, C)`` on the contraction's outer loop and ``@k_unroll(U)`` on its reduction
loop, or the command line); a forced choice that cannot work is an error naming the constraint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Mapping

from ..errors import KgenError
from ..interp import eval_expr
from ..ir import Alloc, BufferParam, Const, For, Kernel, walk_stmts
from .platform import Platform, platform_for
from .predict import Prediction, allocatable, predict_lowered
from .regs import block_pressure

#: Register tiles considered (rows, cols); the ISA register budget prunes them further.
TILES = ((1, 4), (4, 1), (2, 2), (2, 3), (3, 2), (2, 4), (4, 2), (3, 3), (3, 4), (4, 3), (4, 4))
#: K-unroll factors tried on the best tiles (the backends' default is 64).
K_UNROLLS = (64, 16)
DEFAULT_K_UNROLL = 64


@dataclass(frozen=True)
class Candidate:
    """One lowered schedule and what the model says about it."""

    tile: tuple[int, int]
    k_unroll: int
    instructions: int
    cycles: int
    registers: int
    buffers: dict[str, int]          # bytes of every operand and local array at the full shape
    feasible: bool = True
    reason: str = ""
    memory_tile: int | None = None   # rows of m per call (None: the whole extent)
    calls: int = 1
    operand_bytes: int = 0           # bytes the operand memory holds per call

    @property
    def label(self) -> str:
        return f"{self.tile[0]}x{self.tile[1]}, k_unroll {self.k_unroll}"


@dataclass(frozen=True)
class Schedule:
    kernel: str
    isa: str
    cores: int
    sizes: dict[str, int]
    platform: str
    budget: dict[str, int]
    chosen: Candidate | None
    candidates: tuple[Candidate, ...]
    source: str                      # auto | dsl | command line | default (no contraction)
    why: str
    m_extent: str | None = None
    lowered: Any = field(default=None, compare=False, repr=False)
    prediction: Prediction | None = field(default=None, compare=False, repr=False)


def _contraction(kernel: Kernel):
    from ..backends.contraction import find_contraction

    return find_contraction(kernel)


def dsl_overrides(kernel: Kernel) -> tuple[tuple[int, int] | None, int | None]:
    """``@tile(R, C)`` and ``@k_unroll(U)`` annotations of the contraction's loops."""
    c = _contraction(kernel)
    tile = unroll = None
    for s in walk_stmts(kernel.body):
        if not isinstance(s, For):
            continue
        for a in s.attrs:
            vals = [x.value for x in a.args if isinstance(x, Const)]
            if a.name == "tile":
                if len(vals) != 2 or min(vals) < 1 or (c is not None and s.var != c.m):
                    raise KgenError("@tile(R, C) takes two positive constants and belongs on the outer loop "
                                    f"of the contraction{f' (for {c.m} in ...)' if c else ''}", s.loc)
                tile = (vals[0], vals[1])
            elif a.name == "k_unroll":
                if len(vals) != 1 or vals[0] < 1 or (c is not None and s.var != c.k):
                    raise KgenError("@k_unroll(U) takes one positive constant and belongs on the reduction loop "
                                    f"of the contraction{f' (for {c.k} in ...)' if c else ''}", s.loc)
                unroll = vals[0]
    return tile, unroll


def usable_registers(isa: str) -> int:
    """Registers a register block may use with every compiler kgen models for ``isa``: the ISA
    file's ``allocatable`` minus the largest ``reserved_registers`` of its toolchain models."""
    from .platform import TOOLCHAINS, load_toolchain

    reserved = [int(load_toolchain(name).loops.get("reserved_registers", 0))
                for (i, _), name in TOOLCHAINS.items() if i == isa]
    return allocatable(isa) - max(reserved, default=0)


def _register_reason(need: int, isa: str) -> str:
    usable = usable_registers(isa)
    extra = "" if usable == allocatable(isa) else f" ({usable} usable with every modelled compiler)"
    return f"needs ~{need} registers, {isa} has {allocatable(isa)} allocatable{extra}"


def _annotation_loc(kernel: Kernel):
    return next((s.loc for s in walk_stmts(kernel.body) if isinstance(s, For)
                 and any(a.name in ("tile", "k_unroll") for a in s.attrs)), kernel.loc)


def _register_need(kernel: Kernel, reserved: int) -> int:
    """Registers the hot block of a lowered kernel needs: the loop body with the most ISA
    instructions (the register block); the whole kernel's worst block when it has none."""
    from ..ir import Call, stmt_exprs, walk_expr

    def isa_calls(body) -> int:
        return sum(1 for s in body if not isinstance(s, For) for e in stmt_exprs(s) for x in walk_expr(e)
                   if isinstance(x, Call) and x.fn.startswith("isa."))

    declared = frozenset(s.name for s in walk_stmts(kernel.body) if s.__class__.__name__ == "Decl")
    best, need = 0, block_pressure(kernel.body).need(reserved)
    for s in walk_stmts(kernel.body):
        if isinstance(s, For):
            n = isa_calls(s.body)
            if n > best:
                inner = frozenset(x.name for x in walk_stmts(s.body) if x.__class__.__name__ == "Decl")
                best, need = n, block_pressure(s.body, declared - inner).need(reserved)
    return need


def buffer_bytes(kernel: Kernel, sizes: Mapping[str, int], cores: int = 1) -> dict[str, int]:
    """Bytes of every buffer parameter and local array (locals are per core) of a lowered kernel."""
    out: dict[str, int] = {}
    env = dict(sizes)
    for p in kernel.buffers:
        out[p.name] = math.prod(eval_expr(d, env) for d in p.shape) * max(1, p.type.bits // 8)
    for s in walk_stmts(kernel.body):
        if isinstance(s, Alloc):
            out[s.name] = out.get(s.name, 0) + math.prod(eval_expr(d, env) for d in s.shape) * max(1, s.type.bits // 8) * cores
    return out


def _memory_tile(src: Kernel, full: Mapping[str, int], sizes: Mapping[str, int], tile: tuple[int, int],
                 budget: int, memory: str) -> tuple[int | None, int, int]:
    """(rows of m per call or None for the whole extent, calls, operand bytes per call) so that the
    operands of one call fit ``budget``; KgenError naming the binding buffer when one row block
    does not fit."""
    c = _contraction(src)
    total = sum(full.values())
    if total <= budget:
        return None, 1, total
    if c is None:
        big = max(full, key=lambda k: full[k])
        raise KgenError(f"memory budget {memory} = {budget} B: kernel {src.name} needs {total} B "
                        f"({', '.join(f'{k} {v} B' for k, v in sorted(full.items()))}) and has no contraction to tile; "
                        f"binding constraint: {big} ({full[big]} B)")
    M, rows, fixed = _row_split(src, full, sizes)
    per_row = sum(rows.values())
    R = tile[0]
    mt = int((budget - fixed) // per_row) if per_row else M
    mt = min(M, mt - mt % R)
    if mt < R:
        parts = {k: v for k, v in full.items() if k not in rows}
        parts.update({k: int(v * R) for k, v in rows.items()})
        big = max(parts, key=lambda k: parts[k])
        raise KgenError(f"memory budget {memory} = {budget} B is infeasible for {src.name}: even one block of "
                        f"{R} rows needs {int(fixed + per_row * R)} B "
                        f"({', '.join(f'{k} {v} B' for k, v in sorted(parts.items()))}); "
                        f"binding constraint: {big} ({parts[big]} B)")
    return mt, math.ceil(M / mt), int(fixed + per_row * mt)


def _row_split(src: Kernel, full: Mapping[str, int], sizes: Mapping[str, int]
               ) -> tuple[int, dict[str, float], float]:
    """(extent M of the contraction's rows, bytes per row of the buffers that scale with it, bytes of
    the rest)."""
    c = _contraction(src)
    a = src.param(c.a)
    m_expr = a.shape[c.a_dims.index(c.m)]  # type: ignore[union-attr]
    M = eval_expr(m_expr, dict(sizes))
    m_sym = {v.name for v in _vars(m_expr)}
    rows = {p.name: full[p.name] / M for p in src.buffers
            if p.name in full and {v.name for d in p.shape for v in _vars(d)} & m_sym}
    return M, rows, sum(full.values()) - sum(rows.values()) * M


def memory_variants(kernel: Kernel, sched: Schedule, isa: str, compiler: str | None = None,
                    platform: str | None = None) -> list[Candidate]:
    """The chosen register tile with fewer rows per call (M/2, M/4, ... rounded to the tile): less
    operand memory, one more call each (the call overhead)."""
    from .predict import price
    from .platform import platform_for, toolchain_for

    ch = sched.chosen
    if ch is None or _contraction(kernel) is None:
        return []
    M, rows, fixed = _row_split(kernel, ch.buffers, sched.sizes)
    per_row = sum(rows.values())
    call = float(price(toolchain_for(isa, compiler).function, platform_for(isa, platform),
                       toolchain_for(isa, compiler))[1])
    base = ch.cycles - int((ch.calls - 1) * call)
    out, mt = [], (ch.memory_tile or M) // 2
    while mt >= ch.tile[0] and len(out) < 4:
        mt -= mt % ch.tile[0]
        calls = math.ceil(M / mt)
        out.append(replace(ch, memory_tile=mt, calls=calls, operand_bytes=int(fixed + per_row * mt),
                           cycles=base + int((calls - 1) * call)))
        mt //= 2
    return out


def _vars(e):
    from ..ir import Var, walk_expr

    return [v for v in walk_expr(e) if isinstance(v, Var)]


def _counts_at(src: Kernel, isa: str, sizes: Mapping[str, int], tile: tuple[int, int], k_unroll: int,
               make: Callable[..., Any], cores: int, compiler: str | None, platform: str | None):
    """(count vector, register need, buffer bytes, lowered) of one lowering."""
    from .cost import count_kernel
    from .platform import toolchain_for

    low = make(tile=tile, k_unroll=k_unroll).lower(src, dict(sizes))
    tc = toolchain_for(isa, compiler)
    counts, _ = count_kernel(low.kernel, tc, low.paired, low.sizes, allocatable(isa))
    reserved = int(tc.loops.get("reserved_registers", 0))
    return counts, _register_need(low.kernel, reserved), buffer_bytes(low.kernel, low.sizes, cores), low


def evaluate(src: Kernel, isa: str, sizes: Mapping[str, int], cores: int, tile: tuple[int, int], k_unroll: int,
             make: Callable[..., Any], budget: int, memory: str, platform: str | None = None,
             compiler: str | None = None) -> tuple[Candidate, Any, Prediction]:
    """Lower ``src`` with one schedule (the real backend, the real shape) and price it."""
    from .predict import price
    from .platform import platform_for, toolchain_for

    counts, regs, bufs, low = _counts_at(src, isa, sizes, tile, k_unroll, make, cores, compiler, platform)
    ins, cyc = price(counts, platform_for(isa, platform), toolchain_for(isa, compiler))
    pred = Prediction(int(round(float(ins))), int(round(float(cyc))), {k: float(v) for k, v in counts.items()})
    feasible, reason = True, ""
    if regs > usable_registers(isa):
        feasible, reason = False, _register_reason(regs, isa)
    try:
        mt, calls, per_call = _memory_tile(src, bufs, sizes, tile, budget, memory)
    except KgenError as exc:
        mt, calls, per_call = None, 1, sum(bufs.values())
        feasible, reason = False, exc.message
    call = price(toolchain_for(isa, compiler).function, platform_for(isa, platform), toolchain_for(isa, compiler))[1]
    cyc_total = pred.cycles + int((calls - 1) * float(call))  # one more call per memory tile
    cand = Candidate(tile, k_unroll, pred.instructions, cyc_total, regs, bufs, feasible, reason, mt, calls, per_call)
    return cand, low, pred


def register_need(src: Kernel, isa: str, sizes: Mapping[str, int], tile: tuple[int, int],
                  make: Callable[..., Any], compiler: str | None) -> int:
    """Register need of a tile's block, from a lowering at a small shape with the same block
    structure (two blocks per axis, four K steps): fast, and the block is the same."""
    c = _contraction(src)
    shape = dict(sizes)
    axes = [(c.a, c.a_dims, c.m, tile[0]), (c.b, c.b_dims, c.n, tile[1]), (c.b, c.b_dims, c.k, 16)]
    names = [_extent_symbol(src, buf, dims, var) for buf, dims, var, _ in axes]
    used = [{v.name for v in _vars(src.param(buf).shape[dims.index(var)])} for buf, dims, var, _ in axes]  # type: ignore[union-attr]
    for i, (name, (_, _, _, f)) in enumerate(zip(names, axes)):
        if name is not None and all(name not in u for j, u in enumerate(used) if j != i):
            shape[name] = min(shape[name], 2 * f)  # a symbol of this extent only: a smaller stand-in
    return _counts_at(src, isa, shape, tile, DEFAULT_K_UNROLL, make, 1, compiler, None)[1]


def _extent_symbol(kernel: Kernel, buf: str, dims: tuple[str, ...], var: str) -> str | None:
    from ..ir import Var

    e = kernel.param(buf).shape[dims.index(var)]  # type: ignore[union-attr]
    return e.name if isinstance(e, Var) else None


def choose_schedule(kernel: Kernel, sizes: Mapping[str, int], isa: str, cores: int = 1,
                    budget: Mapping[str, int] | None = None, platform: str | None = None,
                    tile: tuple[int, int] | None = None, k_unroll: int | None = None,
                    compiler: str | None = None, make: Callable[..., Any] | None = None) -> Schedule:
    """The schedule kgen uses for ``kernel`` at ``sizes`` (see the module docstring)."""
    key = (kernel, tuple(sorted(sizes.items())), isa, cores, tuple(sorted((budget or {}).items())), platform,
           tile, k_unroll, compiler)
    return _choose(key, make)


@lru_cache(maxsize=64)
def _choose_cached(key: tuple) -> Schedule:
    return _choose_impl(*key, make=None)


def _choose(key: tuple, make) -> Schedule:
    if make is None:
        return _choose_cached(key)
    return _choose_impl(*key, make=make)


def _factory(isa: str, cores: int) -> Callable[..., Any]:
    from ..backends import raw_backend_class

    cls = raw_backend_class(isa)

    def make(**kw: Any) -> Any:
        return cls(cores=cores, **kw) if cores != 1 else cls(**kw)
    return make


def _choose_impl(kernel: Kernel, sizes_t: tuple, isa: str, cores: int, budget_t: tuple, platform: str | None,
                 tile: tuple[int, int] | None, k_unroll: int | None, compiler: str | None,
                 make: Callable[..., Any] | None) -> Schedule:
    sizes = dict(sizes_t)
    plat: Platform = platform_for(isa, platform)
    budgets = dict(budget_t)
    mem = plat.operand_memory
    limit = budgets.get(mem.name, mem.bytes)
    for name, value in budgets.items():
        if name != mem.name:
            limit = min(limit, value) if plat.memory(name).operands else limit
    enforce = bool(budgets)  # the memory budget is a hard constraint only when one is given
    c = _contraction(kernel)
    dsl_tile, dsl_unroll = dsl_overrides(kernel)
    if isa == "generic":
        return Schedule(kernel.name, isa, cores, sizes, plat.name, {mem.name: limit}, None, (), "default",
                        "generic C: sizes are run-time arguments; nothing to schedule")
    make = make or _factory(isa, cores)
    probe = make(tile=tile or dsl_tile or (2, 2), k_unroll=k_unroll or dsl_unroll or DEFAULT_K_UNROLL).lower(
        kernel, dict(sizes)) if c is not None else make().lower(kernel, dict(sizes))
    if c is None or not probe.packers:
        if enforce:
            _memory_tile(kernel, buffer_bytes(probe.kernel, probe.sizes, cores), sizes, (1, 1), limit, mem.name)
        why = ("no contraction: the kernel is emitted as specialised portable C; nothing to tile" if c is None else
               "the contraction's operand types have no blocked lowering on this ISA: specialised portable C")
        return Schedule(kernel.name, isa, cores, sizes, plat.name, {mem.name: limit}, None, (), "default", why,
                        None, probe, predict_lowered(probe.kernel, isa, probe.paired, compiler, platform, probe.sizes))
    forced_tile = tile or dsl_tile
    forced_unroll = k_unroll or dsl_unroll
    source = "command line" if (tile or k_unroll) else "dsl" if (dsl_tile or dsl_unroll) else "auto"
    regs = usable_registers(isa)
    M = eval_expr(kernel.param(c.a).shape[c.a_dims.index(c.m)], sizes)  # type: ignore[union-attr]
    N = eval_expr(kernel.param(c.b).shape[c.b_dims.index(c.n)], sizes)  # type: ignore[union-attr]
    tiles = [forced_tile] if forced_tile else [t for t in TILES if t[0] * t[1] + t[0] + t[1] <= regs
                                               and t[0] <= max(M, 1) and t[1] <= max(N, 1)]
    if not tiles:
        tiles = [(1, 1)]
    unrolls = [forced_unroll] if forced_unroll else [DEFAULT_K_UNROLL]
    seen: dict[tuple, tuple[Candidate, Any, Prediction]] = {}
    skipped: list[Candidate] = []
    for t in tiles:
        if not forced_tile:
            need = register_need(kernel, isa, sizes, t, make, compiler)
            if need > regs:
                skipped.append(Candidate(t, unrolls[0], 0, 0, need, {}, False, _register_reason(need, isa)))
                continue
        for u in unrolls:
            seen[(t, u)] = evaluate(kernel, isa, sizes, cores, t, u, make, limit, mem.name, platform, compiler)
    if not forced_unroll:
        best = sorted((v for v in seen.values() if v[0].feasible), key=lambda v: (v[0].cycles, v[0].instructions))[:1]
        for cand, _, _ in best:
            for u in K_UNROLLS:
                if (cand.tile, u) not in seen:
                    seen[(cand.tile, u)] = evaluate(kernel, isa, sizes, cores, cand.tile, u, make, limit, mem.name,
                                                    platform, compiler)
    if not enforce:  # without a budget, memory only informs (the memory tile), it does not exclude
        for key, (cand, low, pred) in list(seen.items()):
            if not cand.feasible and cand.registers <= regs:
                seen[key] = (replace(cand, feasible=True, reason=""), low, pred)
    cands = sorted([v[0] for v in seen.values()] + skipped,
                   key=lambda x: (not x.feasible, x.instructions == 0, x.cycles, x.instructions))
    chosen = cands[0]
    if not chosen.feasible or (chosen.tile, chosen.k_unroll) not in seen:
        shape = ",".join(f"{k}={v}" for k, v in sizes.items())
        binding = ("registers (isa/{0}.toml [registers] allocatable = {1})".format(isa, allocatable(isa))
                   if "registers" in chosen.reason else f"memory ({mem.name} budget {limit} B)")
        if forced_tile or forced_unroll:
            loc = _annotation_loc(kernel) if source == "dsl" else None
            raise KgenError(f"the schedule forced on the {source} for {kernel.name} at {shape} (tile {chosen.label}) "
                            f"is infeasible: {chosen.reason}; binding constraint: {binding}", loc)
        tail = "" if "binding constraint" in chosen.reason else f"; binding constraint: {binding}"
        raise KgenError(f"no feasible schedule for {kernel.name} at {shape} on {plat.name}: {chosen.reason}{tail}")
    _, low, pred = seen[(chosen.tile, chosen.k_unroll)]
    if low is None:  # interpolated: lower at the real shape for the code and the exact count
        low = make(tile=chosen.tile, k_unroll=chosen.k_unroll).lower(kernel, dict(sizes))
        pred = predict_lowered(low.kernel, isa, low.paired, compiler, platform, low.sizes)
    why = _why(chosen, cands, regs, isa, mem.name, limit, source)
    return Schedule(kernel.name, isa, cores, sizes, plat.name, {mem.name: limit}, chosen, tuple(cands), source, why,
                    c.m, low, pred)


def _why(ch: Candidate, cands: list[Candidate], regs: int, isa: str, memory: str, limit: int, source: str) -> str:
    if source != "auto":
        return f"forced on the {source}"
    lines = [f"fewest predicted cycles among {sum(1 for c in cands if c.feasible)} feasible candidates"]
    bigger = [c for c in cands if not c.feasible]
    if bigger:
        lines.append("excluded: " + "; ".join(f"{c.label} ({c.reason})" for c in bigger[:3]))
    lines.append(f"binding register constraint: {ch.registers} of {regs} usable {isa} registers in the "
                 f"register block")
    if ch.memory_tile is not None:
        lines.append(f"binding memory constraint: {memory} = {limit} B holds {ch.memory_tile} rows per call "
                     f"({ch.operand_bytes} B); {ch.calls} calls")
    else:
        lines.append(f"memory: all operands ({ch.operand_bytes} B) fit {memory} = {limit} B")
    return "; ".join(lines)


def pareto(cands: tuple[Candidate, ...] | list[Candidate]) -> list[Candidate]:
    """Feasible candidates not dominated in (operand bytes per call, cycles)."""
    feas = sorted((c for c in cands if c.feasible), key=lambda c: (c.operand_bytes, c.cycles))
    out: list[Candidate] = []
    for c in feas:
        if not out or c.cycles < out[-1].cycles:
            out.append(c)
    return out


__all__ = ["Candidate", "Schedule", "choose_schedule", "dsl_overrides", "pareto", "buffer_bytes", "TILES",
           "BufferParam"]
