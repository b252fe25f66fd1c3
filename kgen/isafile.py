"""ISA description files (``isa/*.toml``): loading, validation, semantics, intrinsic headers.

An instruction's semantics is a DSL expression over its operands (vector operands are indexed by
lane).  The same text drives three things, so they cannot drift apart:

- the reference interpreter evaluates lowered kernels that call the instruction,
- the portable C spelling of the instruction is generated from it,
- instruction selection (:mod:`kgen.isel`) matches kernel expressions against it.
"""
from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

from . import __version__
from .errors import KgenError
from .interp import eval_expr
from .ir import BOOL, SCALAR_TYPES, VECTOR_TYPES, Const, Expr, Load, Loc, Type

_TYPES = {**SCALAR_TYPES, **VECTOR_TYPES}


@dataclass(frozen=True)
class Instr:
    mnemonic: str
    cls: str
    operands: tuple[tuple[str, Type], ...]
    result: Type
    semantics: tuple[Expr, ...]  # one expression per result lane
    semantics_text: tuple[str, ...]
    asm: str
    cost: dict[str, int]
    tied: str | None = None
    insn: str | None = None
    builtin: str | None = None
    clobbers: tuple[str, ...] = ()
    requires: str | None = None
    effect: str | None = None
    quirk: str | None = None

    @property
    def c_name(self) -> str:
        return "kgen_" + re.sub(r"[^A-Za-z0-9]", "_", self.mnemonic)

    @property
    def executable(self) -> bool:
        return self.requires is None

    def evaluate(self, args: Sequence[Any]) -> int | list[int]:
        """Result of the instruction on operand values (vectors as lane lists)."""
        env = {name: (list(v) if t.lanes > 1 else int(v)) for (name, t), v in zip(self.operands, args)}
        lanes = [self.result.lane.wrap(eval_expr(e, env)) for e in self.semantics]
        return lanes if self.result.lanes > 1 else lanes[0]


@dataclass(frozen=True)
class Isa:
    name: str
    title: str
    feature_macro: str
    header: str
    gpr: int
    allocatable: int
    instrs: tuple[Instr, ...]
    sha256: str
    cost_model: dict[str, Any] = field(default_factory=dict)
    #: C preprocessor conditions selecting the inline-asm and the compiler-builtin spellings
    asm_condition: str = ""
    builtin_condition: str = ""

    def instr(self, mnemonic: str) -> Instr:
        for i in self.instrs:
            if i.mnemonic == mnemonic:
                return i
        raise KeyError(mnemonic)


def _line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    return 1


def _parse_semantics(text: str, operands: dict[str, Type], file: str, line: int) -> Expr:
    from .parser import parse_expr

    try:
        return parse_expr(text, operands, file)
    except KgenError as exc:
        raise KgenError(f"semantics '{text}': {exc.message}", Loc(file, line, 1)) from None


def load_isa_text(text: str, file: str) -> Isa:
    """Parse and validate an ISA file; every problem is reported as ``file:line:col``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        loc = Loc(file, int(m.group(1)), int(m.group(2))) if m else Loc(file, 1, 1)
        raise KgenError(f"invalid TOML: {str(exc).split(' (at')[0]}", loc, text) from None

    def err(msg: str, needle: str) -> KgenError:
        return KgenError(msg, Loc(file, _line_of(text, needle), 1), text)

    head = data.get("isa")
    if not isinstance(head, dict) or "name" not in head:
        raise err("missing [isa] table with a 'name'", "[isa]")
    regs = data.get("registers", {})
    instrs = []
    seen = set()
    for entry in data.get("instr", []):
        mn = entry.get("mnemonic")
        if not isinstance(mn, str):
            raise err("[[instr]] without a 'mnemonic'", "[[instr]]")
        anchor = f'mnemonic = "{mn}"'
        if mn in seen:
            raise err(f"instruction '{mn}' is declared twice", anchor)
        seen.add(mn)
        for key in ("class", "operands", "result", "semantics", "asm", "cost"):
            if key not in entry:
                raise err(f"instruction '{mn}': missing '{key}'", anchor)
        ops: dict[str, Type] = {}
        for op in entry["operands"]:
            if not (isinstance(op, list) and len(op) == 2 and op[1] in _TYPES):
                raise err(f"instruction '{mn}': operand {op!r} must be [name, type] with a type among "
                          f"{', '.join(_TYPES)}", anchor)
            ops[op[0]] = _TYPES[op[1]]
        if entry["result"] not in _TYPES:
            raise err(f"instruction '{mn}': unknown result type '{entry['result']}'", anchor)
        result = _TYPES[entry["result"]]
        sem_texts = entry["semantics"] if isinstance(entry["semantics"], list) else [entry["semantics"]]
        if len(sem_texts) != result.lanes:
            raise err(f"instruction '{mn}': result {result} has {result.lanes} lanes but semantics gives "
                      f"{len(sem_texts)} expressions", anchor)
        sem_line = _line_of(text[text.find(anchor):], "semantics") + _line_of(text, anchor) - 1
        sems = []
        for s in sem_texts:
            e = _parse_semantics(s, ops, file, sem_line)
            if e.type == BOOL or (e.type.is_data and e.type.lanes == 1 and e.type.bits > 64):
                raise err(f"instruction '{mn}': semantics must be an integer expression", anchor)
            sems.append(e)
        tied = entry.get("tied")
        if tied is not None and tied not in ops:
            raise err(f"instruction '{mn}': tied operand '{tied}' is not an operand", anchor)
        if not isinstance(entry["cost"], dict):
            raise err(f"instruction '{mn}': cost must be a table {{ core = cycles }}", anchor)
        instrs.append(Instr(mn, entry["class"], tuple(ops.items()), result, tuple(sems), tuple(sem_texts),
                            entry["asm"], dict(entry["cost"]), tied, entry.get("insn"), entry.get("builtin"),
                            tuple(entry.get("clobbers", ())), entry.get("requires"), entry.get("effect"),
                            entry.get("quirk")))
    name = head["name"]
    feature = head.get("feature_macro", "")
    return Isa(name, head.get("title", name), feature, head.get("header", f"kgen_{name}.h"),
               int(regs.get("gpr", 16)), int(regs.get("allocatable", 12)), tuple(instrs),
               hashlib.sha256(text.encode()).hexdigest(), dict(data.get("cost_model", {})),
               head.get("asm_condition", f"defined({feature})"), head.get("builtin_condition", ""))


@lru_cache(maxsize=None)
def load_isa(name: str) -> Isa:
    try:
        text = resources.files("kgen.isa").joinpath(f"{name}.toml").read_text()
    except FileNotFoundError:
        raise KgenError(f"no ISA file isa/{name}.toml") from None
    return load_isa_text(text, f"isa/{name}.toml")


def isa_of_call(fn: str) -> Instr:
    """The instruction behind an ``isa.<isa>.<mnemonic>`` call."""
    _, isa, mnemonic = fn.split(".", 2)
    return load_isa(isa).instr(mnemonic)


# ----------------------------------------------------------------------------- C spellings


def _portable_body(ins: Instr) -> str:
    """C statements computing the instruction from its semantics (the portable path)."""
    from .cgen import CEmitter
    from .ir import Kernel

    em = CEmitter(Kernel("_", (), (), ()))
    vec = {n: t for n, t in ins.operands if t.lanes > 1}

    def lane_load(e: Load) -> str:
        t = vec[e.buf]
        i = e.index[0]
        assert isinstance(i, Const)
        lane = t.lane
        shifted = f"({e.buf} >> {lane.bits * i.value})" if i.value else e.buf
        return f"(({lane.ctype})(uint{lane.bits}_t){shifted})"

    orig = em.ex

    def ex(e: Expr) -> str:
        if isinstance(e, Load) and e.buf in vec:
            return lane_load(e)
        return orig(e)

    em.ex = ex  # type: ignore[method-assign]
    if ins.result.lanes == 1:
        return f"    return ({ins.result.ctype})({ex(ins.semantics[0])});"
    lane = ins.result.lane
    parts = [f"((uint32_t)(uint{lane.bits}_t)({ex(e)}) << {lane.bits * i})" for i, e in enumerate(ins.semantics)]
    return "    return " + " | ".join(parts) + ";"


def _asm_body(ins: Instr) -> str:
    names = [n for n, _ in ins.operands]
    if ins.tied:
        rest = [n for n in names if n != ins.tied]
        tmpl = ins.insn or ins.asm
        # %0 is the tied accumulator, %1.. the other operands in order.
        ins_list = ", ".join(f'"r"({n})' for n in rest)
        return (f"    {ins.result.ctype} r = {ins.tied};\n"
                f"    __asm__(\"{_c_string(tmpl)}\" : \"+r\"(r) : {ins_list});\n    return r;")
    tmpl = ins.insn or ins.asm
    ins_list = ", ".join(f'"r"({n})' for n in names)
    clob = ", ".join(f'"{c}"' for c in ins.clobbers)
    early = "=&r" if ins.clobbers or "\n" in tmpl else "=r"
    return (f"    {ins.result.ctype} r;\n"
            f"    __asm__(\"{_c_string(tmpl)}\" : \"{early}\"(r) : {ins_list}{' : ' + clob if clob else ''});\n"
            f"    return r;")


_VECTOR_TYPEDEFS = ("#ifndef KGEN_VECTOR_TYPES", "#define KGEN_VECTOR_TYPES",
                    "typedef signed char kgen_v4s __attribute__((vector_size(4)));",
                    "typedef unsigned char kgen_v4u __attribute__((vector_size(4)));",
                    "typedef short kgen_v2s __attribute__((vector_size(4)));",
                    "typedef unsigned short kgen_v2u __attribute__((vector_size(4)));", "#endif")
_VEC_C = {"i8x4": "kgen_v4s", "u8x4": "kgen_v4u", "i16x2": "kgen_v2s", "u16x2": "kgen_v2u"}


def _builtin_body(ins: Instr) -> str:
    """The compiler-builtin spelling (e.g. PULP GCC's __builtin_pulp_sdotsp4), vector operands cast
    to the builtin's vector types."""
    text = ins.builtin or ""
    for n, t in ins.operands:
        text = text.replace("{" + n + "}", f"({_VEC_C[t.name]})({n})" if t.lanes > 1 else f"({n})")
    if ins.result.lanes > 1:
        return f"    {_VEC_C[ins.result.name]} r = {text};\n    uint32_t w;\n    __builtin_memcpy(&w, &r, 4);\n    return w;"
    return f"    return ({ins.result.ctype})({text});"


def _c_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n\\t")


def intrinsic_header(isa: Isa, used: Sequence[str] | None = None) -> str:
    """The intrinsic layer: one static inline function per instruction, ISA path + portable path."""
    guard = f"KGEN_{isa.name.upper()}_INTRINSICS_H"
    lines = ["/*", f" * {isa.header}: generated by kgen {__version__} from isa/{isa.name}.toml "
             f"(sha256 {isa.sha256[:16]}); do not edit.",
             f" * {isa.title}: each function has the instruction's semantics exactly; the inline-asm",
             f" * path is used when {isa.feature_macro} is defined (and KGEN_PORTABLE is not), the portable",
             " * C path (generated from the declared semantics) otherwise.", " */",
             f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", '#include "kgen_common.h"', ""]
    if isa.builtin_condition:
        lines += [f"#if {isa.builtin_condition}",
                  *_VECTOR_TYPEDEFS, "#endif", ""]
    # Pure instructions only: loads/stores with address side effects and hardware loops are
    # described in the ISA file (for costs and documentation) but are not value intrinsics.
    selected = [i for i in isa.instrs if (used is None or i.mnemonic in used) and i.effect is None
                and "{" not in i.asm]
    for ins in selected:
        params = ", ".join(f"{t.ctype} {n}" for n, t in ins.operands)
        sem = "; ".join(ins.semantics_text)
        lines.append(f"/* {ins.mnemonic} ({ins.cls}): {sem} */")
        if ins.quirk:
            lines.append(f"/* quirk: {ins.quirk} */")
        proto = f"KGEN_INLINE {ins.result.ctype} {ins.c_name}({params})"
        branches = []
        if ins.builtin and isa.builtin_condition:
            branches.append((f"!defined(KGEN_PORTABLE) && ({isa.builtin_condition})", _builtin_body(ins)))
        if ins.executable:
            branches.append((f"!defined(KGEN_PORTABLE) && ({isa.asm_condition})", _asm_body(ins)))
        for k, (cond, body) in enumerate(branches):
            lines += [f"{'#if' if k == 0 else '#elif'} {cond}", proto, "{", body, "}"]
        if branches:
            lines.append("#else")
        lines += [proto, "{", _portable_body(ins), "}"]
        if branches:
            lines.append("#endif")
        lines.append("")
    lines += [f"#endif /* {guard} */", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- register values


def pack(t: Type, value: Any) -> int:
    """Operand value → the uint32 register image (lane 0 least significant)."""
    if t.lanes > 1:
        lane = t.lane
        word = 0
        for i, v in enumerate(value):
            word |= (int(v) & ((1 << lane.bits) - 1)) << (lane.bits * i)
        return word
    return int(value) & 0xFFFFFFFF


def unpack(t: Type, word: int) -> int | list[int]:
    """uint32 register image → value of type ``t``."""
    if t.lanes > 1:
        lane = t.lane
        return [lane.wrap(word >> (lane.bits * i)) for i in range(t.lanes)]
    return t.wrap(word)


def operand_samples(t: Type, rng, n: int) -> list[Any]:
    """Random values of type ``t`` plus its extremes (every lane at min, max, mixed)."""
    lane = t.lane
    out: list[Any] = []
    extremes = [lane.min, lane.max, 0, -1 if lane.signed else 1]
    for e in extremes:
        out.append([e] * t.lanes if t.lanes > 1 else e)
    if t.lanes > 1:
        out.append([lane.min if i % 2 else lane.max for i in range(t.lanes)])
    while len(out) < n:
        vals = [int(rng.integers(lane.min, lane.max, endpoint=True)) for _ in range(t.lanes)]
        out.append(vals if t.lanes > 1 else vals[0])
    return out


def builtin_emulation_header(isa: Isa) -> str:
    """C definitions of the ISA's compiler builtins (e.g. ``__builtin_pulp_sdotsp4``) for hosts that
    lack them, generated from the declared semantics: the builtin spelling of the intrinsic layer can
    then be compiled and tested anywhere (``-DKGEN_PULP_BUILTINS -include <this header>``)."""
    guard = f"KGEN_{isa.name.upper()}_BUILTIN_EMULATION_H"
    lines = [f"/* Emulation of the {isa.name} compiler builtins, generated by kgen {__version__} from the",
             f" * semantics in isa/{isa.name}.toml (sha256 {isa.sha256[:16]}); for host testing only. */",
             f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", '#include "kgen_common.h"', "",
             *_VECTOR_TYPEDEFS,
             "#define KGEN_EMU_BITS(v) __extension__({ __typeof__(v) kgen_t_ = (v); uint32_t kgen_w_; "
             "__builtin_memcpy(&kgen_w_, &kgen_t_, 4); kgen_w_; })", ""]
    seen = set()
    for ins in isa.instrs:
        if not ins.builtin or ins.effect is not None:
            continue
        m = re.fullmatch(r"\s*(__builtin_\w+)\((.*)\)\s*", ins.builtin)
        if not m or m.group(1) in seen:
            continue
        name, arglist = m.group(1), [a.strip() for a in m.group(2).split(",")]
        slots = [a[1:-1] if a.startswith("{") and a.endswith("}") else None for a in arglist]
        ops = dict(ins.operands)
        if any(s is not None and s not in ops for s in slots):
            continue
        seen.add(name)
        params = ", ".join(f"{ops[n].ctype} {n}" for n, _ in ins.operands)
        lines += [f"static inline {ins.result.ctype} kgen_emu_{ins.c_name}({params})", "{",
                  _portable_body(ins), "}"]
        macro_args = [f"a{i}" for i in range(len(arglist))]
        call_args = []
        for n, t in ins.operands:
            i = slots.index(n)
            call_args.append(f"KGEN_EMU_BITS(a{i})" if t.lanes > 1 else f"(a{i})")
        call = f"kgen_emu_{ins.c_name}({', '.join(call_args)})"
        if ins.result.lanes > 1:  # the builtin returns a vector: convert the register image back
            vt = _VEC_C[ins.result.name]
            call = (f"__extension__({{ uint32_t kgen_r_ = {call}; {vt} kgen_v_; "
                    f"__builtin_memcpy(&kgen_v_, &kgen_r_, 4); kgen_v_; }})")
        lines.append(f"#define {name}({', '.join(macro_args)}) {call}")
        lines.append("")
    lines += [f"#endif /* {guard} */", ""]
    return "\n".join(lines)
