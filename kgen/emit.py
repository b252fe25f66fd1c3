"""File skeletons: one public function per .c file, its header, and the shared helper header.

jinja2 renders the skeleton (banner, includes, Doxygen, prototype); the function body comes from
:mod:`kgen.cgen`.  Nothing here depends on time or the environment, so output is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import jinja2

from . import __version__
from .cgen import c_params, emit_body
from .deadcode import eliminate_dead_code, unused_parameters
from .interp import eval_expr
from .ir import SCALAR_TYPES, BufferParam, Call, Kernel, walk_expr, walk_stmts, stmt_exprs
from .printer import print_expr, print_stmts
from .scratch import (ScratchPlan, get_buffer_size_name, plan_scratch, scratch_macro,
                      scratch_param_name, uses_max)


@lru_cache(maxsize=None)
def _env() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("kgen").joinpath("data", "templates", name).read_text())
    return jinja2.Environment(loader=loader, keep_trailing_newline=True, trim_blocks=False,
                              lstrip_blocks=False, undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class KernelSource:
    """A public kernel: the DSL kernel it implements and where that came from."""

    kernel: Kernel  # the DSL kernel as written (its semantics is the contract)
    source_name: str  # e.g. kernels/matmul_nt_s8.kg
    source_hash: str


@dataclass(frozen=True)
class EmittedKernel:
    function: str
    prototype: str
    header_name: str
    source_name: str
    header: str
    source: str
    #: where the kernel's function-scope local arrays live in the caller's scratch buffer (None: no scratch)
    scratch: ScratchPlan | None = None
    #: prototype of ``<function>_get_buffer_size`` (empty without scratch)
    buffer_size_prototype: str = ""


_TYPE_WORDS = {"i8": "int8", "u8": "uint8", "i16": "int16", "u16": "uint16", "i32": "int32",
               "u32": "uint32", "i64": "int64"}


def _layout_text(p: BufferParam, sizes: dict[str, int]) -> str:
    dims = "".join(f"[{print_expr(d)}]" for d in p.shape)
    if p.strides:
        strides = ", ".join(print_expr(s) for s in p.strides)
        return f"{_TYPE_WORDS[p.type.name]} {dims}, strided view (element strides {strides})"
    return f"{_TYPE_WORDS[p.type.name]} {dims}, row-major, contiguous"


def quantization_contract(kernel: Kernel) -> list[str]:
    """Plain-language statements of every requantization the kernel performs."""
    lines = []
    seen = set()
    for s in walk_stmts(kernel.body):
        for e in stmt_exprs(s):
            for sub in walk_expr(e):
                if isinstance(sub, Call) and sub.fn == "requant" and sub.flags not in seen:
                    seen.add(sub.flags)
                    mode = sub.flags[0]
                    rnd = " + 2^(shift-1)" if mode == "nearest" else ""
                    lines.append(
                        f"requant (rounding '{mode}'): out = clip((int32)(acc * mul{rnd}) >> shift, -128, 127); "
                        f"the product wraps to 32 bits, the shift is arithmetic"
                        + (" (floor), as in PULP-NN and the paper's kernels" if mode == "floor"
                           else ", i.e. round to nearest with ties toward +infinity") + ".")
    if not lines:
        lines.append("No requantization; integer arithmetic wraps to the declared types.")
    return lines


def doxygen(src: KernelSource, function: str, sizes: dict[str, int], isa: str, notes: list[str],
            scratch_param: str = "") -> str:
    k = src.kernel
    # The doc comment goes into a C comment: defuse comment delimiters.
    doc_lines = k.doc.replace("*/", "*\u2215").replace("/*", "\u2215*").splitlines() or [f"kgen kernel {k.name}"]
    out = ["/**", f" * @brief {doc_lines[0]}"]
    out.extend(f" *        {line}" for line in doc_lines[1:])
    out.append(" *")
    if sizes:
        out.append(" * Specialised for " + ", ".join(f"{n} = {v}" for n, v in sizes.items()) + ".")
    elif k.sizes:
        out.append(" * Sizes are run-time arguments: " + ", ".join(k.sizes) + ".")
    for w in k.where:
        out.append(f" * @pre {print_expr(w)}")
    out.append(" *")
    for p in k.params:
        if isinstance(p, BufferParam):
            d = {"in": "[in]    ", "out": "[out]   ", "inout": "[in,out]"}[p.direction]
            out.append(f" * @param{d} {p.name} {_layout_text(p, sizes)}")
        else:
            out.append(f" * @param[in]     {p.name} {_TYPE_WORDS[p.type.name]} scalar")
    if not sizes:
        for s in k.sizes:
            out.append(f" * @param[in]     {s} size symbol {s} (>= 1)")
    if scratch_param:
        out.append(f" * @param[in,out] {scratch_param} work memory of {get_buffer_size_name(function)}() bytes, "
                   "8-byte aligned, not shared with any other argument; its content is undefined on entry and on return")
    out.append(" *")
    out.append(" * Quantization contract:")
    out.extend(f" * - {line}" for line in quantization_contract(k))
    for n in notes:
        out.append(f" * - {n}")
    out.append(" *")
    out.append(" * Reference semantics (kgen DSL; the numpy interpreter of this text is the bit-exact oracle):")
    out.append(" * @code")
    out.extend(f" * {line}".rstrip() for line in print_stmts(k.body).splitlines())
    out.append(" * @endcode")
    out.append(f" * ISA path: {isa}; the portable C path is used when the ISA feature macro is absent.")
    out.append(" */")
    return "\n".join(out)


def variant_key(name: str, isa: str, sizes: dict[str, int], cores: int = 1) -> str:
    shape = "".join(f"{k.lower()}{v}" for k, v in sizes.items())
    return f"{name}{'_' + shape if shape else ''}_{isa}{f'_c{cores}' if cores > 1 else ''}"


def function_name(name: str, isa: str, sizes: dict[str, int], cores: int = 1) -> str:
    return f"kgen_{variant_key(name, isa, sizes, cores)}"


def emit_kernel(src: KernelSource, lowered: Kernel, isa: str, sizes: dict[str, int],
                isa_hash: str = "", intrinsic=None, extra_includes: tuple[str, ...] = (),
                notes: tuple[str, ...] = (), paired: frozenset[str] = frozenset(),
                qualifier: str = "", cores: int = 1) -> EmittedKernel:
    """Render header and source of one public kernel function."""
    fn = function_name(src.kernel.name, isa, sizes, cores)
    lowered = eliminate_dead_code(lowered)
    params = c_params(lowered)
    plan = plan_scratch(lowered)
    scratch = _scratch_texts(fn, lowered, plan)
    if plan is not None:
        params.append(f"void *restrict {scratch['param']}")
    prototype = f"void {fn}({', '.join(params) if params else 'void'})"
    body, _helpers = emit_body(lowered, intrinsic, paired, scratch.get("decls"))
    unused = "".join(f"    (void){name};\n" for name in unused_parameters(lowered))
    body = unused + body
    dox = doxygen(src, fn, sizes, isa, list(notes), scratch.get("param", ""))
    key = variant_key(src.kernel.name, isa, sizes, cores)
    common = dict(version=__version__, variant_key=key, doxygen=dox, prototype=prototype, scratch=scratch)
    header = _env().get_template("kernel.h.j2").render(
        file_name=f"{fn}.h", guard=f"{fn.upper()}_H", **common)
    source = _env().get_template("kernel.c.j2").render(
        file_name=f"{fn}.c", header_name=f"{fn}.h", source_name=src.source_name,
        source_hash=src.source_hash, isa=isa, isa_hash=isa_hash, body=body,
        extra_includes=list(extra_includes), qualifier=qualifier, **common)
    return EmittedKernel(fn, prototype, f"{fn}.h", f"{fn}.c", header, source, plan,
                         scratch.get("size_prototype", ""))


def _scratch_texts(fn: str, lowered: Kernel, plan: ScratchPlan | None) -> dict:
    """Template fields of the scratch contract: parameter, declarations, get_buffer_size."""
    if plan is None:
        return {}
    param = scratch_param_name(lowered)
    decls = {}
    for a in plan.arrays:
        off = plan.offset_c(a.name)
        where = f"{param}" if off == "0" else f"(void *)((unsigned char *){param} + {off})"
        decls[a.name] = f"{a.ctype} *const {a.name}_storage = ({a.ctype} *){where};"
    size_args = [f"int32_t {s}" for s in plan.symbols]
    used = {str(s) for s in plan.total.free_symbols}
    size_fn = get_buffer_size_name(fn)
    return dict(param=param, decls=decls,
                size_prototype=f"size_t {size_fn}({', '.join(size_args) if size_args else 'void'})",
                size_function=size_fn, size_unused=[s for s in plan.symbols if s not in used],
                size_expr=plan.total_c(), constant=plan.constant, macro=scratch_macro(fn),
                needs_max=any(uses_max(a.offset) for a in plan.arrays) or uses_max(plan.total),
                arrays=[dict(name=a.name, offset=_formula(a.offset), size=_formula(a.size)) for a in plan.arrays])


def _formula(e) -> str:
    """A size expression for a comment: round8(x) is x rounded up to a multiple of 8."""
    return str(e).replace("Round8", "round8")


def common_header() -> str:
    types = []
    for t in SCALAR_TYPES.values():
        types.append(dict(name=t.name, ctype=t.ctype, signed=t.signed,
                          utype=f"uint{t.bits}_t"))
    return _env().get_template("kgen_common.h.j2").render(version=__version__, types=types)


__all__ = ["emit_kernel", "common_header", "KernelSource", "EmittedKernel", "function_name",
           "variant_key", "eval_expr"]
