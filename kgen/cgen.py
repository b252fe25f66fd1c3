"""IR → C99 function bodies.

The C has exactly the DSL's semantics: signed 32/64-bit arithmetic that could overflow is done in
unsigned arithmetic and converted back (two's-complement wrap, no undefined behaviour), unless an
interval analysis proves the plain operation cannot overflow.  Builtins map to the static inline
helpers of ``kgen_common.h``; ISA instructions (``isa.*`` calls) map to the intrinsic layer
generated from the ISA file.  File skeletons (includes, Doxygen, prototypes) are rendered by
:mod:`kgen.emit` with jinja2; everything inside a function body comes from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from .interp import storage_strides
from .ir import (BOOL, IDX, Alloc, Assign, Bin, BufferParam, Call, Cast, Const, Decl, Expr, For,
                 If, Kernel, Load, Stmt, Store, Type, Un, Var, View, body_reads, stmt_exprs, walk_expr,
                 walk_stmts)

_C_BINOPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "shl": "<<", "shr": ">>",
             "and": "&", "or": "|", "xor": "^", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
             "eq": "==", "ne": "!=", "land": "&&", "lor": "||"}

Interval = tuple[int, int] | None


def _exact(e: Bin, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Exact (unwrapped) range of a +, - or * of operands in ranges ``a`` and ``b``."""
    if e.op == "add":
        return (a[0] + b[0], a[1] + b[1])
    if e.op == "sub":
        return (a[0] - b[1], a[1] - b[0])
    products = [x * y for x in a for y in b]
    return (min(products), max(products))


def interval(e: Expr) -> Interval:
    """A conservative range of the value of ``e`` (None for index and bool expressions)."""
    t = e.type
    if not t.is_data or t.lanes > 1:
        return None
    full = (t.min, t.max)
    if isinstance(e, Const):
        return (e.value, e.value)
    if isinstance(e, Cast):
        inner = interval(e.a)
        if inner is not None and t.min <= inner[0] and inner[1] <= t.max:
            return inner
        return full
    if isinstance(e, Bin) and e.op in ("add", "sub", "mul"):
        a, b = interval(e.a), interval(e.b)
        if a is not None and b is not None:
            r = _exact(e, a, b)
            if t.min <= r[0] and r[1] <= t.max:
                return r
    return full


def _fits(e: Bin) -> bool:
    """True when the exact result of a +, - or * node is representable in its type."""
    a, b = interval(e.a), interval(e.b)
    if a is None or b is None:
        return False
    r = _exact(e, a, b)
    return e.type.min <= r[0] and r[1] <= e.type.max


@dataclass
class Layout:
    """How an indexable name maps to C: a pointer expression, its strides and an offset."""

    pointer: str
    strides: tuple[Expr, ...]
    offset: Expr = field(default_factory=lambda: Const(0, IDX))


class CEmitter:
    """Emit one kernel as C statements.  ``intrinsic`` spells ``isa.*`` calls."""

    def __init__(self, kernel: Kernel, intrinsic: Callable[[Call, list[str]], str] | None = None,
                 paired: frozenset[str] = frozenset(), scratch: Mapping[str, str] | None = None) -> None:
        #: local arrays carved out of the caller's scratch buffer: name -> C declaration (kgen.scratch)
        self.scratch = dict(scratch or {})
        self.kernel = kernel
        self.intrinsic = intrinsic
        #: local arrays whose adjacent packed loads are fetched as one 64-bit load (LDRD)
        self.paired = paired
        self.pairs: dict[tuple[str, int], str] = {}
        self.offsets: dict[tuple[int, int, int], tuple] = {}  # see offset()
        self.uses_parallel = False
        self.layouts: dict[str, Layout] = {}
        self.lines: list[str] = []
        self.uses_helpers: set[str] = set()
        self.alloc_types: dict[str, Type] = {}
        self.alloc_strides: dict[str, int] = {}
        for p in kernel.buffers:
            strides = p.strides if p.strides else _row_major(p.shape)
            self.layouts[p.name] = Layout(p.name, strides)

    # ----------------------------------------------------------------------- expressions
    def ex(self, e: Expr) -> str:
        if isinstance(e, Const):
            return self.const(e)
        if isinstance(e, Var):
            return e.name
        if isinstance(e, Load):
            lay = self.layouts[e.buf]
            if e.type.lanes > 1:  # packed register load of consecutive elements
                off = self.offset(lay, e.index)
                if e.buf in self.paired:
                    quad = self.quad_load(lay, e)
                    if quad is not None:
                        return quad
                    split = self.split_offset(lay, e.index, 2 * e.type.lanes)
                    if split is not None:
                        return self.paired_load(lay.pointer, split[0], split[1], e.type.lanes)
                return f"kgen_ld32(&{lay.pointer}[{off}])"
            return f"{lay.pointer}[{self.offset(lay, e.index)}]"
        if isinstance(e, Bin):
            return self.binop(e)
        if isinstance(e, Un):
            if e.op == "lnot":
                return f"(!{self.ex(e.a)})"
            if e.op == "bnot" and e.type.is_data and e.type.bits < 32:
                # a helper keeps gcc's -Wsign-compare quiet about promoted complements in comparisons
                return f"kgen_bnot_{e.type.name}({_strip(self.ex(e.a))})"
            if e.op == "neg" and e.type.signed and e.type.bits >= 32:
                u = "uint64_t" if e.type.bits == 64 else "uint32_t"
                return f"(({e.type.ctype})(0u - ({u}){self.ex(e.a)}))"
            op = "-" if e.op == "neg" else "~"
            return self.narrow(f"{op}{self.ex(e.a)}", e.type)
        if isinstance(e, Cast):
            inner = self.ex(e.a)
            return f"(({e.type.ctype}){inner})"
        if isinstance(e, Call):
            args = [self.ex(a) for a in e.args]
            if e.fn.startswith("isa."):
                if self.intrinsic is not None:
                    return self.intrinsic(e, args)
                from .isafile import isa_of_call

                return f"{isa_of_call(e.fn).c_name}({', '.join(args)})"
            if e.fn == "select":
                return f"({args[0]} ? {args[1]} : {args[2]})"
            if e.fn in ("min", "max") and e.type == IDX:
                return f"kgen_{e.fn}_i32({_strip(args[0])}, {_strip(args[1])})"
            if e.fn == "requant":
                helper = f"kgen_requant_{e.flags[0]}"
            else:
                helper = f"kgen_{e.fn}_{e.type.name}"
            self.uses_helpers.add(helper)
            return f"{helper}({', '.join(args)})"
        raise TypeError(e)

    @staticmethod
    def const(e: Const) -> str:
        v = e.value
        t = e.type
        if t.name == "i64" and v == t.min:
            return "(-9223372036854775807LL - 1)"
        if t.name == "i64" or (t.is_data and t.bits == 32 and not t.signed):
            suffix = "LL" if t.signed else "u"
            return f"{v}{suffix}" if v >= 0 else f"(-{-v}{suffix})"
        if t.is_data and t.bits == 32 and v == t.min:
            return "INT32_MIN"
        return str(v) if v >= 0 else f"(-{-v})"

    def binop(self, e: Bin) -> str:
        a, b = self.ex(e.a), self.ex(e.b)
        op = _C_BINOPS[e.op]
        t = e.type
        if e.op in ("add", "sub", "mul") and t.is_data and t.bits >= 32 and t.signed and not _fits(e):
            u = "uint64_t" if t.bits == 64 else "uint32_t"
            return f"(({t.ctype})(({u}){a} {op} ({u}){b}))"
        if e.op in ("div", "mod") and t.is_data and t.signed and t.bits >= 32:
            helper = f"kgen_{e.op}_{t.name}"
            self.uses_helpers.add(helper)
            return f"{helper}({_strip(a)}, {_strip(b)})"
        if e.op == "shl" and t.is_data and t.signed:
            u = "uint64_t" if t.bits == 64 else "uint32_t"
            return f"(({t.ctype})(({u}){a} << {b}))"
        if e.op == "mul" and t.is_data and not t.signed and t.bits < 32:
            return self.narrow(f"(uint32_t){a} * {b}", t)
        if t.is_data and t.bits < 32 and e.op != "shr":
            return self.narrow(f"{a} {op} {b}", t)  # int promotion, then wrap back (e.g. -128 / -1)
        if e.op in ("lt", "le", "gt", "ge", "eq", "ne") and e.a.type.is_data and e.a.type.bits < 32:
            # both sides promote to int; say so, so that -Wsign-compare sees two ints
            return f"((int32_t){a} {op} (int32_t){b})"
        return f"({a} {op} {b})"

    @staticmethod
    def narrow(text: str, t: Type) -> str:
        if t.is_data and t.bits < 32:
            return f"(({t.ctype})({text}))"
        return f"({text})"

    @staticmethod
    def flat_offset(lay: Layout, index: tuple[Expr, ...]) -> Expr:
        """Element offset of ``index`` in the storage behind ``lay``."""
        from .rewrite import simplify_index

        total: Expr = lay.offset
        for ix, stride in zip(index, lay.strides):
            total = simplify_index(Bin("add", total, simplify_index(Bin("mul", ix, stride, IDX)), IDX))
        return total

    def offset(self, lay: Layout, index: tuple[Expr, ...]) -> str:
        key = (id(lay.offset), id(lay.strides), id(index))
        hit = self.offsets.get(key)
        if hit is not None and hit[0] is lay.offset and hit[1] is lay.strides and hit[2] is index:
            return hit[3]
        flat = canonical_affine(self.flat_offset(lay, index))
        text = _strip(self.ex(flat))
        if _is_index_arithmetic(flat):  # printed the same wherever it appears: remember it
            self.offsets[key] = (lay.offset, lay.strides, index, text)
        return text

    # ----------------------------------------------------------------------- statements
    def parallel_loop(self, s: For, depth: int) -> None:
        """Every core runs this code and takes a balanced contiguous chunk of the iterations; arrays
        listed in ``@private`` are used through the calling core's copy (see :mod:`kgen.backends.spmd`)."""
        P = _parallel_cores(s)
        lo, hi = _strip(self.ex(s.lo)), _strip(self.ex(s.hi))
        v = s.var
        self.uses_parallel = True
        self.emit(depth, "{")
        d = depth + 1
        self.emit(d, f"const int32_t {v}_n = ({hi}) - ({lo});")
        self.emit(d, f"const int32_t {v}_core = kgen_core_id();")
        self.emit(d, f"const int32_t {v}_extra = {v}_core < {v}_n % {P} ? {v}_core : {v}_n % {P};")
        self.emit(d, f"const int32_t {v}_lo = ({lo}) + {v}_core * ({v}_n / {P}) + {v}_extra;")
        self.emit(d, f"const int32_t {v}_hi = {v}_lo + {v}_n / {P} + ({v}_core < {v}_n % {P} ? 1 : 0);")
        saved = dict(self.layouts)
        for name in _private_names(s):
            old = self.layouts[name].pointer
            t = self.alloc_types[name]
            self.emit(d, f"{t.ctype} *const {name}_own = ({t.ctype} *)(void *)((unsigned char *){old} + "
                         f"{v}_core * {self.alloc_strides[name]});")
            for key, lay in list(self.layouts.items()):
                if lay.pointer == old:
                    self.layouts[key] = replace(lay, pointer=f"{name}_own")
        self.emit(d, f"for (int32_t {v} = {v}_lo; {v} < {v}_hi; ++{v}) {{")
        self.body(s.body, d + 1)
        self.emit(d, "}")
        self.emit(depth, "}")
        self.layouts = saved

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def launder_staged(self, loop: For, depth: int) -> dict[str, Layout]:
        """Read local arrays that ``loop`` only loads through a pointer made opaque in each
        iteration: in register-blocked kernels (those with paired arrays) the paired (staged)
        arrays and the arrays a backend names with ``@launder(…)`` on the loop (``KGEN_LAUNDER``),
        so that no compiler hoists their loads out of the loop, and, under gcc, every other local
        array (``KGEN_LAUNDER_GCC``), so that gcc does not keep values stored before the loop in
        registers either (with more values than registers both end in spills).  Returns the
        layouts to restore after the loop body."""
        saved: dict[str, Layout] = {}
        by_ptr: dict[str, list[str]] = {}
        for name, lay in self.layouts.items():
            if lay.pointer.endswith("_storage") and lay.pointer.removesuffix("_storage") in self.alloc_types:
                by_ptr.setdefault(lay.pointer, []).append(name)
        attr = next((a for a in loop.attrs if a.name == "launder"), None)
        asked = {a.name for a in attr.args if isinstance(a, Var)} if attr else set()
        if not self.paired and not asked:
            return saved
        loaded = body_reads(loop.body)[1]
        stored = {st.buf for st in walk_stmts(loop.body) if isinstance(st, Store)}
        for ptr, names in sorted(by_ptr.items()):
            if not (self.paired or set(names) & asked):
                continue
            if not set(names) & loaded or set(names) & stored:
                continue
            root = ptr.removesuffix("_storage")
            new = f"{root}_rd"
            self.emit(depth, f"const {self.alloc_types[root].ctype} *{new} = {ptr};")
            self.emit(depth, f"KGEN_LAUNDER({new});" if set(names) & (self.paired | asked)
                      else f"KGEN_LAUNDER_GCC({new});")
            for n in names:
                saved[n] = self.layouts[n]
                self.layouts[n] = replace(self.layouts[n], pointer=new)
        return saved

    def split_offset(self, lay: Layout, index: tuple[Expr, ...], group: int) -> tuple[str, int] | None:
        """Offset = variable part + constant, the variable part a multiple of ``group`` elements."""
        import sympy as sp

        from .affine import affine_form, form_expr
        from .backends.contraction import from_sympy
        from .check import NotAffine, to_sympy

        flat = self.flat_offset(lay, index)
        form = affine_form(flat)
        if form is not None:
            if any(c % group for c in form[1].values()):
                return None
            return ("" if not form[1] else _strip(self.ex(form_expr((0, form[1]))))), form[0]
        try:
            s = sp.expand(to_sympy(flat, {}))
        except NotAffine:
            return None
        const, rest = s.as_coeff_Add()
        if any(t.as_coeff_Mul()[0] % group for t in sp.Add.make_args(rest) if t != 0):
            return None
        var_text = "" if rest == 0 else _strip(self.ex(from_sympy(rest)))
        return var_text, int(const)

    #: register banks of the 4-word loads (KGEN_LDM4_B<i> in the backend's support header)
    QUAD_BANKS = 2
    #: quads a (pointer, variable part) stream needs in a block to be loaded that way
    QUAD_MIN = 4

    def quad_candidates(self, stmts: tuple[Stmt, ...]) -> set[tuple[str, str, int]]:
        """(pointer, variable part, first element) of the 16-byte quads of paired arrays whose
        two 8-byte halves the straight-line statements of ``stmts`` both load."""
        if any(isinstance(s, (For, If)) for s in stmts):
            return set()  # straight-line blocks only: no quad is live across a nested block's
        uses: dict[tuple[str, str, int], list[int]] = {}  # 8-byte half -> statements using it
        for i, s in enumerate(stmts):
            for e in stmt_exprs(s):
                for x in walk_expr(e):
                    if isinstance(x, Load) and x.type.lanes > 1 and x.buf in self.paired and x.buf in self.layouts:
                        lay = self.layouts[x.buf]
                        split = self.split_offset(lay, x.index, 4 * x.type.lanes)
                        if split is not None:
                            off = split[1] - split[1] % (2 * x.type.lanes)
                            uses.setdefault((lay.pointer, split[0], off), []).append(i)
        step = 2 * 2  # elements of one 8-byte half (int16 pairs)
        quads = {(p, v, o): uses[(p, v, o)] + uses[(p, v, o + step)]
                 for p, v, o in uses if o % (2 * step) == 0 and (p, v, o + step) in uses}
        streams: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for (p, v, _), at in quads.items():
            streams.setdefault((p, v), []).append((min(at), max(at)))
        ok: set[tuple[str, str]] = set()
        for stream, spans in streams.items():
            spans.sort()
            # a stream's quads share one register bank: each must be dead before the next loads
            # (its LDM goes right before the first statement using it)
            disjoint = all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
            # a few quads per stream save less than the running pointer and the pinned registers
            # cost (measured on Cortex-M4: 3 quads per stream lose 5 %, 7 gain 11 %)
            if disjoint and len(spans) >= self.QUAD_MIN:
                ok.add(stream)
        return {q for q in quads if q[:2] in ok}

    def quad_load(self, lay: Layout, e: Load) -> str | None:
        """One word of a 16-byte quad fetched by one load-multiple with write-back (``LDM p!``)
        when both halves of the quad are used in this block and a register bank is free; each
        (pointer, variable part) keeps a running pointer, re-seated when the quads are not read
        in ascending order."""
        if not getattr(self, "quad_ok", None):
            return None
        lanes = e.type.lanes
        split = self.split_offset(lay, e.index, 4 * lanes)
        if split is None:
            return None
        var, off = split
        base = off - off % (4 * lanes)
        key = (lay.pointer, var, base)
        if key not in self.quad_ok:
            return None
        if key not in self.quads:
            stream = (lay.pointer, var)
            if stream not in self.quad_banks:
                if len(self.quad_banks) == self.QUAD_BANKS:
                    return None
                self.quad_banks[stream] = len(self.quad_banks)
            bank = self.quad_banks[stream]
            root = lay.pointer.removesuffix("_storage")
            addr = f"&{lay.pointer}[{var + ' + ' if var else ''}{base}]"
            cur = f"{root}_ldm{bank}"
            if stream not in self.quad_cursor:
                self.pending.append(f"const {e.type.lane.ctype} *{cur} = {addr};")
            elif self.quad_cursor[stream] != base:
                self.pending.append(f"{cur} = {addr};")
            self.quad_cursor[stream] = base + 4 * lanes
            name = f"{root}_q{len(self.quads)}"
            self.quads[key] = name
            self.pending.append(f"KGEN_LDM4_B{bank}({cur}, {name}_0, {name}_1, {name}_2, {name}_3);")
        return f"{self.quads[key]}_{(off - base) // lanes}"

    def paired_load(self, pointer: str, var: str, off: int, lanes: int) -> str:
        """Half of a 64-bit load covering elements [base, base + 2*lanes), base = off rounded down."""
        base = off - off % (2 * lanes)
        key = (pointer, var, base)
        if key not in self.pairs:
            name = f"{pointer.removesuffix('_storage')}_w{len(self.pairs)}"
            self.pairs[key] = name
            addr = f"{var} + {base}" if var else f"{base}"
            self.pending.append(f"const uint64_t {name} = kgen_ld64(&{pointer}[{addr}]);")
        name = self.pairs[key]
        return f"(uint32_t)({name} >> 32)" if off != base else f"(uint32_t){name}"

    def body(self, stmts: tuple[Stmt, ...], depth: int) -> None:
        saved = self.pairs
        self.pairs = {}  # paired loads are shared within one block only
        saved_quads = (getattr(self, "quad_ok", None), getattr(self, "quads", {}), getattr(self, "quad_banks", {}),
                       getattr(self, "quad_cursor", {}))
        self.quad_ok = self.quad_candidates(stmts) if self.paired else set()
        self.quads, self.quad_banks, self.quad_cursor = {}, {}, {}
        for s in stmts:
            self.pending: list[str] = []
            mark = len(self.lines)
            self.stmt(s, depth)
            self.lines[mark:mark] = ["    " * depth + line for line in self.pending]
            self.pending = []
        self.pairs = saved
        self.quad_ok, self.quads, self.quad_banks, self.quad_cursor = saved_quads

    def stmt(self, s: Stmt, depth: int) -> None:
        if isinstance(s, For) and s.has("barrier") and not s.body:
            self.uses_parallel = True
            self.emit(depth, "kgen_barrier();")
        elif isinstance(s, For) and s.has("parallel"):
            self.parallel_loop(s, depth)
        elif isinstance(s, For) and s.has("pointer_ivs"):  # opt-in (set by backends, never by the DSL)
            from .backends.pointer_loops import emit_pointer_loop

            emit_pointer_loop(self, s, depth)
        elif isinstance(s, For):
            v = s.var
            self.emit(depth, f"for (int32_t {v} = {_strip(self.ex(s.lo))}; {v} < {_strip(self.ex(s.hi))}; ++{v}) {{")
            saved = self.launder_staged(s, depth + 1)
            self.body(s.body, depth + 1)
            self.layouts.update(saved)
            self.emit(depth, "}")
        elif isinstance(s, Decl):
            init = f" = {_strip(self.ex(s.init))}" if s.init is not None else " = 0"
            self.emit(depth, f"{s.type.ctype} {s.name}{init};")
        elif isinstance(s, Alloc):
            flat = " * ".join(_strip(self.ex(d)) for d in s.shape)
            self.emit(depth, self.scratch.get(s.name, f"KGEN_ALIGN8 {s.type.ctype} {s.name}_storage[{flat}];"))
            self.alloc_types[s.name] = s.type
            try:  # bytes between the per-core copies of a privatised array (kgen.scratch.private_copies)
                from .interp import eval_const

                n = 1
                for d in s.shape:
                    n *= eval_const(d)
                self.alloc_strides[s.name] = -(-n * (s.type.bits // 8) // 8) * 8
            except KeyError:
                pass
            self.layouts[s.name] = Layout(f"{s.name}_storage", _row_major(s.shape))
        elif isinstance(s, View):
            base = self.layouts[s.base]
            self.layouts[s.name] = Layout(base.pointer, s.strides,
                                          Bin("add", base.offset, s.offset, IDX))
        elif isinstance(s, Assign):
            self.emit(depth, f"{s.name} = {_strip(self.ex(s.value))};")
        elif isinstance(s, Store) and s.value.type.lanes > 1:
            # a packed register stored to consecutive elements (4-byte aligned; only backends that
            # provide kgen_st32, e.g. through STORE_HELPERS, create such stores; 64-bit values, 8-byte
            # aligned, go through kgen_st64, which such backends provide as well)
            lay = self.layouts[s.buf]
            st = "kgen_st64" if s.value.type.bits == 64 else "kgen_st32"
            self.emit(depth, f"{st}(&{lay.pointer}[{self.offset(lay, s.index)}], {_strip(self.ex(s.value))});")
        elif isinstance(s, Store):
            lay = self.layouts[s.buf]
            self.emit(depth, f"{lay.pointer}[{self.offset(lay, s.index)}] = {_strip(self.ex(s.value))};")
        elif isinstance(s, If):
            self.emit(depth, f"if ({_strip(self.ex(s.cond))}) {{")
            self.body(s.then, depth + 1)
            if s.orelse:
                self.emit(depth, "} else {")
                self.body(s.orelse, depth + 1)
            self.emit(depth, "}")
        else:
            raise TypeError(s)


def _is_index_arithmetic(e: Expr) -> bool:
    """Only constants, variables, additions and multiplications of type idx (printed statelessly)."""
    t = type(e)
    if t is Const or t is Var:
        return True
    return t is Bin and e.type == IDX and e.op in ("add", "mul") and \
        _is_index_arithmetic(e.a) and _is_index_arithmetic(e.b)


def canonical_affine(e: Expr) -> Expr:
    """Affine index → ``c1*v1 + c2*v2 + … + const`` (so compilers see base + immediate offsets);
    other expressions are returned unchanged."""
    from .affine import affine_form, form_expr
    from .backends.contraction import from_sympy
    from .check import NotAffine, to_sympy

    form = affine_form(e)
    if form is not None:
        return form_expr(form)
    try:
        s = to_sympy(e, {})
    except NotAffine:
        return e
    if not all(t.is_number or t.as_coeff_Mul()[1].is_Symbol for t in __import__("sympy").Add.make_args(
            __import__("sympy").expand(s))):
        return e
    return from_sympy(s)


def _private_names(s: For) -> tuple[str, ...]:
    attr = next((a for a in s.attrs if a.name == "private"), None)
    return tuple(a.name for a in attr.args if isinstance(a, Var)) if attr else ()


def _parallel_cores(s: For) -> int:
    attr = next(a for a in s.attrs if a.name == "parallel")
    return attr.args[0].value if attr.args and isinstance(attr.args[0], Const) else 1


def _row_major(shape: tuple[Expr, ...]) -> tuple[Expr, ...]:
    from .rewrite import simplify_index

    strides: list[Expr] = []
    acc: Expr = Const(1, IDX)
    for d in reversed(shape):
        strides.append(acc)
        acc = simplify_index(Bin("mul", d, acc, IDX))
    return tuple(reversed(strides))


def _strip(text: str) -> str:
    """Drop one pair of redundant outer parentheses."""
    if text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i != len(text) - 1:
                return text
        return text[1:-1]
    return text


def c_params(kernel: Kernel) -> list[str]:
    """C parameter declarations: buffers, scalars, then the unbound size symbols."""
    out = []
    for p in kernel.params:
        if isinstance(p, BufferParam):
            const = "const " if p.direction == "in" else ""
            restrict = "" if p.direction == "inout" else "restrict "
            out.append(f"{const}{p.type.ctype} *{restrict}{p.name}")
        else:
            out.append(f"{p.type.ctype} {p.name}")
    out.extend(f"int32_t {s}" for s in kernel.sizes)
    return out


def emit_body(kernel: Kernel, intrinsic: Callable[[Call, list[str]], str] | None = None,
              paired: frozenset[str] = frozenset(), scratch: Mapping[str, str] | None = None
              ) -> tuple[str, set[str]]:
    """The C statements of ``kernel``'s body (indented one level) and the helpers they use."""
    em = CEmitter(kernel, intrinsic, paired, scratch)
    em.body(kernel.body, 1)
    if em.uses_parallel and em.lines[-1].strip() != "kgen_barrier();":
        em.emit(1, "kgen_barrier();")
    return "\n".join(em.lines), em.uses_helpers


#: Definition of ``kgen_st32`` (the store of a packed register that vector-valued stores emit), for
#: backends to ship as a support header; the counterpart of ``kgen_ld32`` in kgen_common.h.
STORE_HELPERS = """/* kgen_store.h: generated by kgen; do not edit.  Packed-register stores of kgen kernels. */
#ifndef KGEN_STORE_H
#define KGEN_STORE_H

#include <stdint.h>
#include "kgen_common.h"

/** Store a packed register (32 bits, lane 0 at the lowest address) to a 4-byte aligned address:
 *  one store instruction.  kgen only emits packed stores at 4-byte aligned offsets of 4-byte
 *  aligned buffers. */
KGEN_INLINE void kgen_st32(void *p, uint32_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    __builtin_memcpy(__builtin_assume_aligned(p, 4), &v, sizeof v);
#else
    unsigned char *b = (unsigned char *)p;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
#endif
}

#endif /* KGEN_STORE_H */
"""

__all__ = ["emit_body", "c_params", "interval", "storage_strides", "BOOL"]
