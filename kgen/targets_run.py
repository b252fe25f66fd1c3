"""Runners that build a verification program for a simulated target, execute it and measure it.

Each runner returns (exit status, program output, per-region instruction counts, measurements);
the measurements (cycle-model estimates, per-core counts, code size) are taken while the ELF
still exists.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from .verify import Target

WARNINGS = ("-Wall", "-Wextra", "-Werror")


def _text_size(elf: Path, function_prefix: str = "kgen_") -> int:
    """Bytes of .text taken by the kernel functions (symbols starting with ``kgen_`` that are not
    harness helpers)."""
    from elftools.elf.elffile import ELFFile

    total = 0
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        for sym in symtab.iter_symbols() if symtab else ():
            name = sym.name
            if sym["st_info"]["type"] == "STT_FUNC" and name.startswith(function_prefix) and not any(
                    name.startswith(p) for p in ("kgen_region", "kgen_put", "kgen_puts", "kgen_check", "kgen_elem",
                                                 "kgen_exit", "kgen_core", "kgen_barrier", "kgen_num")):
                total += int(sym["st_size"])
    return total


def qemu_runner(sources: list[Path], inc: Path, workdir: Path, target: Target):
    from .sim import arm

    t = arm.ArmTarget(cpu=target.cpu, compiler=target.compiler, opt=target.opt)
    elf = arm.build_elf(sources, workdir / "test.elf", t, include_dirs=[inc], extra_cflags=WARNINGS)
    run = arm.run_elf(elf, target.cpu, count=True)
    extra: dict[str, object] = {"text_bytes": _text_size(elf), "cflags": " ".join(arm.cflags(t))}
    if run.regions:
        est = arm.m4_cycles(elf, run, 0)
        extra.update(cycles_est=est.p2, cycles_est_p1=est.p1, cycles_est_p3=est.p3)
    return run.exit_code, run.stdout + run.stderr, list(run.regions), extra


def spike_runner(sources: list[Path], inc: Path, workdir: Path, target: Target):
    from .sim import riscv

    t = riscv.RiscvTarget(opt=target.opt, cores=target.cores)
    elf = riscv.build_elf(sources, workdir / "test.elf", t, include_dirs=[inc], extra_cflags=WARNINGS)
    # Per-PC histograms of every hart feed the CV32E40P model (per-core estimates, critical path);
    # the exact per-hart minstret counts give the instruction critical path.
    run = riscv.run_elf(elf, cores=target.cores, histogram=True)
    extra: dict[str, object] = {"text_bytes": _text_size(elf), "cflags": " ".join(riscv.cflags(t))}
    regions: list[int] = []
    if run.regions:
        extra.update(riscv.measurements(elf, run, 0))
        regions = [max(run.regions[0])]
    return run.exit_code, run.stdout + run.stderr, regions, extra


def host_runner(sources: list[Path], inc: Path, workdir: Path, target: Target):
    from .host import build_and_run

    flags: list[str] = []
    if target.builtins:
        from .isafile import builtin_emulation_header, load_isa

        emu = inc / "kgen_xpulpv2_builtins_emu.h"
        emu.write_text(builtin_emulation_header(load_isa("xpulpv2")))
        flags = ["-DKGEN_PULP_BUILTINS", "-include", str(emu)]
    run = build_and_run(sources, [inc], workdir, target.compiler, target.sanitize, target.opt, flags)
    return run.exit_code, run.stdout + run.stderr, [], {}


__all__ = ["qemu_runner", "spike_runner", "host_runner", "subprocess"]
