"""Cortex-M4/M7 build, run and count stack (arm-none-eabi-gcc 12 / clang-19, qemu-system-arm 7.2).

* :func:`build_elf` compiles kernel sources plus the bare-metal runtime
  (``data/arm/startup.c``, ``link.ld``, ``kgen_harness.h``) with the CMSIS-NN
  baseline's exact flags and links with ``arm-none-eabi-gcc -nostdlib`` (also for
  clang objects), so the counts are comparable with the baseline's.
* :func:`run_elf` runs an ELF on ``mps2-an386`` (M4) or ``mps2-an500`` (M7);
  the exit status is ``main``'s return value (the mismatch count). With
  ``count=True`` the project's TCG plugin (``plugin/kgen_insn_count.c``, built on
  demand into ``$KGEN_CACHE`` or ``~/.cache/kgen``) gives exact per-region
  instruction counts and per-PC/taken histograms.
* Marker overhead: the runtime runs one empty region before ``main``; its
  count (2 in every build: the begin marker's ``bx lr`` and the ``bl`` to the end
  marker) is subtracted from each region, and its cost from cycle estimates.
* :func:`m4_cycles` applies the Cortex-M4 TRM timing model (:mod:`kgen.sim.arm_timing`).
* :func:`run_asm_snippets` checks instruction semantics: many inline-asm
  snippets, one build and one QEMU run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .arm_timing import CycleEstimate, m4_cycles_from_counts

__all__ = [
    "ArmRun", "ArmTarget", "CycleEstimate", "SimError", "ToolchainError", "build_elf", "cflags",
    "m4_cycles", "plugin_path", "run_asm_snippets", "run_elf", "tools_available",
]

DATA_DIR = Path(__file__).resolve().parent / "data" / "arm"
RUNTIME_SOURCES = (DATA_DIR / "startup.c",)
LINKER_SCRIPT = DATA_DIR / "link.ld"
PLUGIN_SOURCE = Path(__file__).resolve().parent / "plugin" / "kgen_insn_count.c"
MACHINES = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500"}
GCC = "arm-none-eabi-gcc"
CLANG = "clang-19"
QEMU = "qemu-system-arm"
HOST_CC = "gcc"
NEWLIB_INCLUDE = "/usr/lib/arm-none-eabi/include"
FAULT_EXIT = 255  # exit status of a fault (HardFault etc.); returns > 254 saturate at 254




from ..errors import ToolchainError  # noqa: E402  (one error type for every tool)


class SimError(RuntimeError):
    """QEMU timed out, or the counting plugin's output is missing or inconsistent."""


@dataclass(frozen=True)
class ArmTarget:
    """One build configuration: core, compiler and optimisation level."""

    cpu: str  # 'cortex-m4' | 'cortex-m7'
    compiler: str  # 'gcc' | 'clang'
    opt: str = "-O3"  # or '-Os'

    def __post_init__(self) -> None:
        if self.cpu not in MACHINES:
            raise ValueError(f"unknown cpu {self.cpu!r}; expected one of {sorted(MACHINES)}")
        if self.compiler not in ("gcc", "clang"):
            raise ValueError(f"unknown compiler {self.compiler!r}; expected 'gcc' or 'clang'")
        if self.opt not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"):
            raise ValueError(f"unknown optimisation level {self.opt!r}")


@dataclass
class ArmRun:
    """Result of one QEMU run.

    ``regions`` are the instruction counts of the program's regions in order,
    with the calibrated marker ``overhead`` subtracted. ``pc_counts``/``taken``
    are whole-run histograms (PC -> executions, PC -> taken control transfers);
    ``region_pc_counts``/``region_taken`` the same per region (raw: the marker
    instructions are included, so each sums to ``regions[i] + overhead``).
    The count fields are ``None``/empty unless the run was counted.
    """

    exit_code: int
    stdout: str
    regions: list[int] = field(default_factory=list)
    pc_counts: dict[int, int] | None = None
    taken: dict[int, int] | None = None
    stderr: str = ""
    overhead: int = 0
    total: int | None = None
    region_pc_counts: list[dict[int, int]] = field(default_factory=list)
    region_taken: list[dict[int, int]] = field(default_factory=list)
    calibration_pc_counts: dict[int, int] = field(default_factory=dict)
    calibration_taken: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


def tools_available() -> bool:
    """True when both cross compilers, QEMU, a host C compiler, pyelftools and capstone exist."""
    if not all(shutil.which(t) for t in (GCC, CLANG, QEMU, HOST_CC)):
        return False
    try:
        import capstone  # noqa: F401
        import elftools  # noqa: F401
    except ImportError:
        return False
    return True


def cflags(target: ArmTarget) -> list[str]:
    """The CMSIS-NN baseline's compile flags for ``target`` (no warnings, includes or defines)."""
    flags = [f"-mcpu={target.cpu}", "-mthumb", "-mfloat-abi=soft", target.opt, "-g", "-std=c11",
             "-ffunction-sections", "-fdata-sections"]
    if target.compiler == "clang":
        return ["--target=thumbv7em-none-eabi", *flags, "-isystem", NEWLIB_INCLUDE]
    return flags


def _ldflags(target: ArmTarget) -> list[str]:
    return [f"-mcpu={target.cpu}", "-mthumb", "-mfloat-abi=soft", "-nostdlib", "-T", str(LINKER_SCRIPT),
            "-Wl,--gc-sections"]


from .tools import run_tool as _run_tool  # noqa: E402


def build_elf(
    sources: Sequence[Path],
    out: Path,
    target: ArmTarget,
    include_dirs: Sequence[Path] = (),
    defines: Sequence[str] = (),
    extra_cflags: Sequence[str] = (),
) -> Path:
    """Compile ``sources`` together with the runtime and link a bare-metal ELF at ``out``.

    ``defines`` are ``NAME`` or ``NAME=VALUE``; ``extra_cflags`` (e.g. ``-Wall -Wextra
    -Werror``) apply to every source, the runtime included. gcc compiles and links
    in one command; clang compiles each file, then arm-none-eabi-gcc links
    (``-nostdlib``, the runtime's memcpy/memset, ``-lgcc``). Raises
    :class:`ToolchainError` with the compiler's stderr on failure.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    srcs = [str(Path(s)) for s in sources] + [str(s) for s in RUNTIME_SOURCES]
    common = [*cflags(target), *extra_cflags, "-I", str(DATA_DIR)]
    common += [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    if target.compiler == "gcc":
        _run_tool([GCC, *common, *_ldflags(target), "-o", str(out), *srcs, "-lgcc"], "arm-none-eabi-gcc build")
        return out
    with tempfile.TemporaryDirectory(prefix="kgen-clang-") as tmp:
        objs = []
        for i, src in enumerate(srcs):
            obj = str(Path(tmp) / f"{i}_{Path(src).stem}.o")
            _run_tool([CLANG, *common, "-c", src, "-o", obj], f"clang-19 compile of {src}")
            objs.append(obj)
        _run_tool([GCC, *_ldflags(target), "-o", str(out), *objs, "-lgcc"], "arm-none-eabi-gcc link")
    return out


def _cache_dir() -> Path:
    env = os.environ.get("KGEN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kgen"


def plugin_path() -> Path:
    """Path of the compiled counting plugin, building it on first use (keyed by a hash of its source)."""
    src = PLUGIN_SOURCE.read_bytes()
    digest = hashlib.sha256(src).hexdigest()[:16]
    so = _cache_dir() / f"kgen_insn_count-{digest}.so"
    if so.exists():
        return so
    so.parent.mkdir(parents=True, exist_ok=True)
    tmp = so.with_name(f"{so.name}.{os.getpid()}.tmp")
    _run_tool([HOST_CC, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(tmp), str(PLUGIN_SOURCE)],
              "counting plugin build")
    os.replace(tmp, so)
    return so


def marker_addresses(elf: Path) -> tuple[int, int]:
    """Addresses (Thumb bit cleared) of ``kgen_region_begin`` and ``kgen_region_end`` in ``elf``."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    found: dict[str, int] = {}
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if isinstance(sec, SymbolTableSection):
                for name in ("kgen_region_begin", "kgen_region_end"):
                    syms = sec.get_symbol_by_name(name)
                    if syms:
                        found[name] = syms[0]["st_value"] & ~1
    if len(found) != 2:
        raise SimError(f"{elf}: kgen_region_begin/kgen_region_end not found (not built with the kgen runtime?)")
    return found["kgen_region_begin"], found["kgen_region_end"]


def _parse_counts(text: str, run: ArmRun) -> None:
    """Fill the count fields of ``run`` from the plugin's output file."""
    lines = text.splitlines()
    if not lines or lines[0] != "kgen_insn_count 1" or lines[-1] != "end":
        raise SimError(f"counting plugin output is missing or truncated\n{run.stderr}")
    pcs: dict[int, int] = {}
    taken: dict[int, int] = {}
    totals: list[int] = []
    rpcs: list[dict[int, int]] = []
    rtaken: list[dict[int, int]] = []
    errors: list[str] = []
    for line in lines[1:-1]:
        kind, _, rest = line.partition(" ")
        f = rest.split()
        if kind == "total":
            run.total = int(f[0])
        elif kind == "pc":
            pc = int(f[0], 16)
            pcs[pc] = int(f[1])
            if int(f[2]):
                taken[pc] = int(f[2])
        elif kind == "region":
            totals.append(int(f[1]))
            rpcs.append({})
            rtaken.append({})
        elif kind == "rpc":
            pc = int(f[1], 16)
            rpcs[int(f[0])][pc] = int(f[2])
            if int(f[3]):
                rtaken[int(f[0])][pc] = int(f[3])
        elif kind == "error":
            errors.append(rest)
    if errors and run.exit_code == 0:
        raise SimError("region markers misused: " + "; ".join(errors))
    if not totals:
        raise SimError("no calibration region recorded (ELF not built with the kgen runtime?)")
    run.pc_counts, run.taken = pcs, taken
    run.overhead = totals[0]
    run.calibration_pc_counts, run.calibration_taken = rpcs[0], rtaken[0]
    run.regions = [t - totals[0] for t in totals[1:]]
    run.region_pc_counts, run.region_taken = rpcs[1:], rtaken[1:]


def run_elf(elf: Path, cpu: str, count: bool = False, timeout: float = 120) -> ArmRun:
    """Run ``elf`` on the QEMU machine for ``cpu``; optionally count instructions.

    The exit status is ``main``'s return value (saturated to 254; 255 = fault).
    Raises :class:`SimError` on timeout or unusable plugin output.
    """
    if cpu not in MACHINES:
        raise ValueError(f"unknown cpu {cpu!r}")
    cmd = [QEMU, "-M", MACHINES[cpu], "-display", "none", "-monitor", "none", "-serial", "none",
           "-chardev", "stdio,id=sh0", "-semihosting-config", "enable=on,target=native,chardev=sh0",
           "-kernel", str(elf)]
    with tempfile.TemporaryDirectory(prefix="kgen-qemu-") as tmp:
        out_file = Path(tmp) / "counts.txt"
        if count:
            begin, end = marker_addresses(Path(elf))
            cmd += ["-plugin", f"{plugin_path()},out={out_file},begin={begin:#x},end={end:#x}"]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise SimError(f"{elf}: QEMU did not finish within {timeout} s") from exc
        run = ArmRun(exit_code=proc.returncode, stdout=proc.stdout.decode("utf-8", "replace"),
                     stderr=proc.stderr.decode("utf-8", "replace"), seconds=time.perf_counter() - t0)
        if proc.returncode < 0:
            raise SimError(f"{elf}: QEMU killed by signal {-proc.returncode}\n{run.stderr}")
        if count:
            _parse_counts(out_file.read_text() if out_file.exists() else "", run)
    return run


def m4_cycles(elf: Path, run: ArmRun, region: int = 0) -> CycleEstimate:
    """Cortex-M4 TRM cycle estimate (P = 1, 2, 3) of region ``region`` of a counted run.

    The region's executed instructions (Capstone, Thumb + M-class) are costed
    with the table in :mod:`kgen.sim.arm_timing`; the cost of the empty
    calibration region (2 + 2P) is subtracted. A zero-wait-state model estimate.
    """
    if run.pc_counts is None:
        raise ValueError("m4_cycles needs a run made with count=True")
    if not 0 <= region < len(run.regions):
        raise IndexError(f"region {region} out of range (run has {len(run.regions)})")
    return m4_cycles_from_counts(Path(elf), run.region_pc_counts[region], run.region_taken[region],
                                 run.calibration_pc_counts, run.calibration_taken)


def run_asm_snippets(
    snippets: Sequence[tuple[str, Sequence[int]]],
    cpu: str,
    compiler: str = "gcc",
    workdir: Path | None = None,
    timeout: float = 120,
) -> list[int]:
    """Execute inline-asm snippets on the target and return their uint32 results.

    Each snippet is ``(template, inputs)``: a GNU inline-asm template with ``%0``
    as the 32-bit output and ``%1``… as the inputs (uint32 values, passed in
    registers through a volatile array so nothing is constant-folded), e.g.
    ``("smlad %0, %1, %2, %3", [a, b, acc])``. Templates may hold several
    instructions separated by ``\\n``; the output is early-clobber and
    flags are clobbered. All snippets run in one program and one QEMU run.
    """
    inputs: list[int] = []
    body: list[str] = []
    for i, (tmpl, args) in enumerate(snippets):
        base = len(inputs)
        inputs.extend(int(a) & 0xFFFFFFFF for a in args)
        decl = "".join(f" uint32_t a{k} = kgen_in[{base + k}];" for k in range(len(args)))
        ins = ", ".join(f'"r"(a{k})' for k in range(len(args)))
        lit = tmpl.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n\\t")
        body.append(f'  {{ /* snippet {i} */{decl} uint32_t r;\n'
                    f'    __asm__ volatile("{lit}" : "=&r"(r) : {ins or ""} : "cc", "r12");\n'
                    f'    kgen_out[{i}] = r; }}\n')
    n = len(snippets)
    src = ("#include \"kgen_harness.h\"\n"
           f"volatile uint32_t kgen_in[{max(1, len(inputs))}] = {{{', '.join(f'{v}u' for v in inputs) or '0u'}}};\n"
           f"volatile uint32_t kgen_out[{max(1, n)}];\n"
           "int main(void)\n{\n" + "".join(body) +
           f"  for (unsigned i = 0; i < {n}u; i++) {{ kgen_puts(\"R \"); kgen_put_u32(kgen_out[i]); kgen_puts(\"\\n\"); }}\n"
           "  return 0;\n}\n")
    target = ArmTarget(cpu=cpu, compiler=compiler, opt="-O2")
    with tempfile.TemporaryDirectory(prefix="kgen-snip-", dir=workdir) as tmp:
        c_file = Path(tmp) / "kgen_snippets.c"
        c_file.write_text(src)
        try:
            elf = build_elf([c_file], Path(tmp) / "snippets.elf", target)
        except ToolchainError as exc:
            raise ToolchainError(f"{exc}\n--- generated source ---\n{src[:20000]}") from None
        run = run_elf(elf, cpu, timeout=timeout)
    values = [int(line[2:]) for line in run.stdout.splitlines() if line.startswith("R ")]
    if run.exit_code != 0 or len(values) != n:
        raise SimError(f"snippet program failed (exit {run.exit_code}, {len(values)}/{n} results)\n"
                       f"{run.stdout}{run.stderr}")
    return values
