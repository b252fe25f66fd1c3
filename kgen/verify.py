"""Verification: generate, compile, execute and compare a kernel bit-exactly with the reference."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .backends import Lowered, get_backend
from .emit import EmittedKernel, KernelSource, common_header, emit_kernel
from .harness import CallCase, HarnessSpec, Report, ScratchSpec, kernel_outputs, parse_output, render
from .interp import buffer_shape
from .ir import BufferParam
from .testdata import Case, make_cases


@dataclass(frozen=True)
class Target:
    """Where a verification program runs: host (gcc/clang, sanitizers), qemu (cpu) or spike."""

    kind: str  # host | qemu | spike
    compiler: str = "gcc"
    cpu: str = ""
    opt: str = "-O2"
    sanitize: bool = False
    cores: int = 1
    #: host only: compile the ISA path's compiler-builtin spelling against the generated emulation
    builtins: bool = False

    def __str__(self) -> str:
        parts = [self.kind, self.cpu, self.compiler, self.opt.lstrip("-")]
        if self.sanitize:
            parts.append("asan+ubsan")
        if self.cores > 1:
            parts.append(f"{self.cores}cores")
        if self.builtins:
            parts.append("builtin-spelling")
        return "/".join(p for p in parts if p)


@dataclass
class VerifyResult:
    kernel: str
    isa: str
    sizes: dict[str, int]
    target: Target
    report: Report
    exit_code: int
    stdout: str
    region_instructions: list[int] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.report.done and self.report.total_bad == 0


def build_variant(src: KernelSource, isa: str, sizes: Mapping[str, int], cores: int = 1
                  ) -> tuple[Lowered, EmittedKernel]:
    from .buildpool import cyclic_gc_paused

    backend = get_backend(isa, cores)
    with cyclic_gc_paused():
        lowered = backend.lower(src.kernel, dict(sizes))
        intrinsic = getattr(backend, "intrinsic", None)
        emitted = emit_kernel(src, lowered.kernel, isa, lowered.sizes, lowered.isa_hash, intrinsic,
                              lowered.includes, lowered.notes, lowered.paired, lowered.qualifier, cores)
    return lowered, emitted


def call_cases(src: KernelSource, lowered: Lowered, sizes: Mapping[str, int], cases: list[Case]) -> list[CallCase]:
    """Map DSL-level test cases onto the C parameters of the lowered kernel."""
    out = []
    for case in cases:
        args: dict[str, object] = {}
        for p in lowered.kernel.params:
            if isinstance(p, BufferParam) and p.direction == "out":
                continue
            if p.name in lowered.packers:
                args[p.name] = lowered.packers[p.name](case.args)
            else:
                args[p.name] = case.args[p.name]
        for s in lowered.kernel.sizes:
            args[s] = int(sizes[s])
        out.append(CallCase(case.name, args, case.expected))
    return out


def write_program(src: KernelSource, isa: str, sizes: Mapping[str, int], workdir: Path, seed: int = 0,
                  cores: int = 1, modes: tuple[str, ...] | None = None) -> tuple[list[Path], Path, Lowered]:
    """Write kernel, headers and harness into ``workdir``; returns (sources, include dir, lowered)."""
    lowered, emitted = build_variant(src, isa, sizes, cores)
    inc = workdir / "include"
    inc.mkdir(parents=True, exist_ok=True)
    (inc / "kgen_common.h").write_text(common_header())
    for name, text in lowered.support_files.items():
        (inc / name).write_text(text)
    (inc / emitted.header_name).write_text(emitted.header)
    kernel_c = workdir / emitted.source_name
    kernel_c.write_text(emitted.source)
    cases = make_cases(src.kernel, sizes, seed) if modes is None else make_cases(src.kernel, sizes, seed, modes)
    spec = harness_spec(src, lowered, emitted, sizes, cases, parallel=cores > 1)
    main_c = workdir / "main.c"
    main_c.write_text(render(spec))
    return [kernel_c, main_c], inc, lowered


def scratch_spec(emitted: EmittedKernel, sizes: Mapping[str, int], shortfall: int = 0) -> ScratchSpec | None:
    """The harness's scratch buffer for ``emitted`` at ``sizes``: exactly get_buffer_size bytes
    (``shortfall`` bytes fewer, to prove that the guards catch an undersized buffer)."""
    plan = emitted.scratch
    if plan is None:
        return None
    need = plan.bytes_for(sizes)
    call = f"{emitted.function}_get_buffer_size({', '.join(str(int(sizes[s])) for s in plan.symbols)})"
    return ScratchSpec(need - shortfall, need, call)


def harness_spec(src: KernelSource, lowered: Lowered, emitted: EmittedKernel, sizes: Mapping[str, int],
                 cases: list[Case], parallel: bool = False, shortfall: int = 0) -> HarnessSpec:
    """The self-checking program's description: call order, outputs, cases and scratch buffer."""
    params = [p.name for p in lowered.kernel.params] + list(lowered.kernel.sizes)
    return HarnessSpec(emitted.function, emitted.header_name, params, kernel_outputs(src.kernel),
                       call_cases(src, lowered, sizes, cases), parallel=parallel,
                       scratch=scratch_spec(emitted, sizes, shortfall))


Runner = Callable[[list[Path], Path, Path, Target], tuple[int, str, list[int], dict]]


def runner_for(target: Target) -> Runner:
    from . import targets_run

    runners = {"host": targets_run.host_runner, "qemu": targets_run.qemu_runner, "spike": targets_run.spike_runner}
    if target.kind not in runners:
        raise ValueError(target.kind)
    return runners[target.kind]


def verify(src: KernelSource, isa: str, sizes: Mapping[str, int], target: Target, seed: int = 0,
           workdir: Path | None = None, modes: tuple[str, ...] | None = None) -> VerifyResult:
    with tempfile.TemporaryDirectory(prefix="kgen-verify-") as tmp:
        wd = Path(workdir) if workdir else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        sources, inc, lowered = write_program(src, isa, sizes, wd, seed, cores=target.cores, modes=modes)
        code, out, regions, extra = runner_for(target)(sources, inc, wd, target)
        from .scratch import plan_scratch

        plan = plan_scratch(lowered.kernel)
        extra["scratch_bytes"] = plan.bytes_for(sizes) if plan is not None else 0
    return VerifyResult(src.kernel.name, isa, dict(sizes), target, parse_output(out), code, out, regions, extra)


def describe_failure(result: VerifyResult, src: KernelSource) -> str:
    """Human-readable mismatch report: first indices, mismatch percentage, max error."""
    lines = [f"FAIL {result.kernel} isa={result.isa} target={result.target} sizes={result.sizes}"]
    shapes = {p.name: buffer_shape(p, result.sizes) for p in src.kernel.buffers}
    for m in result.report.mismatches[:10]:
        idx = np.unravel_index(m.index, shapes.get(m.buf, (m.index + 1,)))
        lines.append(f"  case {m.case}: {m.buf}{list(map(int, idx))} = {m.got}, expected {m.expected}")
    for s in result.report.summaries:
        if int(s["mismatches"]):
            pct = 100.0 * int(s["mismatches"]) / max(int(s["total"]), 1)
            lines.append(f"  case {s['case']}: {s['buf']}: {s['mismatches']}/{s['total']} mismatching "
                         f"({pct:.2f} %), max error {s['maxerr']}")
    if not result.report.done:
        lines.append(f"  program did not finish (exit status {result.exit_code}):")
        lines.extend("    " + line for line in result.stdout.strip().splitlines()[-15:])
    return "\n".join(lines)
