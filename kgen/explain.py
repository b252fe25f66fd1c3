"""``kgen explain OP --isa X [--shape ...] [--budget L1=64k]``: how kgen schedules a kernel, and why.

The report shows the loop nest after each schedule step (as skeletons: loops kept, straight-line
code summarised), the chosen register tile / K-unroll / memory tile with the constraint that binds,
bytes per buffer (numbers and symbolic footprints), the symbolic MAC, access, instruction and cycle
formulas, the accumulator overflow bounds, and the best alternatives on the memory ↔ cycles Pareto
front.  The text is deterministic (golden-tested).
"""
from __future__ import annotations

from typing import Mapping

import sympy as sp

from .emit import KernelSource
from .errors import KgenError
from .model.analysis import analyze, contraction_footprints
from .model.chooser import Schedule, choose_schedule, pareto
from .model.formula import kernel_formula
from .model.overflow import accumulations
from .model.platform import parse_budget, platform_for, toolchain_for
from .model.predict import allocatable, predict_lowered
from .model.skeleton import kernel_skeleton


def _indent(text: str, n: int = 4) -> str:
    return "\n".join(" " * n + line if line else line for line in text.splitlines())


def _steps(src: KernelSource, sched: Schedule, lowered, sizes: Mapping[str, int]) -> list[tuple[str, str]]:
    from .backends.contraction import find_contraction, tile_contraction
    from .schedule import specialize

    k = src.kernel
    steps = [("DSL kernel", kernel_skeleton(k))]
    spec = specialize(k, sizes)
    steps.append((f"specialise {', '.join(f'{n}={v}' for n, v in sizes.items())}", kernel_skeleton(spec)))
    c = find_contraction(k)
    if c is not None and sched.chosen is not None:
        R, C = sched.chosen.tile
        G = next((p.shape[3].value for p in lowered.kernel.buffers if len(p.shape) == 4), None)  # type: ignore[union-attr]
        if G is not None:
            try:
                tiled = tile_contraction(k, sizes, c, R, C, G)
                steps.append((f"register tile {R}x{C}: split {c.m} by {R} and {c.n} by {C}, {c.k} by {G} "
                              f"(lanes per load group), unroll-and-jam", kernel_skeleton(tiled)))
            except Exception as exc:  # noqa: BLE001 - the explanation must not fail on a backend change
                steps.append(("register tile (not reproducible outside the backend)", f"({type(exc).__name__})"))
    steps.append((f"lowered for {sched.isa} (backend output: packing, staging, instruction selection)",
                  kernel_skeleton(lowered.kernel)))
    return steps


def explain(src: KernelSource, isa: str, sizes: Mapping[str, int], cores: int = 1, budget: str | None = None,
            platform: str | None = None, tile: tuple[int, int] | None = None, k_unroll: int | None = None,
            compiler: str | None = None) -> str:
    """The ``kgen explain`` report."""
    if isa == "generic":
        raise KgenError("kgen explain needs a specialising ISA: use --isa armv7em or --isa xpulpv2")
    plat = platform_for(isa, platform)
    tc = toolchain_for(isa, compiler)
    budgets = parse_budget(budget, plat)
    from .model.auto import refuse_overflow

    refuse_overflow(src.kernel, sizes)
    sched = choose_schedule(src.kernel, sizes, isa, cores, budgets, platform, tile, k_unroll, compiler)
    if sched.lowered is None:
        from .backends import raw_backend_class

        cls = raw_backend_class(isa)
        low = (cls(cores=cores) if cores != 1 else cls()).lower(src.kernel, dict(sizes))
    else:
        low = sched.lowered
    pred = predict_lowered(low.kernel, isa, low.paired, compiler, platform, low.sizes)
    mem = plat.operand_memory
    out: list[str] = []
    shape = ",".join(f"{n}={v}" for n, v in sizes.items())
    out.append(f"kgen explain {src.kernel.name} --isa {isa} --shape {shape}" + (f" --cores {cores}" if cores > 1 else ""))
    out.append(f"platform {plat.name}: {plat.title}; toolchain model {tc.name}; "
               f"{allocatable(isa)} allocatable registers; operand memory {mem.name} = "
               f"{sched.budget.get(mem.name, mem.bytes)} B" + (" (budget)" if budgets else ""))
    out.append("")
    out.append("== loop nest after each schedule step")
    for i, (title, text) in enumerate(_steps(src, sched, low, sizes), 1):
        out.append(f"-- {i}. {title}")
        out.append(_indent(text, 2))
    out.append("")
    out.append("== schedule")
    if sched.chosen is None:
        out.append(f"{sched.why}")
    else:
        ch = sched.chosen
        out.append(f"register tile {ch.tile[0]}x{ch.tile[1]}, k_unroll {ch.k_unroll} ({sched.source})")
        out.append(f"why: {sched.why}")
        mt = "whole extent" if ch.memory_tile is None else f"{ch.memory_tile} rows of {sched.m_extent} per call, {ch.calls} calls"
        out.append(f"memory tile: {mt}")
    out.extend(_buffers(src, low, sizes, cores))
    out.append("")
    out.extend(_formulas(src, low, isa, sizes, compiler, platform, pred))
    out.append("")
    out.extend(_overflow(src, sizes))
    if sched.chosen is not None:
        out.append("")
        out.extend(_alternatives(src, sched, compiler, platform))
    return "\n".join(out) + "\n"


def _buffers(src: KernelSource, low, sizes: Mapping[str, int], cores: int) -> list[str]:
    from .model.chooser import buffer_bytes

    a = analyze(src.kernel)
    sym = {b.name: b.bytes for b in a.buffers}
    sym.update(contraction_footprints(src.kernel, low.kernel))
    lines = ["bytes per buffer (at this shape; symbolic in the shape symbols and the tile R x C):"]
    for name, n in buffer_bytes(low.kernel, low.sizes, cores).items():
        local = name not in {p.name for p in low.kernel.buffers}
        lines.append(f"  {name:14s} {n:>9d}  {sp.sstr(sym.get(name, '')):32s}{'  (stack)' if local else ''}")
    return lines


def _formulas(src: KernelSource, low, isa: str, sizes: Mapping[str, int], compiler, platform, pred) -> list[str]:
    f = kernel_formula(src.kernel, low.kernel, isa, low.sizes, low.paired, compiler, platform)
    a = f.analysis
    lines = [f"== formulas (symbols: {', '.join(a.symbols)})", f"MACs         = {sp.sstr(a.macs)}",
             f"outputs      = {sp.sstr(a.outputs)}"]
    for b in a.buffers:
        if b.loads != 0 or b.stores != 0:
            lines.append(f"  {b.name:12s} loads {sp.sstr(b.loads)}, stores {sp.sstr(b.stores)}")
    lines.append(f"instructions = {f.text('instructions')}")
    lines.append(f"cycles       = {f.text('cycles')}")
    lines.append("  (per-unit costs of the lowered code at this shape: "
                 f"{f.per_mac[0]:.4g} instructions / {f.per_mac[1]:.4g} cycles per MAC, "
                 f"{f.per_output[0]:.4g} / {f.per_output[1]:.4g} per output, {f.per_call[0]:.4g} / {f.per_call[1]:.4g} per call)")
    macs = a.at(a.macs, sizes)
    per = f"; {pred.instructions / macs:.3f} instructions per MAC" if macs else ""
    lines.append(f"predicted at this shape: {pred.instructions} instructions, {pred.cycles} cycles{per}")
    return lines


def _overflow(src: KernelSource, sizes: Mapping[str, int]) -> list[str]:
    lines = ["== accumulator bounds"]
    accs = accumulations(src.kernel)
    if not accs:
        lines.append("no reductions with a bounded term")
    for acc in accs:
        lo, hi = acc.sum_range(sizes)
        head = (f"{acc.name} ({acc.type}) at {acc.loc.line}:{acc.loc.col}: {sp.sstr(acc.count)} updates of "
                f"{acc.term} in [{acc.term_range[0]}, {acc.term_range[1]}] -> sum in [{lo}, {hi}]; safe while "
                f"{sp.sstr(acc.count)} <= {acc.limit()}") if acc.loc else acc.name
        if acc.init_range is None:
            h = acc.headroom(sizes)
            head += f"; its initial value must lie in [{h[0]}, {h[1]}]"
        lines.append(head)
    return lines


def _alternatives(src: KernelSource, sched: Schedule, compiler, platform, n: int = 6) -> list[str]:
    from .model.chooser import memory_variants

    variants = memory_variants(src.kernel, sched, sched.isa, compiler, platform)
    front = pareto(list(sched.candidates) + variants)
    lines = ["== alternatives on the memory <-> cycles Pareto front (operand bytes per call, predicted cycles)",
             f"  {'tile':6s} {'k_unroll':>8s} {'rows/call':>9s} {'registers':>9s} {'bytes':>9s} {'instructions':>12s} "
             f"{'cycles':>10s}"]
    for c in front[:n]:
        mark = "  <- chosen" if c == sched.chosen else ""
        rows = "all" if c.memory_tile is None else str(c.memory_tile)
        lines.append(f"  {c.tile[0]}x{c.tile[1]:<4d} {c.k_unroll:>8d} {rows:>9s} {c.registers:>9d} {c.operand_bytes:>9d} "
                     f"{c.instructions:>12d} {c.cycles:>10d}{mark}")
    others = [c for c in sched.candidates if c not in front]
    if others:
        lines.append("  dominated or infeasible: " + "; ".join(
            f"{c.tile[0]}x{c.tile[1]}/{c.k_unroll}" + ("" if c.feasible else f" ({c.reason})")
            for c in others))
    return lines


__all__ = ["explain"]
