"""DSL front end: source text → typed IR, with located errors.

The lark grammar (``grammar/kgen.lark``) gives a parse tree; :class:`_Builder` walks it with a
scope of names and builds typed IR nodes, reporting undefined names, type mismatches and misuse of
buffers as :class:`~kgen.errors.KgenError` at the offending token.  Index bounds are proved
afterwards by :mod:`kgen.check`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
from lark import Token, Tree

from .errors import KgenError
from .ir import (walk_expr, Cast, BOOL, IDX, LIT, SCALAR_TYPES, Alloc, Assign, Attr, BufferParam, Const, Decl,
                 Expr, For, If, Kernel, Load, Loc, ScalarParam, Stmt, Store, Type, Var, View)
from .types import fold_literal, coerce, default_literal, make_bin, make_call, make_cast, make_un

_BIN_RULES = {"lor", "land", "bor", "bxor", "band", "eq", "ne", "lt", "le", "gt", "ge", "shl", "shr",
              "add", "sub", "mul", "div", "mod"}
_RULE_TO_OP = {"bor": "or", "bxor": "xor", "band": "and"}
_COMPOUND = {"+=": "add", "-=": "sub", "*=": "mul", "|=": "or", "&=": "and", "^=": "xor"}


@lru_cache(maxsize=None)
def grammar_text() -> str:
    return resources.files("kgen.grammar").joinpath("kgen.lark").read_text()


@lru_cache(maxsize=None)
def _lark() -> lark.Lark:
    return lark.Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


# Readable names for the grammar's terminals in "expected ..." messages.
_TERMINAL_TEXT = {"NAME": "a name", "INT": "an integer", "TYPE": "a type (i8, u8, i16, u16, i32, u32, i64)",
                  "ASSIGN_OP": "'=' or a compound assignment", "$END": "end of file"}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_TEXT:
        return _TERMINAL_TEXT[name]
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def _expected(names: set[str]) -> str:
    items = sorted({_describe_terminal(n) for n in names})
    if len(items) > 8:
        items = items[:8] + ["..."]
    return ", ".join(items)


def _syntax_error(exc: lark.exceptions.UnexpectedInput, file: str, text: str) -> KgenError:
    loc = Loc(file, max(exc.line, 1), max(exc.column, 1))
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        msg = f"unexpected character {char!r}"
        if exc.allowed:
            msg += f"; expected {_expected(set(exc.allowed))}"
    elif isinstance(exc, lark.exceptions.UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            loc = Loc(file, len(lines), len(lines[-1]) + 1)
            msg = "unexpected end of file"
        else:
            msg = f"unexpected {tok.value!r}"
        msg += f"; expected {_expected(set(exc.expected))}"
    else:  # UnexpectedEOF
        lines = text.splitlines() or [""]
        loc = Loc(file, len(lines), len(lines[-1]) + 1)
        msg = "unexpected end of file"
    return KgenError(msg, loc, text)


#: Identifiers the generated C cannot use as variable or parameter names.
C_RESERVED = frozenset("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary bool true false NULL main int8_t uint8_t int16_t uint16_t int32_t
uint32_t int64_t uint64_t size_t asm typeof""".split())


@dataclass
class _Sym:
    kind: str  # size | scalar | buffer | array | view | loop | local
    type: Type
    rank: int = 0
    writable: bool = False


class _Builder:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.scopes: list[dict[str, _Sym]] = []

    # ---------------------------------------------------------------------------- helpers
    def loc(self, node: Tree | Token) -> Loc:
        if isinstance(node, Token):
            return Loc(self.file, node.line or 1, node.column or 1)
        meta = node.meta
        return Loc(self.file, getattr(meta, "line", 1), getattr(meta, "column", 1))

    def err(self, message: str, loc: Loc | None) -> KgenError:
        return KgenError(message, loc, self.text)

    def check_name(self, tok: Token) -> None:
        """Names become C identifiers: C keywords, standard type names and kgen's own prefix are refused."""
        name = str(tok)
        if name in C_RESERVED or name.startswith("kgen_") or name.startswith("__"):
            raise self.err(f"'{name}' cannot be used as a name: it is reserved in the generated C", self.loc(tok))

    def lookup(self, name: str) -> _Sym | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def define(self, tok: Token, sym: _Sym) -> None:
        name = str(tok)
        self.check_name(tok)
        if self.lookup(name) is not None:
            raise self.err(f"'{name}' is already defined", self.loc(tok))
        self.scopes[-1][name] = sym

    def index_expr(self, tree: Tree, what: str) -> Expr:
        e = self.expr(tree)
        if e.type not in (IDX, LIT):
            raise self.err(f"{what} must be an index expression (loop variables, sizes, integer "
                           f"constants), got a value of type {e.type}", e.loc)
        return coerce(e, IDX, self.err)

    def const_expr(self, tree: Tree, t: Type, what: str) -> Expr:
        """A constant expression of type ``t`` (literals only; the upper bound may be t.max + 1)."""
        e = self.expr(tree)
        value = fold_literal(e) if e.type == LIT else None
        if value is None:
            raise self.err(f"{what} must be an integer constant", e.loc)
        if not t.min <= value <= t.max + 1:
            raise self.err(f"{what} {value} is outside the range of {t}", e.loc)
        return Const(value, t, e.loc)

    def expr_list(self, tree: Tree | None, what: str) -> tuple[Expr, ...]:
        return tuple(self.index_expr(c, what) for c in (tree.children if tree else ()))

    # ---------------------------------------------------------------------------- kernel
    def kernel(self, tree: Tree) -> Kernel:
        name_tok, *rest = tree.children
        self.check_name(name_tok)
        where_tree = next((c for c in rest if isinstance(c, Tree) and c.data == "where"), None)
        block = rest[-1]
        params = [c for c in rest if isinstance(c, Tree) and c.data in ("buffer_param", "buffer_param_in",
                                                                        "scalar_param")]
        # A buffer without a direction is an input: normalise to the directed form.
        params = [Tree("buffer_param", [p.children[0], Tree("direction", []), *p.children[1:]], p.meta)
                  if p.data == "buffer_param_in" else p for p in params]
        self.scopes = [{}]
        # Size symbols are the free names of buffer shapes and strides; define them first.
        scalar_names = {str(p.children[0]) for p in params if p.data == "scalar_param"}
        for p in params:
            if p.data == "buffer_param":
                for sub in p.children[3:]:
                    if sub is None:
                        continue
                    for tok in sub.scan_values(lambda v: isinstance(v, Token) and v.type == "NAME"):
                        if str(tok) in scalar_names:
                            raise self.err(f"shape of buffer '{p.children[0]}' uses runtime scalar "
                                           f"'{tok}'; shapes may only use size symbols", self.loc(tok))
                        if self.lookup(str(tok)) is None:
                            self.check_name(tok)
                            self.scopes[0][str(tok)] = _Sym("size", IDX)
        out: list[BufferParam | ScalarParam] = []
        for p in params:
            out.append(self.param(p))
        where = tuple(coerce(self.expr(w), BOOL, self.err, "a where-constraint")
                      for w in (where_tree.children if where_tree else ()))
        for w in where:
            for v in walk_expr(w):
                if isinstance(v, Var) and self.lookup(v.name) is not None and self.lookup(v.name).kind != "size":
                    raise self.err(f"where-constraints may only use size symbols; '{v.name}' is a run-time "
                                   f"{self.lookup(v.name).kind}", v.loc)
        body = self.block(block, new_scope=True)
        return Kernel(str(name_tok), tuple(out), where, body, self.loc(tree))

    def param(self, tree: Tree) -> BufferParam | ScalarParam:
        name_tok = tree.children[0]
        if tree.data == "scalar_param":
            _, type_tok, lo, hi = tree.children
            t = SCALAR_TYPES[str(type_tok)]
            if self.lookup(str(name_tok)) is not None:
                raise self.err(f"'{name_tok}' is already defined", self.loc(name_tok))
            bounds = [None if b is None else self.const_expr(b, t, f"range bound of '{name_tok}'")
                      for b in (lo, hi)]
            if bounds[0] is not None and bounds[1] is not None and \
                    fold_literal(bounds[0]) >= fold_literal(bounds[1]):  # type: ignore[operator]
                raise self.err(f"empty range for '{name_tok}'", self.loc(lo))
            self.check_name(name_tok)
            self.scopes[0][str(name_tok)] = _Sym("scalar", t)
            return ScalarParam(str(name_tok), t, bounds[0], bounds[1], self.loc(name_tok))
        _, direction, type_tok, dims, strides = tree.children
        dir_text = str(direction.children[0]) if direction.children and direction.children[0] else "in"
        shape = self.expr_list(dims, "a buffer dimension")
        stride_exprs = self.expr_list(strides.children[0], "a stride") if strides is not None else None
        if stride_exprs is not None and len(stride_exprs) != len(shape):
            raise self.err(f"buffer '{name_tok}' has {len(shape)} dimensions but {len(stride_exprs)} strides",
                           self.loc(strides))
        existing = self.lookup(str(name_tok))
        if existing is not None and existing.kind != "size":
            raise self.err(f"'{name_tok}' is already defined", self.loc(name_tok))
        if existing is not None:
            raise self.err(f"'{name_tok}' is used as a size symbol and cannot also name a buffer",
                           self.loc(name_tok))
        t = SCALAR_TYPES[str(type_tok)]
        self.check_name(name_tok)
        self.scopes[0][str(name_tok)] = _Sym("buffer", t, len(shape), dir_text != "in")
        return BufferParam(str(name_tok), t, shape, dir_text, stride_exprs, self.loc(name_tok))

    # ---------------------------------------------------------------------------- statements
    def block(self, tree: Tree, new_scope: bool = True) -> tuple[Stmt, ...]:
        if new_scope:
            self.scopes.append({})
        try:
            return tuple(self.stmt(s) for s in tree.children)
        finally:
            if new_scope:
                self.scopes.pop()

    def stmt(self, tree: Tree) -> Stmt:
        return getattr(self, f"s_{tree.data}")(tree)

    def s_for_stmt(self, tree: Tree) -> Stmt:
        var, lo, hi, *annots, block = tree.children
        lo_e = self.index_expr(lo, "a loop bound")
        hi_e = self.index_expr(hi, "a loop bound")
        attrs = tuple(Attr(str(a.children[0]), self.expr_list(a.children[1], "an annotation argument"))
                      for a in annots)
        self.scopes.append({})
        self.define(var, _Sym("loop", IDX))
        try:
            body = self.block(block, new_scope=False)
        finally:
            self.scopes.pop()
        return For(str(var), lo_e, hi_e, body, attrs, self.loc(tree))

    def s_var_stmt(self, tree: Tree) -> Stmt:
        name, type_tok, init = tree.children
        t = SCALAR_TYPES[str(type_tok)]
        init_e = coerce(self.expr(init), t, self.err, f"initial value of '{name}'") if init is not None else None
        self.define(name, _Sym("local", t, writable=True))
        return Decl(str(name), t, init_e, self.loc(tree))

    def s_array_stmt(self, tree: Tree) -> Stmt:
        name, type_tok, dims = tree.children
        shape = self.expr_list(dims, "an array dimension")
        t = SCALAR_TYPES[str(type_tok)]
        self.define(name, _Sym("array", t, len(shape), writable=True))
        return Alloc(str(name), t, shape, self.loc(tree))

    def s_view_stmt(self, tree: Tree) -> Stmt:
        name, base, dims, strides, offset = tree.children
        base_sym = self.lookup(str(base))
        if base_sym is None or base_sym.kind not in ("buffer", "array"):
            raise self.err(f"view base '{base}' must be a buffer parameter or local array", self.loc(base))
        shape = self.expr_list(dims, "a view dimension")
        stride_e = self.expr_list(strides, "a view stride")
        if len(stride_e) != len(shape):
            raise self.err(f"view '{name}' has {len(shape)} dimensions but {len(stride_e)} strides", self.loc(name))
        off = self.index_expr(offset, "a view offset") if offset is not None else Const(0, IDX)
        self.define(name, _Sym("view", base_sym.type, len(shape), base_sym.writable))
        return View(str(name), str(base), shape, stride_e, off, self.loc(tree))

    def s_assign_stmt(self, tree: Tree) -> Stmt:
        lv, op_tok, value = tree.children
        op = str(op_tok)
        name_tok = lv.children[0]
        sym = self.lookup(str(name_tok))
        loc = self.loc(name_tok)
        if sym is None:
            raise self.err(f"undefined name '{name_tok}'", loc)
        rhs = self.expr(value)
        if lv.data == "lvalue_var":
            if sym.kind != "local":
                what = {"scalar": "scalar parameter", "loop": "loop variable", "size": "size symbol"}.get(
                    sym.kind, sym.kind)
                if sym.kind in ("buffer", "array", "view"):
                    raise self.err(f"'{name_tok}' is a {sym.kind}; assign to an element, e.g. "
                                   f"{name_tok}[...] = ...", loc)
                raise self.err(f"cannot assign to {what} '{name_tok}'", loc)
            target: Expr = Var(str(name_tok), sym.type, loc)
        else:
            if sym.kind not in ("buffer", "array", "view"):
                raise self.err(f"'{name_tok}' is not a buffer, array or view", loc)
            if not sym.writable:
                raise self.err(f"cannot store into input buffer '{name_tok}' (declare it 'out' or 'inout')", loc)
            index = self.expr_list(lv.children[1], "an index")
            self.check_rank(str(name_tok), sym, index, loc)
            target = Load(str(name_tok), index, sym.type, loc)
        if op != "=":
            rhs = make_bin(_COMPOUND[op], target, rhs, self.loc(op_tok), self.err)
        rhs = coerce(rhs, sym.type, self.err, f"value assigned to '{name_tok}'")
        if isinstance(target, Var):
            return Assign(target.name, rhs, self.loc(tree))
        return Store(target.buf, target.index, rhs, self.loc(tree))

    def s_if_stmt(self, tree: Tree) -> Stmt:
        cond, then, orelse = tree.children
        c = coerce(self.expr(cond), BOOL, self.err, "an if-condition")
        then_b = self.block(then)
        if orelse is None:
            else_b: tuple[Stmt, ...] = ()
        elif orelse.data == "if_block":
            else_b = (self.s_if_stmt(orelse.children[0]),)
        else:
            else_b = self.block(orelse)
        return If(c, then_b, else_b, self.loc(tree))

    def check_rank(self, name: str, sym: _Sym, index: tuple[Expr, ...], loc: Loc) -> None:
        if len(index) != sym.rank:
            raise self.err(f"'{name}' has {sym.rank} dimension{'s' if sym.rank != 1 else ''} "
                           f"but is indexed with {len(index)}", loc)

    # ---------------------------------------------------------------------------- expressions
    def expr(self, tree: Tree | Token) -> Expr:
        if isinstance(tree, Token):
            raise self.err(f"unexpected {tree!s}", self.loc(tree))
        rule = tree.data
        loc = self.loc(tree)
        if rule in _BIN_RULES:
            a, b = (self.expr(c) for c in tree.children)
            return make_bin(_RULE_TO_OP.get(rule, rule), a, b, loc, self.err)
        if rule == "neg" and isinstance(tree.children[0], Tree) and tree.children[0].data == "int_lit":
            # A negative literal is one constant (so -128 fits i8 and matches ISA patterns).
            return Const(-int(str(tree.children[0].children[0]), 0), LIT, loc)
        if rule in ("neg", "bnot", "lnot"):
            return make_un(rule, self.expr(tree.children[0]), loc, self.err)
        if rule == "int_lit":
            text = str(tree.children[0])
            return Const(int(text, 0), LIT, loc)
        if rule == "name":
            return self.e_name(tree.children[0])
        if rule == "load":
            name_tok, idx_tree = tree.children
            sym = self.lookup(str(name_tok))
            if sym is None:
                raise self.err(f"undefined name '{name_tok}'", self.loc(name_tok))
            if sym.kind not in ("buffer", "array", "view"):
                raise self.err(f"'{name_tok}' is a {sym.kind} and cannot be indexed", self.loc(name_tok))
            index = self.expr_list(idx_tree, "an index")
            self.check_rank(str(name_tok), sym, index, self.loc(name_tok))
            return Load(str(name_tok), index, sym.type, self.loc(name_tok))
        if rule == "cast":
            type_tok, arg = tree.children
            return make_cast(SCALAR_TYPES[str(type_tok)], self.expr(arg), loc, self.err)
        if rule == "call" and str(tree.children[0]) == "idx":
            # idx(v): a data value used as an index (a table lookup); check.py proves its range
            args_tree = tree.children[1]
            if args_tree is None or len(args_tree.children) != 1:
                raise self.err("idx() takes one argument", self.loc(tree.children[0]))
            v = self.expr(args_tree.children[0])
            if not v.type.is_data or v.type.lanes != 1:
                raise self.err(f"idx() converts an integer value to an index, got {v.type}", v.loc or loc)
            return Cast(v, IDX, self.loc(tree.children[0]))
        if rule == "call":
            name_tok, args_tree = tree.children
            args: list[Expr] = []
            flags: list[str] = []
            for a in (args_tree.children if args_tree else ()):
                if a.data == "name" and self.lookup(str(a.children[0])) is None and str(name_tok) == "requant":
                    flags.append(str(a.children[0]))
                else:
                    args.append(self.expr(a))
            return make_call(str(name_tok), args, flags, self.loc(name_tok), self.err)
        raise self.err(f"unsupported expression '{rule}'", loc)

    def e_name(self, tok: Token) -> Expr:
        sym = self.lookup(str(tok))
        loc = self.loc(tok)
        if sym is None:
            raise self.err(f"undefined name '{tok}'", loc)
        if sym.kind in ("buffer", "array", "view"):
            raise self.err(f"{sym.kind} '{tok}' used without an index", loc)
        return Var(str(tok), sym.type, loc)


def parse_kernels(text: str, file: str = "<input>") -> tuple[Kernel, ...]:
    """Parse DSL source holding one or more kernels; raises :class:`KgenError` on any error."""
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, file, text) from None
    builder = _Builder(file, text)
    kernels = tuple(replace(builder.kernel(k), doc=_doc_comment(text, k.meta.line)) for k in tree.children)
    names = [k.name for k in kernels]
    for i, k in enumerate(kernels):
        if k.name in names[:i]:
            raise KgenError(f"kernel '{k.name}' is defined twice", k.loc, text)
    from .check import check_kernel

    for k in kernels:
        check_kernel(k, text)
    return kernels


def _doc_comment(text: str, line: int) -> str:
    """The block of ``#`` comment lines directly above line ``line`` (1-based)."""
    lines = text.splitlines()
    doc: list[str] = []
    i = line - 2
    while i >= 0 and lines[i].lstrip().startswith("#"):
        doc.insert(0, lines[i].lstrip()[1:].strip())
        i -= 1
    return "\n".join(doc)


def parse_kernel(text: str, file: str = "<input>") -> Kernel:
    kernels = parse_kernels(text, file)
    if len(kernels) != 1:
        raise KgenError(f"expected exactly one kernel, found {len(kernels)}", Loc(file, 1, 1), text)
    return kernels[0]


def parse_file(path: str | Path) -> tuple[Kernel, ...]:
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KgenError(f"cannot read {p}: {exc}") from None
    return parse_kernels(text, str(p))


def parse_expr(text: str, env: dict[str, Type], file: str = "<expr>") -> Expr:
    """Parse a standalone expression over typed names (used for ISA semantics)."""
    src = f"kernel _e() {{ var _r: i64 = i64({text}); }}"
    # Parse the expression through a tiny kernel wrapper so the same grammar and typing apply.
    try:
        tree = _lark().parse(src)
    except lark.exceptions.UnexpectedInput as exc:
        e = _syntax_error(exc, file, src)
        e.loc = Loc(file, 1, max(1, (e.loc.col if e.loc else 1) - 26))
        e.source = text
        raise e from None
    builder = _Builder(file, text)
    builder.scopes = [{n: (_Sym("array", t.lane, 1) if t.lanes > 1 else _Sym("local", t))
                       for n, t in env.items()}]
    expr_tree = tree.children[0].children[-1].children[0].children[2].children[1]
    e = builder.expr(expr_tree)
    return default_literal(e, builder.err)
