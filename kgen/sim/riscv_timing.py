"""RV32IMC + XpulpV2 decoder and CV32E40P cycle estimate from an executed PC histogram.

The decoder is the project's own (it owns the XpulpV2 encodings used by
``spike_ext/xpulpv2.cc`` and ``isa/xpulpv2.toml``) and only extracts what the
timing model needs: the instruction class, registers read/written, size and
static control-flow target.

Timing table (CV32E40P user manual pipeline timings, toolchain notes §7):

==============================================  ===========================
Instruction                                     Cycles
==============================================  ===========================
ALU, ``mul``, every XpulpV2 ALU/MAC/SIMD op      1
``mulh``/``mulhsu``/``mulhu``                     5
``div``/``rem``/``divu``/``remu``                 35 (upper bound of 3..35)
load (incl. ``p.l*`` post-increment, AMO)       1, + 1 when the next instruction
                                                reads the loaded register
store (incl. ``p.s*``)                          1
``jal``/``jalr`` (and compressed forms)         2
branch not taken / taken                        1 / 3
CSR access                                      4
==============================================  ===========================

Taken counts come from the histogram: a branch's fall-through instruction runs
``count(branch) - taken`` times when no other control transfer targets it; when
one does, the estimate is still ``count(branch) - count(fall-through)`` clamped
to ``[0, count]`` and the branch is reported in ``ambiguous``. The load-use
stall is charged when the static successor reads the loaded register.
Misaligned accesses (2 cycles) are not modelled. A zero-wait-state model
estimate, not a measurement.

Hardware-loop estimate (:func:`hwloop_estimate`).  clang-19 cannot emit
CV32E40P hardware loops, so the executed kernels use loop-closing branches.
PULP GCC turns counted loops with branch-free, call-free bodies into hardware
loops (two levels: the innermost loops, level 0, and loops whose only loops are
level-0 ones, level 1).  From the executed branch-form stream the estimate finds
exactly those loops (backward conditional branches; body = target .. branch)
and, per loop:

* removes every execution of the loop-closing branch (its cycles: 1 + 2 per
  taken execution);
* removes a counter that only the loop uses: a register the branch compares
  whose only definition in the body is ``addi r, r, imm`` and whose only other
  use is the branch, together with its initialisation just before the loop when
  that is a constant (``li``); a constant limit materialised in the body
  (``li r, K`` read only by the branch) is removed too.  Pointer induction
  variables the body also uses for addressing stay;
* adds the setup per loop entry (entries = not-taken executions of the branch):
  ``lp.setupi`` (1 instruction, 1 cycle) when the trip count (executions /
  entries) fits 12 bits and the body ends at most 62 bytes after the setup,
  else ``li`` + ``lp.setup`` (2);
* adds a ``nop`` per iteration of a level-1 loop whose body would otherwise end
  right where its inner loop ends (the CV32E40P needs >= 1 instruction between
  the two loop ends), and pads bodies shorter than 3 instructions (such loops
  are left to branches instead: they are not candidates).

The estimate is exact in the sense that it is counted from the executed stream
(no per-iteration guess); what it assumes is the hardware-loop form PULP GCC
would produce for these loops, which is not executed here.  The Spike
extension does implement ``lp.*`` (``spike_ext/hwloop.h``), and the test suite
checks the estimate against hand-written hardware-loop code executed on Spike.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

CYCLES = {"alu": 1, "mul": 1, "mulh": 5, "div": 35, "load": 1, "store": 1, "jump": 2,
          "branch": 1, "csr": 4, "system": 1, "xpulp": 1, "hwloop": 1, "marker": 0}
TAKEN_BRANCH = 3


@dataclass(frozen=True)
class Insn:
    """Model view of one static instruction."""

    kind: str                      # key of CYCLES
    size: int                      # 2 or 4 bytes
    reads: frozenset[int]
    writes: frozenset[int]
    loaded: int | None = None      # register written by the memory read (load-use hazard)
    target: int | None = None      # static branch / jal target
    mnemonic: str = ""


@dataclass(frozen=True)
class CycleEstimate:
    """CV32E40P zero-wait-state cycle estimate of one region on one hart."""

    cycles: int
    instructions: int
    by_kind: dict[str, int] = field(default_factory=dict)   # cycles per instruction class
    load_use_stalls: int = 0
    taken_branches: int = 0
    ambiguous: tuple[int, ...] = ()                          # branch PCs with an inferred taken count
    #: hardware-loop form (see :func:`hwloop_estimate`): modelled instructions and cycles
    hwloop_instructions: int = 0
    hwloop_cycles: int = 0
    hwloops: tuple["HwLoop", ...] = ()

    @property
    def cpi(self) -> float:
        """Cycles per instruction."""
        return self.cycles / self.instructions if self.instructions else 0.0


def _bits(x: int, lo: int, n: int) -> int:
    return (x >> lo) & ((1 << n) - 1)


def _sext(x: int, bits: int) -> int:
    return x - (1 << bits) if x & (1 << (bits - 1)) else x


def _r(*regs: int) -> frozenset[int]:
    return frozenset(r for r in regs if r)


def decode(word: int, pc: int = 0) -> Insn:
    """Decode one instruction (the low 16 bits are used when it is compressed)."""
    if word & 3 != 3:
        return _decode_c(word & 0xFFFF, pc)
    op, rd, f3 = word & 0x7F, _bits(word, 7, 5), _bits(word, 12, 3)
    rs1, rs2, f7 = _bits(word, 15, 5), _bits(word, 20, 5), _bits(word, 25, 7)
    if op == 0x03:  # loads; funct3 111 = p.l* rD, rs2(rs1)
        return Insn("load", 4, _r(rs1, rs2) if f3 == 7 else _r(rs1), _r(rd), rd or None, mnemonic="load")
    if op == 0x0B:  # custom-0: p.l* post-increment (imm: funct3 != 3/7; reg: funct3 7), kgen marker
        if f3 == 3:
            return Insn("marker", 4, _r(), _r(), mnemonic="kgen.marker")
        reads = _r(rs1, rs2) if f3 == 7 else _r(rs1)
        return Insn("load", 4, reads, _r(rd, rs1), rd or None, mnemonic="p.load.post")
    if op == 0x23:  # stores; funct3 1xx = p.s* rs2, rs3(rs1) with rs3 in the rd field
        return Insn("store", 4, _r(rs1, rs2, rd) if f3 >= 4 else _r(rs1, rs2), _r(), mnemonic="store")
    if op == 0x2B:  # custom-1: p.s* post-increment
        return Insn("store", 4, _r(rs1, rs2, rd) if f3 >= 4 else _r(rs1, rs2), _r(rs1), mnemonic="p.store.post")
    if op == 0x2F:  # AMO / LR / SC
        return Insn("load", 4, _r(rs1, rs2), _r(rd), rd or None, mnemonic="amo")
    if op in (0x13, 0x17, 0x37):
        return Insn("alu", 4, _r(rs1) if op == 0x13 else _r(), _r(rd), mnemonic="alu")
    if op == 0x33:
        if f7 == 1:
            kind = "mul" if f3 == 0 else "mulh" if f3 < 4 else "div"
            return Insn(kind, 4, _r(rs1, rs2), _r(rd), mnemonic=kind)
        if f7 in (0x00, 0x20):
            return Insn("alu", 4, _r(rs1, rs2), _r(rd), mnemonic="alu")
        tied = f7 == 0x21  # p.mac / p.msu accumulate into rD
        return Insn("xpulp", 4, _r(rs1, rs2, rd) if tied else _r(rs1, rs2), _r(rd), mnemonic="p.alu")
    if op == 0x57:  # XpulpV2 SIMD; sdot*, packhi/packlo read rD
        f5 = f7 >> 2
        tied = f5 in (20, 21, 23, 27, 28)
        return Insn("xpulp", 4, _r(rs1, rs2, rd) if tied else _r(rs1, rs2), _r(rd), mnemonic="pv")
    if op == 0x5B:  # p.mul*N / p.mac*N / p.add*N / p.sub*N; MAC and register forms read rD
        tied = f3 in (1, 5) or (f3 in (2, 3, 6, 7) and _bits(word, 30, 1))
        return Insn("xpulp", 4, _r(rs1, rs2, rd) if tied else _r(rs1, rs2), _r(rd), mnemonic="p.mulN")
    if op == 0x63:
        imm = (_bits(word, 8, 4) << 1) | (_bits(word, 25, 6) << 5) | (_bits(word, 7, 1) << 11) | (_bits(word, 31, 1) << 12)
        return Insn("branch", 4, _r(rs1, rs2), _r(), target=(pc + _sext(imm, 13)) & 0xFFFFFFFF, mnemonic="branch")
    if op == 0x67:
        return Insn("jump", 4, _r(rs1), _r(rd), mnemonic="jalr")
    if op == 0x6F:
        imm = (_bits(word, 21, 10) << 1) | (_bits(word, 20, 1) << 11) | (_bits(word, 12, 8) << 12) | (_bits(word, 31, 1) << 20)
        return Insn("jump", 4, _r(), _r(rd), target=(pc + _sext(imm, 21)) & 0xFFFFFFFF, mnemonic="jal")
    if op == 0x73:
        if f3:
            return Insn("csr", 4, _r(rs1) if f3 < 4 else _r(), _r(rd), mnemonic="csr")
        return Insn("system", 4, _r(), _r(), mnemonic="system")
    if op == 0x7B:
        return Insn("hwloop", 4, _r(rs1), _r(), mnemonic="lp")
    return Insn("alu", 4, _r(), _r(), mnemonic="other")  # fence and anything unknown


def _decode_c(h: int, pc: int) -> Insn:
    q, f3 = h & 3, h >> 13
    rd = _bits(h, 7, 5)
    rs2 = _bits(h, 2, 5)
    rdp, rs2p = 8 + _bits(h, 7, 3), 8 + _bits(h, 2, 3)
    if q == 0:
        if f3 == 2:
            return Insn("load", 2, _r(rdp), _r(rs2p), rs2p, mnemonic="c.lw")
        if f3 == 6:
            return Insn("store", 2, _r(rdp, rs2p), _r(), mnemonic="c.sw")
        return Insn("alu", 2, _r(2), _r(rs2p), mnemonic="c.addi4spn")
    if q == 1:
        if f3 in (1, 5):  # c.jal / c.j
            imm = (_bits(h, 3, 3) << 1) | (_bits(h, 11, 1) << 4) | (_bits(h, 2, 1) << 5) | (_bits(h, 7, 1) << 6) \
                | (_bits(h, 6, 1) << 7) | (_bits(h, 9, 2) << 8) | (_bits(h, 8, 1) << 10) | (_bits(h, 12, 1) << 11)
            return Insn("jump", 2, _r(), _r(1) if f3 == 1 else _r(), target=(pc + _sext(imm, 12)) & 0xFFFFFFFF,
                        mnemonic="c.j")
        if f3 in (6, 7):  # c.beqz / c.bnez
            imm = (_bits(h, 3, 2) << 1) | (_bits(h, 10, 2) << 3) | (_bits(h, 2, 1) << 5) | (_bits(h, 5, 2) << 6) \
                | (_bits(h, 12, 1) << 8)
            return Insn("branch", 2, _r(rdp), _r(), target=(pc + _sext(imm, 9)) & 0xFFFFFFFF, mnemonic="c.bxxz")
        if f3 == 4:
            if _bits(h, 10, 2) == 3:
                return Insn("alu", 2, _r(rdp, rs2p), _r(rdp), mnemonic="c.alu")
            return Insn("alu", 2, _r(rdp), _r(rdp), mnemonic="c.alu")
        if f3 == 0:
            return Insn("alu", 2, _r(rd), _r(rd), mnemonic="c.addi")
        return Insn("alu", 2, _r(rd) if f3 == 3 and rd == 2 else _r(), _r(rd), mnemonic="c.li")
    if q == 2:
        if f3 == 0:
            return Insn("alu", 2, _r(rd), _r(rd), mnemonic="c.slli")
        if f3 == 2:
            return Insn("load", 2, _r(2), _r(rd), rd, mnemonic="c.lwsp")
        if f3 == 6:
            return Insn("store", 2, _r(2, rs2), _r(), mnemonic="c.swsp")
        if f3 == 4:
            bit12 = _bits(h, 12, 1)
            if rs2 == 0:
                if rd == 0:
                    return Insn("system", 2, _r(), _r(), mnemonic="c.ebreak")
                return Insn("jump", 2, _r(rd), _r(1) if bit12 else _r(), mnemonic="c.jr")
            return Insn("alu", 2, _r(rd, rs2) if bit12 else _r(rs2), _r(rd), mnemonic="c.mv")
    return Insn("alu", 2, _r(), _r(), mnemonic="c.other")


def load_code(elf: Path) -> dict[int, int]:
    """Map of every 2-byte-aligned address in executable sections to its 32-bit little-endian word."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    words: dict[int, int] = {}
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and sec["sh_type"] == "SHT_PROGBITS":
                data, base = sec.data() + b"\0\0", sec["sh_addr"]
                for off in range(0, len(data) - 2, 2):
                    words[base + off] = int.from_bytes(data[off:off + 4].ljust(4, b"\0"), "little")
    return words


def static_targets(code: Mapping[int, int], starts: list[tuple[int, int]]) -> set[int]:
    """Static branch/jal targets of the instruction streams in ``starts`` ((begin, end) ranges)."""
    out: set[int] = set()
    for lo, hi in starts:
        pc = lo
        while pc < hi and pc in code:
            ins = decode(code[pc], pc)
            if ins.target is not None:
                out.add(ins.target)
            pc += ins.size
    return out


def cycles_from_counts(code: Mapping[int, int], counts: Mapping[int, int], raw: Mapping[int, int],
                       targets: set[int]) -> CycleEstimate:
    """Apply the table to ``counts`` (PC -> executions, markers removed), with the
    hardware-loop estimate attached.

    ``raw`` is the unfiltered histogram of the same region (used to infer how
    often each branch fell through); ``targets`` the static control-flow targets.
    """
    per_pc: dict[int, int] = {}
    base = _table_cycles(code, counts, raw, targets, per_pc)
    hw = hwloop_estimate(code, counts, raw)
    removed_i = sum(counts.get(pc, 0) for lp in hw for pc in lp.removed)
    removed_c = sum(per_pc.get(pc, 0) for lp in hw for pc in lp.removed)
    added = sum(lp.added for lp in hw)
    return replace(base, hwloop_instructions=base.instructions - removed_i + added,
                   hwloop_cycles=base.cycles - removed_c + added, hwloops=tuple(hw))


def _table_cycles(code: Mapping[int, int], counts: Mapping[int, int], raw: Mapping[int, int],
                  targets: set[int], per_pc: dict[int, int]) -> CycleEstimate:
    total = 0
    by_kind: dict[str, int] = {}
    stalls = taken_total = 0
    ambiguous: list[int] = []
    for pc, n in sorted(counts.items()):
        ins = decode(code.get(pc, 0x13), pc)
        c = CYCLES[ins.kind] * n
        if ins.kind == "branch":
            ft = pc + ins.size
            taken = min(max(n - raw.get(ft, 0), 0), n)
            if ft in targets:
                ambiguous.append(pc)
            taken_total += taken
            c += (TAKEN_BRANCH - 1) * taken
        if ins.loaded:
            nxt = decode(code.get(pc + ins.size, 0x13), pc + ins.size)
            if ins.loaded in nxt.reads:
                stalls += n
                c += n
        by_kind[ins.kind] = by_kind.get(ins.kind, 0) + c
        per_pc[pc] = c
        total += c
    return CycleEstimate(cycles=total, instructions=sum(counts.values()), by_kind=by_kind,
                         load_use_stalls=stalls, taken_branches=taken_total, ambiguous=tuple(ambiguous))


# ------------------------------------------------------------------------ hardware loops


@dataclass(frozen=True)
class HwLoop:
    """One loop of the executed stream that the hardware-loop form turns into ``lp.setup*``."""

    start: int                  # first body instruction (the branch target)
    branch: int                 # the loop-closing branch (last body instruction in branch form)
    level: int                  # 0 innermost, 1 outer
    iterations: int             # executions of the closing branch
    entries: int                # loop entries (not-taken executions of the closing branch)
    removed: tuple[int, ...]    # PCs whose executions disappear (branch, counter update, counter init)
    added: int                  # instructions (= cycles) added: setup per entry, nop padding


def _body(code: Mapping[int, int], lo: int, hi: int) -> list[tuple[int, Insn]]:
    out = []
    pc = lo
    while pc <= hi and pc in code:
        ins = decode(code[pc], pc)
        out.append((pc, ins))
        pc += ins.size
    return out


def _is_addi_self(word: int, ins: Insn, r: int) -> bool:
    """``addi r, r, imm`` (or ``c.addi``)."""
    if ins.size == 2:
        return ins.mnemonic == "c.addi" and ins.writes == {r}
    return word & 0x707F == 0x13 and ins.writes == {r} and ins.reads == {r}


def hwloop_estimate(code: Mapping[int, int], counts: Mapping[int, int], raw: Mapping[int, int]) -> list[HwLoop]:
    """The loops of a region that would be hardware loops, with what changes (module docstring)."""
    loops = []
    for pc, n in counts.items():
        ins = decode(code.get(pc, 0x13), pc)
        if ins.kind == "branch" and ins.target is not None and ins.target <= pc and n > 0:
            loops.append((ins.target, pc))
    loops.sort(key=lambda x: x[1] - x[0])
    inner_of = {lp: [q for q in loops if q != lp and lp[0] <= q[0] and q[1] <= lp[1]] for lp in loops}
    closing = {b for _, b in loops}
    chosen: dict[tuple[int, int], int] = {}
    for lp in loops:  # innermost first
        body = _body(code, lp[0], lp[1])
        inner = inner_of[lp]
        if any(ins.kind in ("jump", "system", "csr") or ins.mnemonic in ("amo", "other")
               or (ins.kind == "branch" and pc != lp[1] and pc not in closing) for pc, ins in body):
            continue
        if not inner:
            chosen[lp] = 0
        elif all(chosen.get(q) == 0 for q in inner) and not any(inner_of[q] for q in inner):
            chosen[lp] = 1
    out: list[HwLoop] = []
    for (lo, hi), level in sorted(chosen.items()):
        out.append(_transform(code, counts, raw, lo, hi, level, chosen))
    return [lp for lp in out if lp is not None]


def _transform(code: Mapping[int, int], counts: Mapping[int, int], raw: Mapping[int, int], lo: int, hi: int,
               level: int, chosen: dict[tuple[int, int], int]) -> HwLoop | None:
    body = _body(code, lo, hi)
    br = body[-1][1]
    n = counts.get(hi, 0)
    entries = min(raw.get(hi + br.size, 0), n)  # not-taken executions = loop exits = entries
    removed = [hi]
    for r in sorted(br.reads):
        defs = [(pc, ins) for pc, ins in body if r in ins.writes]
        uses = [(pc, ins) for pc, ins in body if r in ins.reads and pc != hi]
        if len(defs) == 1 and defs[0][1].reads == frozenset() and not uses:
            removed.append(defs[0][0])             # constant limit materialised in the body
        elif len(defs) == 1 and _is_addi_self(code[defs[0][0]], defs[0][1], r) and \
                [pc for pc, _ in uses] == [defs[0][0]]:
            removed.append(defs[0][0])             # counter update
            init = _preheader_const(code, counts, lo, r)
            if init is not None:
                removed.append(init)
    kept = [pc for pc, _ in body if pc not in removed]
    if len(kept) < 3:
        return None
    trip = n // entries if entries else 0
    setup_bytes = 4 * (len(kept) + 1)  # bodies are 32-bit instructions in the hardware-loop form
    per_entry = 1 if 0 < trip < 4096 and setup_bytes <= 62 else 2
    added = per_entry * entries
    if level == 1:
        inner_ends = [q[1] for q in chosen if q != (lo, hi) and lo <= q[0] and q[1] <= hi]
        last_inner = max(inner_ends)
        if not [pc for pc, _ in body if last_inner < pc < hi and pc not in removed]:
            added += n  # a nop between the inner and the outer loop end
    return HwLoop(lo, hi, level, n, entries, tuple(removed), added)


def _preheader_const(code: Mapping[int, int], counts: Mapping[int, int], lo: int, r: int) -> int | None:
    """PC of ``li r, K`` among the few instructions just before ``lo`` (no other write of r between)."""
    pc = lo
    for _ in range(8):
        prev = next((pc - s for s in (2, 4) if pc - s in code and decode(code[pc - s], pc - s).size == s
                     and counts.get(pc - s)), None)
        if prev is None:
            return None
        ins = decode(code[prev], prev)
        if ins.kind in ("branch", "jump"):
            return None
        if r in ins.writes:
            return prev if ins.reads == frozenset() else None
        pc = prev
    return None
