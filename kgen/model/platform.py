"""Platform and toolchain descriptions (``isa/platforms/*.toml``, format: ``isa/platforms/FORMAT.md``).

A *platform* is a chip: its ISA, core, core count, word size and data memories.  A *toolchain* is
the structural model of how one compiler turns kgen's C into that ISA's instructions (which C
operation becomes which instruction classes, loop overheads, the compiler's full-unroll limits,
library calls).  Cycle costs of instruction classes come from the ISA file's ``[cost_model]``,
completed by the platform's ``[cycles]`` table.  Every problem in a file is a located KgenError.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from ..errors import KgenError
from ..ir import Loc

#: Instruction classes the cost model counts (besides ``isa:<mnemonic>`` and ``call_<libcall>``).
CLASSES = ("alu", "mul", "mulh", "div", "load", "load_pipe", "load_pair", "store", "branch", "branch_taken",
           "branch_nt", "jump", "load_use")
#: Classes that are not instructions (stall cycles).
NON_INSTRUCTIONS = frozenset({"load_use"})

#: The platform ``kgen`` uses for an ISA when none is named.
DEFAULT_PLATFORM = {"armv7em": "stm32l4", "xpulpv2": "gap9", "generic": "stm32l4"}
#: The toolchain of the bench targets: (isa, compiler) -> toolchain file.
TOOLCHAINS = {("armv7em", "gcc"): "armv7em-gcc", ("armv7em", "clang"): "armv7em-clang",
              ("xpulpv2", "clang"): "xpulpv2-clang", ("generic", "gcc"): "armv7em-gcc"}


@dataclass(frozen=True)
class Memory:
    name: str
    bytes: int
    shared_by: int = 1
    operands: bool = False
    read_only: bool = False


@dataclass(frozen=True)
class Platform:
    name: str
    title: str
    isa: str
    cpu: str
    toolchain: str
    cores: int
    word_bits: int
    memories: tuple[Memory, ...]
    cycles: dict[str, float]
    file: str

    def memory(self, name: str) -> Memory:
        for m in self.memories:
            if m.name.lower() == name.lower():
                return m
        raise KgenError(f"platform {self.name} has no memory '{name}' "
                        f"(its memories: {', '.join(m.name for m in self.memories)})")

    @property
    def operand_memory(self) -> Memory:
        return next((m for m in self.memories if m.operands), self.memories[0])


@dataclass(frozen=True)
class Libcall:
    symbol: str
    instructions: float
    cycles: float


@dataclass(frozen=True)
class Toolchain:
    name: str
    isa: str
    compiler: str
    ops: dict[str, dict[str, float]]
    loops: dict[str, Any]
    function: dict[str, float]
    libcalls: dict[str, Libcall]
    file: str = ""
    parallel: dict[str, dict[str, float]] = field(default_factory=dict)

    def op(self, key: str) -> dict[str, float]:
        try:
            return self.ops[key]
        except KeyError:
            raise KgenError(f"{self.file}: the toolchain model has no entry for operation '{key}'") from None


def _read(rel: str) -> str:
    try:
        return resources.files("kgen.isa").joinpath("platforms", *rel.split("/")).read_text()
    except FileNotFoundError:
        raise KgenError(f"no platform file isa/platforms/{rel}") from None


def _parse(text: str, file: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        loc = Loc(file, int(m.group(1)), int(m.group(2))) if m else Loc(file, 1, 1)
        raise KgenError(f"invalid TOML: {str(exc).split(' (at')[0]}", loc, text) from None


def _err(text: str, file: str, needle: str, msg: str) -> KgenError:
    line = next((i for i, s in enumerate(text.splitlines(), 1) if needle in s), 1)
    return KgenError(msg, Loc(file, line, 1), text)


def _class_table(table: Any, text: str, file: str, where: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise _err(text, file, where, f"'{where}' must be a table {{ class = count }}")
    out: dict[str, float] = {}
    for k, v in table.items():
        if k not in CLASSES and not k.startswith("call_"):
            raise _err(text, file, where, f"'{where}': unknown instruction class '{k}' "
                       f"(classes: {', '.join(CLASSES)}, call_<libcall>)")
        if not isinstance(v, (int, float)) or v < 0:
            raise _err(text, file, where, f"'{where}': count of '{k}' must be a number >= 0")
        out[k] = float(v)
    return out


@lru_cache(maxsize=None)
def load_platform(name: str) -> Platform:
    """The platform ``isa/platforms/<name>.toml`` (the ISA's cost model fills in cycle costs)."""
    from ..isafile import load_isa

    file = f"isa/platforms/{name}.toml"
    text = _read(f"{name}.toml")
    data = _parse(text, file)
    head = data.get("platform")
    if not isinstance(head, dict):
        raise _err(text, file, "[platform]", "missing [platform] table")
    for key in ("name", "isa", "cpu", "toolchain", "cores"):
        if key not in head:
            raise _err(text, file, "[platform]", f"[platform] lacks '{key}'")
    if head["name"] != name:
        raise _err(text, file, "name", f"platform name '{head['name']}' must equal the file stem '{name}'")
    mems = []
    for m in data.get("memory", []):
        if not isinstance(m.get("bytes"), int) or m["bytes"] <= 0 or "name" not in m:
            raise _err(text, file, "[[memory]]", "every [[memory]] needs a 'name' and 'bytes' > 0")
        mems.append(Memory(m["name"], m["bytes"], int(m.get("shared_by", 1)), bool(m.get("operands", False)),
                           bool(m.get("read_only", False))))
    if not mems:
        raise _err(text, file, "[platform]", "a platform needs at least one [[memory]]")
    isa = load_isa(head["isa"])
    cycles = {"alu": 1.0, "mul": 1.0, "mulh": 1.0, "div": 1.0, "load": 1.0, "load_pair": 1.0, "store": 1.0,
              "branch": 1.0, "branch_taken": 1.0, "jump": 1.0, "load_use": 0.0}
    cycles.update({k: float(v) for k, v in isa.cost_model.items() if isinstance(v, (int, float))})
    cycles.update(_class_table(data.get("cycles", {}), text, file, "cycles") if "cycles" in data else {})
    cycles.setdefault("load_pipe", cycles["load"])
    cycles["branch_nt"] = cycles.get("branch", 1.0)
    # a data-dependent branch is taken half of the time
    cycles["branch"] = (cycles["branch_nt"] + cycles["branch_taken"]) / 2
    return Platform(name, head.get("title", name), head["isa"], head["cpu"], head["toolchain"], int(head["cores"]),
                    int(head.get("word_bits", 32)), tuple(mems), cycles, file)


@lru_cache(maxsize=None)
def load_toolchain(name: str) -> Toolchain:
    """The toolchain model ``isa/platforms/toolchains/<name>.toml``."""
    file = f"isa/platforms/toolchains/{name}.toml"
    text = _read(f"toolchains/{name}.toml")
    data = _parse(text, file)
    head = data.get("toolchain", {})
    for key in ("name", "isa", "compiler"):
        if key not in head:
            raise _err(text, file, "[toolchain]", f"[toolchain] lacks '{key}'")
    ops = {k: _class_table(v, text, file, k) for k, v in data.get("ops", {}).items()}
    loops = dict(data.get("loops", {}))
    for key in ("iteration", "counter", "stream_step", "entry", "stream_entry"):
        if key not in loops:
            raise _err(text, file, "[loops]", f"[loops] lacks '{key}'")
        loops[key] = _class_table(loops[key], text, file, key)
    for key in ("full_unroll_max_trip", "full_unroll_max_insns"):
        if not isinstance(loops.get(key), int):
            raise _err(text, file, "[loops]", f"[loops] needs an integer '{key}'")
    libs = {}
    for k, v in data.get("libcalls", {}).items():
        try:
            libs[k] = Libcall(str(v["symbol"]), float(v["instructions"]), float(v["cycles"]))
        except (KeyError, TypeError, ValueError):
            raise _err(text, file, f"[libcalls.{k}]", f"[libcalls.{k}] needs symbol, instructions and cycles") from None
    parallel = {k: _class_table(v, text, file, k) for k, v in data.get("parallel", {}).items()}
    return Toolchain(head["name"], head["isa"], head["compiler"], ops, loops,
                     _class_table(data.get("function", {}).get("call", {}), text, file, "call"), libs, file, parallel)


def platform_for(isa: str, platform: str | None = None) -> Platform:
    """The named platform, or the default one of ``isa``; the ISAs must agree."""
    name = platform or DEFAULT_PLATFORM.get(isa)
    if name is None:
        raise KgenError(f"no platform is known for ISA '{isa}'")
    p = load_platform(name)
    if isa != "generic" and p.isa != isa:
        raise KgenError(f"platform {p.name} has ISA {p.isa}, not {isa}")
    return p


def toolchain_for(isa: str, compiler: str | None = None) -> Toolchain:
    comp = compiler or ("clang" if isa == "xpulpv2" else "gcc")
    name = TOOLCHAINS.get((isa, comp))
    if name is None:
        raise KgenError(f"no toolchain model for ISA {isa} with compiler {comp}")
    return load_toolchain(name)


def parse_budget(text: str | None, platform: Platform) -> dict[str, int]:
    """``L1=64k,L2=1M`` -> {memory name: bytes}; names must be memories of the platform."""
    out: dict[str, int] = {}
    if not text:
        return out
    for item in text.split(","):
        name, sep, value = item.partition("=")
        m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)[bB]?\s*", value)
        if not sep or not name.strip() or m is None:
            raise KgenError(f"--budget: expected MEMORY=SIZE (e.g. L1=64k), got '{item}'")
        key = name.strip()
        if key.upper() == "L1" and not any(m.name.upper() == "L1" for m in platform.memories):
            key = platform.operand_memory.name  # "L1": the memory that holds the operands
        mem = platform.memory(key)
        scale = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
        out[mem.name] = int(m.group(1)) * scale
    return out


def cycles_of(counts: Mapping[str, Any], platform: Platform, toolchain: Toolchain) -> Any:
    """Cycles of a count vector: class counts × the platform's class cycles (ISA file costs for
    ISA instructions, the toolchain's figures for library calls)."""
    from ..isafile import load_isa

    isa = load_isa(platform.isa) if platform.isa != "generic" else None
    core = isa.cost_model.get("core") if isa else None
    total: Any = 0
    for k, n in counts.items():
        if k.startswith("isa:"):
            ins = isa.instr(k[4:]) if isa else None
            total += n * float(ins.cost.get(core, 1) if ins else 1)
        elif k.startswith("call_"):
            total += n * toolchain.libcalls[k[5:]].cycles
        else:
            total += n * platform.cycles.get(k, 1.0)
    return total


def instructions_of(counts: Mapping[str, Any], toolchain: Toolchain, asm_lines: Mapping[str, int] | None = None
                    ) -> Any:
    """Instructions of a count vector (stall classes excluded, library calls expanded)."""
    total: Any = 0
    for k, n in counts.items():
        if k in NON_INSTRUCTIONS:
            continue
        if k.startswith("call_"):
            total += n * toolchain.libcalls[k[5:]].instructions
        elif k.startswith("isa:") and asm_lines:
            total += n * asm_lines.get(k[4:], 1)
        else:
            total += n
    return total


__all__ = ["Platform", "Toolchain", "Memory", "Libcall", "load_platform", "load_toolchain", "platform_for",
           "toolchain_for", "parse_budget", "cycles_of", "instructions_of", "CLASSES", "DEFAULT_PLATFORM"]
