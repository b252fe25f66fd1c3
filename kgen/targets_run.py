"""Runners that build a verification program for a simulated target and execute it."""
from __future__ import annotations

from pathlib import Path

from .verify import Target

WARNINGS = ("-Wall", "-Wextra", "-Werror")


def qemu_runner(sources: list[Path], inc: Path, workdir: Path, target: Target) -> tuple[int, str, list[int]]:
    from .sim import arm

    t = arm.ArmTarget(cpu=target.cpu, compiler=target.compiler, opt=target.opt)
    elf = arm.build_elf(sources, workdir / "test.elf", t, include_dirs=[inc], extra_cflags=WARNINGS)
    run = arm.run_elf(elf, target.cpu, count=True)
    target_run_cache[str(workdir)] = (elf, run)
    return run.exit_code, run.stdout + run.stderr, list(run.regions)


def spike_runner(sources: list[Path], inc: Path, workdir: Path, target: Target) -> tuple[int, str, list[int]]:
    from .sim import riscv

    t = riscv.RiscvTarget(opt=target.opt, cores=target.cores)
    elf = riscv.build_elf(sources, workdir / "test.elf", t, include_dirs=[inc], extra_cflags=WARNINGS)
    run = riscv.run_elf(elf, cores=target.cores)
    target_run_cache[str(workdir)] = (elf, run)
    regions = [max(r) for r in run.regions] if run.regions else []
    return run.exit_code, run.stdout + run.stderr, regions


#: The last (elf, run) per work directory, for callers that want cycle models of the run.
target_run_cache: dict[str, tuple[Path, object]] = {}
