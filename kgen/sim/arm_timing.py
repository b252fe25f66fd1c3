"""Cortex-M4 cycle estimate from an executed instruction histogram.

The model is the Cortex-M4 TRM (r0p1, Table 3-1, plus its load/store
pipelining notes) at zero wait states, applied the same way as for the
CMSIS-NN baseline figures (``/work/shared/baselines/README.md`` §2):

========================================  ==================================
Instruction class                         Cycles
========================================  ==================================
ALU, extend, SIMD, saturate, multiplies   1 (``SMLAD``, ``SMULL``, ``SMLAL`` too)
``IT``                                    1
``LDR`` family (single load)              2; 1 when the instruction executed just
                                          before is a single load whose loaded
                                          register is not an address register here
``STR`` family (single store)             1
``LDRD`` / ``STRD``                       3
``LDM`` / ``STM`` / ``PUSH`` / ``POP``    1 + number of registers
``SDIV`` / ``UDIV``                       12 (upper bound)
``TBB`` / ``TBH``                         3
branches and other writes to the PC       base cost + P per taken execution
address dependency                        + 1 when a load/store's address register
                                          was written by the data-processing
                                          instruction executed just before
========================================  ==================================

P is the pipeline refill penalty (1..3; 2 is the point estimate). Taken
counts come from the counting plugin, so unconditional branches, calls and
returns pay P on every execution and conditional ones on their taken
executions. Predecessor effects use the static predecessor of an instruction:
it precedes it exactly ``count - taken`` times (its fall-through executions);
an instruction reached by a branch is treated as having no predecessor.
Condition-failed instructions are charged like executed ones. Flash wait
states, bus contention and unaligned accesses are not modelled; the figures
are a zero-wait-state model estimate, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

_SINGLE_LOADS = frozenset(
    "ldr ldrb ldrh ldrsb ldrsh ldrt ldrbt ldrht ldrsbt ldrsht ldrex ldrexb ldrexh vldr".split()
)
_SINGLE_STORES = frozenset("str strb strh strt strbt strht strex strexb strexh vstr".split())
_DOUBLE = frozenset("ldrd strd".split())
_MULTI = frozenset("ldm ldmdb ldmda ldmib stm stmdb stmda stmib push pop vpush vpop vldmia vldmdb vstmia vstmdb".split())
_BRANCHES = frozenset("b bl bx blx cbz cbnz".split())
_TABLE_BRANCHES = frozenset("tbb tbh".split())
_DIVIDES = frozenset("sdiv udiv".split())


@dataclass(frozen=True)
class CycleEstimate:
    """Cortex-M4 zero-wait-state cycle estimate of one region (marker cost removed).

    ``p1``/``p2``/``p3`` are the totals for a pipeline refill penalty P of 1, 2
    and 3 cycles; ``p2`` is the point estimate and the others bracket it.
    """

    p1: int
    p2: int
    p3: int
    instructions: int

    @property
    def cpi(self) -> float:
        """Cycles per instruction at P = 2."""
        return self.p2 / self.instructions if self.instructions else 0.0


@dataclass(frozen=True)
class _Insn:
    """What the model needs of one static instruction."""

    size: int
    base: int          # cycles without P and without predecessor effects
    refill: bool       # pays P on taken executions
    single_load: bool
    is_mem: bool       # load or store (address dependency applies)
    data_processing: bool
    addr_regs: frozenset[int]
    loaded_regs: frozenset[int]
    written_regs: frozenset[int]


def _code_sections(elf: Path) -> list[tuple[int, bytes]]:
    """(address, bytes) of every executable section of ``elf``."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    out: list[tuple[int, bytes]] = []
    with open(elf, "rb") as f:
        ef = ELFFile(f)
        for sec in ef.iter_sections():
            if sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and sec["sh_type"] == "SHT_PROGBITS":
                out.append((sec["sh_addr"], sec.data()))
    return out


def _classify(insn: object) -> _Insn:
    """Turn one Capstone instruction (detail on) into the model's view."""
    from capstone import arm as A

    name = insn.insn_name()  # type: ignore[attr-defined]
    ops = insn.operands  # type: ignore[attr-defined]
    _, written = insn.regs_access()  # type: ignore[attr-defined]
    written_set = frozenset(written)
    writes_pc = A.ARM_REG_PC in written_set
    addr: set[int] = set()
    for op in ops:
        if op.type == A.ARM_OP_MEM:
            addr.update(r for r in (op.mem.base, op.mem.index) if r)
    loaded: frozenset[int] = frozenset()
    single_load = name in _SINGLE_LOADS
    if single_load and ops and ops[0].type == A.ARM_OP_REG:
        loaded = frozenset({ops[0].reg})
    refill = False
    if name in _BRANCHES:
        base, refill = 1, True
    elif name in _TABLE_BRANCHES:
        base, refill = 3, True
    elif single_load:
        base, refill = 2, writes_pc
    elif name in _SINGLE_STORES:
        base = 1
    elif name in _DOUBLE:
        base = 3
    elif name in _MULTI:
        regs = [op for op in ops if op.type == A.ARM_OP_REG]
        if name.startswith(("ldm", "stm", "vldm", "vstm")) and regs:
            addr.add(regs[0].reg)
            regs = regs[1:]
        else:
            addr.add(A.ARM_REG_SP)
        base, refill = 1 + len(regs), writes_pc
    elif name in _DIVIDES:
        base = 12
    else:
        base, refill = 1, writes_pc
    is_mem = bool(addr)
    return _Insn(
        size=insn.size,  # type: ignore[attr-defined]
        base=base,
        refill=refill,
        single_load=single_load,
        is_mem=is_mem,
        data_processing=not is_mem and not refill and name != "it",
        addr_regs=frozenset(addr),
        loaded_regs=loaded,
        written_regs=written_set,
    )


def _decode(elf: Path, pcs: set[int]) -> dict[int, _Insn]:
    """Decode every PC in ``pcs``; runs of contiguous PCs are decoded together
    so that Capstone tracks IT blocks."""
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True
    sections = _code_sections(elf)
    out: dict[int, _Insn] = {}
    for start in sorted(pcs):
        if start in out:
            continue
        for addr, data in sections:
            if addr <= start < addr + len(data):
                break
        else:
            raise ValueError(f"executed PC {start:#x} is outside the code of {elf}")
        pc = start
        while pc in pcs and pc not in out and pc < addr + len(data):
            before = pc
            for insn in md.disasm(data[pc - addr:pc - addr + 1024], pc):
                if pc not in pcs or pc in out:
                    break
                out[pc] = _classify(insn)
                pc += insn.size
            if pc == before:
                break
        if start not in out:
            raise ValueError(f"cannot decode the instruction at {start:#x} in {elf}")
    return out


def _cost_terms(
    counts: Mapping[int, int], taken: Mapping[int, int], decoded: Mapping[int, _Insn]
) -> tuple[int, int]:
    """Return (cycles without P, number of refills) for one histogram."""
    fixed = 0
    refills = 0
    by_end = {pc + d.size: pc for pc, d in decoded.items()}
    for pc, n in counts.items():
        if n == 0:
            continue
        d = decoded[pc]
        fixed += d.base * n
        if d.refill:
            refills += taken.get(pc, 0)
        prev_pc = by_end.get(pc)
        if prev_pc is None or prev_pc not in counts:
            continue
        prev = decoded[prev_pc]
        pairs = min(n, max(0, counts[prev_pc] - taken.get(prev_pc, 0)))
        if pairs == 0:
            continue
        if d.single_load and prev.single_load and not (prev.loaded_regs & d.addr_regs):
            fixed -= pairs  # pipelined load: 1 cycle instead of 2
        if d.is_mem and prev.data_processing and (prev.written_regs & d.addr_regs):
            fixed += pairs  # address generated by the instruction just before
    return fixed, refills


def m4_cycles_from_counts(
    elf: Path,
    counts: Mapping[int, int],
    taken: Mapping[int, int],
    overhead_counts: Mapping[int, int] | None = None,
    overhead_taken: Mapping[int, int] | None = None,
) -> CycleEstimate:
    """Cost a region histogram with the TRM table; subtract the cost of the
    empty calibration region given by ``overhead_counts``/``overhead_taken``."""
    oc = dict(overhead_counts or {})
    ot = dict(overhead_taken or {})
    decoded = _decode(elf, {pc for pc, n in counts.items() if n} | {pc for pc, n in oc.items() if n})
    fixed, refills = _cost_terms(counts, taken, decoded)
    o_fixed, o_refills = _cost_terms(oc, ot, decoded)
    fixed -= o_fixed
    refills -= o_refills
    insns = sum(counts.values()) - sum(oc.values())
    return CycleEstimate(
        p1=fixed + refills, p2=fixed + 2 * refills, p3=fixed + 3 * refills, instructions=insns
    )
