"""Self-checking C test programs for a kernel: inputs, expected outputs, comparison, report.

The same program runs on the host, on QEMU and on Spike: it only uses ``kgen_harness.h``
(region markers, text output).  For every case it fills the outputs with the canary, calls the
kernel between region markers, compares every output element with the reference and prints::

    KGEN mismatch case=<c> buf=<name> idx=<flat> got=<v> exp=<v>     (first 8 per buffer)
    KGEN summary case=<c> buf=<name> mismatches=<n> total=<t> maxerr=<e>

``main`` returns the total mismatch count (saturated by the runtimes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .interp import CANARY
from .ir import BufferParam, Kernel, Type

_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
          "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t"}


@dataclass(frozen=True)
class CallCase:
    """One call of the kernel: its C argument values and the expected outputs."""

    name: str
    args: dict[str, object]  # C parameter name -> ndarray (buffer) or int (scalar/size)
    expected: dict[str, np.ndarray]  # output parameter name -> expected storage


@dataclass(frozen=True)
class ScratchSpec:
    """The kernel's scratch buffer in the harness: exactly ``bytes`` bytes between two guard zones.

    Before every call the guards are filled with a canary and the buffer with garbage (the kernel
    must not depend on its content); after the call every guard byte is checked (and, under
    AddressSanitizer, the guards are poisoned during the call so that any access traps).
    ``size_call`` (the kernel's ``get_buffer_size`` call) must return ``expected``.
    """

    bytes: int
    expected: int
    size_call: str
    guard: int = 64


@dataclass(frozen=True)
class HarnessSpec:
    function: str
    header: str
    params: Sequence[str]  # C parameter names in call order
    outputs: dict[str, str]  # output parameter -> C element type
    cases: Sequence[CallCase]
    measure_case: int = 0  # only this case's call is placed inside a counted region
    parallel: bool = False  # every core calls the kernel (multi-core targets)
    extra_includes: tuple[str, ...] = field(default_factory=tuple)
    #: the kernel takes a scratch buffer as its last argument
    scratch: ScratchSpec | None = None


def _c_array(name: str, arr: np.ndarray, const: bool = True) -> str:
    ctype = _TYPES[str(arr.dtype)]
    flat = arr.reshape(-1)
    if flat.size == 0:
        flat = np.zeros(1, dtype=arr.dtype)
    if ctype == "int64_t":
        values = [_int_literal(int(v), wide=True) for v in flat]
    else:
        values = [str(int(v)) if int(v) != -(1 << 31) else "INT32_MIN" for v in flat]
    rows = [", ".join(values[i:i + 24]) for i in range(0, len(values), 24)]
    body = ",\n    ".join(rows)
    q = "static const " if const else "static "
    return f"{q}{ctype} {name}[{flat.size}] __attribute__((aligned(8))) = {{\n    {body}\n}};"


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def render(spec: HarnessSpec) -> str:
    out = ["/* kgen verification harness (generated) */", "#include <stdint.h>",
           '#include "kgen_harness.h"', f'#include "{spec.header}"']
    if spec.parallel:
        out.append('#include "kgen_runtime.h"')
    out.extend(f'#include "{h}"' for h in spec.extra_includes)
    out.append("")
    sizes: dict[str, int] = {}
    for name, ctype in spec.outputs.items():
        n = max(int(c.expected[name].size) for c in spec.cases)
        sizes[name] = n
        out.append(f"static {ctype} out_{name}[{max(n, 1)}] __attribute__((aligned(8)));")
    for ci, case in enumerate(spec.cases):
        for pname, value in case.args.items():
            if isinstance(value, np.ndarray):
                out.append(_c_array(f"c{ci}_{_ident(pname)}", value))
        for oname, exp in case.expected.items():
            out.append(_c_array(f"c{ci}_exp_{_ident(oname)}", exp))
    out.append(_CHECK_FN)
    if spec.scratch is not None:
        out.append(_scratch_fns(spec.scratch))
    out.append("int main(void)\n{\n    uint32_t bad = 0;")
    if spec.parallel:
        out.append("    int core = kgen_core_id();")
    if spec.scratch is not None:
        check = (f"    bad += kgen_scratch_size_check((uint64_t){spec.scratch.size_call});")
        out.extend(["    if (core == 0) {", "    " + check, "    }"] if spec.parallel else [check])
    for ci, case in enumerate(spec.cases):
        args = []
        for p in spec.params:
            if p in spec.outputs:
                args.append(f"out_{p}")
            else:
                v = case.args[p]
                args.append(f"c{ci}_{_ident(p)}" if isinstance(v, np.ndarray) else _int_literal(int(v)))  # type: ignore[arg-type]
        out.append(f"    /* case {ci}: {case.name} */")
        fill = []
        for oname, ctype in spec.outputs.items():
            n = int(case.expected[oname].size)
            if isinstance(case.args.get(oname), np.ndarray):  # inout: starts with the case's input data
                fill.append(f"        for (uint32_t i = 0; i < {n}u; ++i) out_{oname}[i] = c{ci}_{_ident(oname)}[i];")
            else:
                fill.append(f"        for (uint32_t i = 0; i < {n}u; ++i) out_{oname}[i] = ({ctype}){CANARY};")
        if spec.scratch is not None:
            args.append("kgen_scratch")
            fill.append(f"        kgen_scratch_arm({ci}u);")
        call = f"{spec.function}({', '.join(args)});"
        if spec.parallel:
            out.append("    if (core == 0) {")
            out.extend(fill)
            out.append("    }")
            out.append("    kgen_barrier();")
        else:
            out.extend(f"    {line.strip()}" for line in fill)
        if ci == spec.measure_case:
            out.append(f"    kgen_region_begin();\n    {call}\n    kgen_region_end();")
        else:
            out.append(f"    {call}")
        if spec.parallel:
            out.append("    kgen_barrier();")
            out.append("    if (core == 0) {")
        for oname, ctype in spec.outputs.items():
            n = int(case.expected[oname].size)
            out.append(f"    bad += kgen_check({ci}, \"{oname}\", out_{oname}, c{ci}_exp_{_ident(oname)}, "
                       f"{n}u, {_elem_size(ctype)});")
        if spec.scratch is not None:
            out.append(f"    bad += kgen_scratch_check({ci});")
        if spec.parallel:
            out.append("    }")
    out.append('    kgen_puts("KGEN done mismatches=");\n    kgen_put_u32(bad);\n    kgen_puts("\\n");')
    out.append("    return bad > 254u ? 254 : (int)bad;\n}")
    return "\n".join(out) + "\n"


def _int_literal(v: int, wide: bool = False) -> str:
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    if wide or not -(1 << 31) <= v < (1 << 31):
        return f"{v}LL" if v >= 0 else f"({v}LL)"
    if v == -(1 << 31):
        return "INT32_MIN"
    return str(v) if v >= 0 else f"({v})"


def _elem_size(ctype: str) -> str:
    signed = "1" if not ctype.startswith("u") else "0"
    bits = re.search(r"\d+", ctype).group(0)  # type: ignore[union-attr]
    return f"{int(bits) // 8}, {signed}"


_CHECK_FN = r"""
static int64_t kgen_elem(const void *p, uint32_t i, int size, int is_signed)
{
    switch (size) {
    case 1: return is_signed ? (int64_t)((const int8_t *)p)[i] : (int64_t)((const uint8_t *)p)[i];
    case 2: return is_signed ? (int64_t)((const int16_t *)p)[i] : (int64_t)((const uint16_t *)p)[i];
    case 4: return is_signed ? (int64_t)((const int32_t *)p)[i] : (int64_t)((const uint32_t *)p)[i];
    default: return ((const int64_t *)p)[i];
    }
}

static void kgen_put_u64(uint64_t v)
{
    /* Decimal without 64-bit division (not every runtime has it): peel off 10^9 by subtraction. */
    uint32_t parts[3] = {0, 0, 0};
    int n = 0;
    while (v >= 1000000000u && n < 2) {
        uint64_t q = 0, r = v, big = 1000000000u;
        for (int i = 34; i >= 0; --i) {
            if ((r >> i) >= big) { r -= big << i; q |= (uint64_t)1 << i; }
        }
        parts[n++] = (uint32_t)r;
        v = q;
    }
    kgen_put_u32((uint32_t)v);
    while (n > 0) {
        uint32_t p = parts[--n];
        char digits[10];
        for (int i = 8; i >= 0; --i) { digits[i] = (char)('0' + p % 10u); p /= 10u; }
        digits[9] = 0;
        kgen_puts(digits);
    }
}

static void kgen_put_i64(int64_t v)
{
    if (v < 0) {
        kgen_puts("-");
        kgen_put_u64(0u - (uint64_t)v);
    } else {
        kgen_put_u64((uint64_t)v);
    }
}

static uint32_t kgen_check(int case_idx, const char *buf, const void *got, const void *exp, uint32_t n,
                           int size, int is_signed)
{
    uint32_t bad = 0;
    uint64_t maxerr = 0;
    for (uint32_t i = 0; i < n; ++i) {
        int64_t g = kgen_elem(got, i, size, is_signed), e = kgen_elem(exp, i, size, is_signed);
        if (g != e) {
            uint64_t err = g > e ? (uint64_t)g - (uint64_t)e : (uint64_t)e - (uint64_t)g;
            if (err > maxerr) maxerr = err;
            if (bad < 8) {
                kgen_puts("KGEN mismatch case="); kgen_put_u32((uint32_t)case_idx);
                kgen_puts(" buf="); kgen_puts(buf);
                kgen_puts(" idx="); kgen_put_u32(i);
                kgen_puts(" got="); kgen_put_i64(g);
                kgen_puts(" exp="); kgen_put_i64(e);
                kgen_puts("\n");
            }
            ++bad;
        }
    }
    kgen_puts("KGEN summary case="); kgen_put_u32((uint32_t)case_idx);
    kgen_puts(" buf="); kgen_puts(buf);
    kgen_puts(" mismatches="); kgen_put_u32(bad);
    kgen_puts(" total="); kgen_put_u32(n);
    kgen_puts(" maxerr="); kgen_put_u64(maxerr);
    kgen_puts("\n");
    return bad;
}
"""


def _scratch_fns(s: ScratchSpec) -> str:
    """Guarded scratch buffer: arm before a call, check after it (see :class:`ScratchSpec`)."""
    return f"""
#define KGEN_SCRATCH_BYTES {s.bytes}u
#define KGEN_SCRATCH_EXPECTED {s.expected}u
#define KGEN_GUARD {s.guard}u
#if defined(__SANITIZE_ADDRESS__)
#define KGEN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KGEN_ASAN 1
#endif
#endif
#ifdef KGEN_ASAN
#include <sanitizer/asan_interface.h>
#endif
static uint8_t kgen_scratch_area[KGEN_GUARD + KGEN_SCRATCH_BYTES + KGEN_GUARD] __attribute__((aligned(8)));
#define kgen_scratch ((void *)(kgen_scratch_area + KGEN_GUARD))

static uint8_t kgen_canary(uint32_t i) {{ return (uint8_t)(0xA5u ^ (i * 29u)); }}

static void kgen_scratch_arm(uint32_t seed)
{{
    for (uint32_t i = 0; i < KGEN_GUARD; ++i) {{
        kgen_scratch_area[i] = kgen_canary(i);
        kgen_scratch_area[KGEN_GUARD + KGEN_SCRATCH_BYTES + i] = kgen_canary(KGEN_GUARD + i);
    }}
    for (uint32_t i = 0; i < KGEN_SCRATCH_BYTES; ++i)  /* garbage: the kernel must not rely on content */
        kgen_scratch_area[KGEN_GUARD + i] = (uint8_t)(0x5Bu + 13u * seed + 7u * i);
#ifdef KGEN_ASAN
    ASAN_POISON_MEMORY_REGION(kgen_scratch_area, KGEN_GUARD);
    ASAN_POISON_MEMORY_REGION(kgen_scratch_area + KGEN_GUARD + KGEN_SCRATCH_BYTES, KGEN_GUARD);
#endif
}}

static uint32_t kgen_scratch_check(int case_idx)
{{
    uint32_t bad = 0;
#ifdef KGEN_ASAN
    ASAN_UNPOISON_MEMORY_REGION(kgen_scratch_area, sizeof kgen_scratch_area);
#endif
    for (uint32_t i = 0; i < 2u * KGEN_GUARD; ++i) {{
        uint32_t at = i < KGEN_GUARD ? i : KGEN_SCRATCH_BYTES + i;
        if (kgen_scratch_area[at] != kgen_canary(i)) {{
            if (bad < 4) {{
                kgen_puts("KGEN mismatch case="); kgen_put_u32((uint32_t)case_idx);
                kgen_puts(" buf=scratch_guard idx="); kgen_put_u32(i);
                kgen_puts(" got="); kgen_put_u32(kgen_scratch_area[at]);
                kgen_puts(" exp="); kgen_put_u32(kgen_canary(i));
                kgen_puts("\\n");
            }}
            ++bad;
        }}
    }}
    kgen_puts("KGEN summary case="); kgen_put_u32((uint32_t)case_idx);
    kgen_puts(" buf=scratch_guard mismatches="); kgen_put_u32(bad);
    kgen_puts(" total="); kgen_put_u32(2u * KGEN_GUARD);
    kgen_puts(" maxerr=0\\n");
    return bad;
}}

static uint32_t kgen_scratch_size_check(uint64_t got)
{{
    uint32_t bad = got != (uint64_t)KGEN_SCRATCH_EXPECTED;
    if (bad) {{
        kgen_puts("KGEN mismatch case=0 buf=get_buffer_size idx=0 got="); kgen_put_u64(got);
        kgen_puts(" exp="); kgen_put_u32(KGEN_SCRATCH_EXPECTED); kgen_puts("\\n");
    }}
    kgen_puts("KGEN summary case=0 buf=get_buffer_size mismatches="); kgen_put_u32(bad);
    kgen_puts(" total=1 maxerr=0\\n");
    return bad;
}}
"""


@dataclass(frozen=True)
class Mismatch:
    case: int
    buf: str
    index: int
    got: int
    expected: int


@dataclass(frozen=True)
class Report:
    mismatches: list[Mismatch]
    summaries: list[dict[str, int | str]]
    done: bool

    @property
    def total_bad(self) -> int:
        return sum(int(s["mismatches"]) for s in self.summaries)


def parse_output(text: str) -> Report:
    mism, summ, done = [], [], False
    for line in text.splitlines():
        if line.startswith("KGEN mismatch"):
            f = dict(kv.split("=", 1) for kv in line.split()[2:])
            mism.append(Mismatch(int(f["case"]), f["buf"], int(f["idx"]), int(f["got"]), int(f["exp"])))
        elif line.startswith("KGEN summary"):
            f = dict(kv.split("=", 1) for kv in line.split()[2:])
            summ.append({k: (v if k == "buf" else int(v)) for k, v in f.items()})
        elif line.startswith("KGEN done"):
            done = True
    return Report(mism, summ, done)


def kernel_outputs(kernel: Kernel) -> dict[str, str]:
    return {p.name: p.type.ctype for p in kernel.buffers if p.direction != "in"}


__all__ = ["HarnessSpec", "ScratchSpec", "CallCase", "render", "parse_output", "Report", "kernel_outputs",
           "BufferParam", "Type"]
