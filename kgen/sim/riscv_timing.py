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
Misaligned accesses (2 cycles) and hardware loops are not modelled (the lead
models hardware loops analytically). A zero-wait-state model estimate, not a
measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """Apply the table to ``counts`` (PC -> executions, markers removed).

    ``raw`` is the unfiltered histogram of the same region (used to infer how
    often each branch fell through); ``targets`` the static control-flow targets.
    """
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
        total += c
    return CycleEstimate(cycles=total, instructions=sum(counts.values()), by_kind=by_kind,
                         load_use_stalls=stalls, taken_branches=taken_total, ambiguous=tuple(ambiguous))
