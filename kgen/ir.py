"""The kgen IR: typed, immutable loop nests.

Every node is a frozen dataclass, so IR values can be hashed, compared and shared between
schedule steps; transformations build new trees (see :mod:`kgen.rewrite`).  Source locations
ride along in ``loc`` fields that take no part in equality, so a tree that was printed and
parsed back compares equal to the original.

Expressions carry their type.  ``IDX`` is the type of loop variables, size symbols and index
arithmetic (unbounded integers); ``BOOL`` is the type of comparisons.  Data types are the
fixed-width integers of :data:`SCALAR_TYPES`, whose arithmetic wraps around.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Union

from .memo import PREFIX as MEMO_PREFIX, per_object


@dataclass(frozen=True)
class Loc:
    """A position in a DSL source file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def _loc() -> Loc | None:
    return field(default=None, compare=False, repr=False)  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Type:
    """A scalar type.  ``bits == 0`` marks the non-data types ``idx`` and ``bool``."""

    name: str
    bits: int = 0
    signed: bool = True
    #: >1 for packed SIMD values held in one register (``i8x4``, ``i16x2``): ``bits`` is the
    #: register width and the lane type is :attr:`lane`.
    lanes: int = 1

    def __str__(self) -> str:
        return self.name

    @property
    def lane(self) -> "Type":
        return SCALAR_TYPES[self.name.split("x")[0]] if self.lanes > 1 else self

    @property
    def is_data(self) -> bool:
        return self.bits > 0

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def wrap(self, value: int) -> int:
        """Reduce ``value`` modulo 2**bits into this type's range (two's complement)."""
        if not self.is_data:
            return value
        value &= (1 << self.bits) - 1
        if self.signed and value >= 1 << (self.bits - 1):
            value -= 1 << self.bits
        return value

    @property
    def ctype(self) -> str:
        if self.lanes > 1:
            return "uint32_t"
        if self.name == "idx":
            return "int32_t"
        if self.name == "bool":
            return "int"
        return f"{'' if self.signed else 'u'}int{self.bits}_t"


I8 = Type("i8", 8, True)
U8 = Type("u8", 8, False)
I16 = Type("i16", 16, True)
U16 = Type("u16", 16, False)
I32 = Type("i32", 32, True)
U32 = Type("u32", 32, False)
I64 = Type("i64", 64, True)
IDX = Type("idx")
BOOL = Type("bool")
#: Placeholder type of an integer literal before it meets a typed operand.
LIT = Type("lit")

SCALAR_TYPES: dict[str, Type] = {t.name: t for t in (I8, U8, I16, U16, I32, U32, I64)}
I8X4 = Type("i8x4", 32, True, 4)
U8X4 = Type("u8x4", 32, False, 4)
I16X2 = Type("i16x2", 32, True, 2)
U16X2 = Type("u16x2", 32, False, 2)
#: Packed SIMD register types of the ISA files (lane 0 is the least significant).
VECTOR_TYPES: dict[str, Type] = {t.name: t for t in (I8X4, U8X4, I16X2, U16X2)}


_HASH = MEMO_PREFIX + "hash"


def _memo_hash(cls):
    """A frozen IR dataclass whose hash is computed once per object.

    IR trees are hashed over and over (memo tables, sets of expressions) and a dataclass hash
    walks the whole subtree each time.  The memo lives in the instance dict and is dropped when
    pickling, with the answers :func:`kgen.memo.per_object` keeps there: string hashes differ
    between processes (build workers)."""
    field_hash = cls.__hash__
    fields = cls.__dataclass_fields__

    def __hash__(self) -> int:
        try:
            return self.__dict__[_HASH]
        except KeyError:
            h = field_hash(self)
            object.__setattr__(self, _HASH, h)
            return h

    def __getstate__(self) -> dict:  # memoised hash and answers (kgen.memo) stay behind
        state = self.__dict__
        if len(state) == len(fields):
            return state
        return {k: v for k, v in state.items() if not k.startswith(MEMO_PREFIX)}

    cls.__hash__ = __hash__
    cls.__getstate__ = __getstate__
    return cls


def node(cls):
    """``@dataclass(frozen=True)`` for IR nodes (see :func:`_memo_hash`)."""
    return _memo_hash(dataclass(frozen=True)(cls))


# ----------------------------------------------------------------------------------- expressions


@node
class Const:
    value: int
    type: Type
    loc: Loc | None = _loc()


@node
class Var:
    """A scalar name: loop variable, size symbol, scalar parameter or local scalar."""

    name: str
    type: Type
    loc: Loc | None = _loc()


@node
class Load:
    buf: str
    index: tuple["Expr", ...]
    type: Type
    loc: Loc | None = _loc()


#: Binary operators: DSL spelling of each IR operator name.
BINOPS: dict[str, str] = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "shl": "<<", "shr": ">>",
    "and": "&", "or": "|", "xor": "^", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
    "eq": "==", "ne": "!=", "land": "&&", "lor": "||",
}
COMPARISONS = frozenset({"lt", "le", "gt", "ge", "eq", "ne"})
LOGICAL = frozenset({"land", "lor"})
UNOPS: dict[str, str] = {"neg": "-", "bnot": "~", "lnot": "!"}


@node
class Bin:
    op: str
    a: "Expr"
    b: "Expr"
    type: Type
    loc: Loc | None = _loc()


@node
class Un:
    op: str
    a: "Expr"
    type: Type
    loc: Loc | None = _loc()


@node
class Cast:
    """Conversion to ``type``; data types wrap (two's complement truncation)."""

    a: "Expr"
    type: Type
    loc: Loc | None = _loc()


@node
class Call:
    """A builtin (``min max clip abs select requant``) or an ISA instruction (``isa.<mnemonic>``).

    ``flags`` holds keyword-like arguments such as the rounding mode of ``requant``.
    """

    fn: str
    args: tuple["Expr", ...]
    type: Type
    flags: tuple[str, ...] = ()
    loc: Loc | None = _loc()


Expr = Union[Const, Var, Load, Bin, Un, Cast, Call]


# ------------------------------------------------------------------------------------ statements


@node
class Attr:
    """A loop annotation such as ``@unroll`` or ``@parallel(8)``."""

    name: str
    args: tuple[Expr, ...] = ()


@node
class For:
    var: str
    lo: Expr
    hi: Expr
    body: tuple["Stmt", ...]
    attrs: tuple[Attr, ...] = ()
    loc: Loc | None = _loc()

    def has(self, attr: str) -> bool:
        return any(a.name == attr for a in self.attrs)


@node
class Decl:
    """A local scalar, optionally initialised."""

    name: str
    type: Type
    init: Expr | None
    loc: Loc | None = _loc()


@node
class Alloc:
    """A local array (scratch), row-major."""

    name: str
    type: Type
    shape: tuple[Expr, ...]
    loc: Loc | None = _loc()


@node
class View:
    """``name`` re-indexes the storage of ``base``: element i is base_storage[offset + Σ i_d·strides_d]."""

    name: str
    base: str
    shape: tuple[Expr, ...]
    strides: tuple[Expr, ...]
    offset: Expr
    loc: Loc | None = _loc()


@node
class Assign:
    name: str
    value: Expr
    loc: Loc | None = _loc()


@node
class Store:
    buf: str
    index: tuple[Expr, ...]
    value: Expr
    loc: Loc | None = _loc()


@node
class If:
    cond: Expr
    then: tuple["Stmt", ...]
    orelse: tuple["Stmt", ...] = ()
    loc: Loc | None = _loc()


Stmt = Union[For, Decl, Alloc, View, Assign, Store, If]


# -------------------------------------------------------------------------------------- kernels


@node
class BufferParam:
    name: str
    type: Type
    shape: tuple[Expr, ...]
    direction: str = "in"  # in | out | inout
    strides: tuple[Expr, ...] | None = None
    loc: Loc | None = _loc()


@node
class ScalarParam:
    """A run-time scalar; ``lo..hi`` (hi exclusive) is its precondition range when given."""

    name: str
    type: Type
    lo: Expr | None = None
    hi: Expr | None = None
    loc: Loc | None = _loc()


Param = Union[BufferParam, ScalarParam]


@node
class Kernel:
    name: str
    params: tuple[Param, ...]
    where: tuple[Expr, ...]
    body: tuple[Stmt, ...]
    loc: Loc | None = _loc()
    #: The comment block above the kernel in its source file (documentation, not semantics).
    doc: str = field(default="", compare=False)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def buffers(self) -> tuple[BufferParam, ...]:
        return tuple(p for p in self.params if isinstance(p, BufferParam))

    @property
    def scalars(self) -> tuple[ScalarParam, ...]:
        return tuple(p for p in self.params if isinstance(p, ScalarParam))

    @property
    def sizes(self) -> tuple[str, ...]:
        """Size symbols in order of first appearance in the buffer shapes."""
        seen: dict[str, None] = {}
        for p in self.buffers:
            for e in p.shape + (p.strides or ()):
                for v in walk_expr(e):
                    if isinstance(v, Var) and v.type == IDX:
                        seen.setdefault(v.name, None)
        return tuple(seen)


# ------------------------------------------------------------------------------------ traversal


def children(e: Expr) -> tuple[Expr, ...]:
    t = type(e)
    if t is Load:
        return e.index
    if t is Bin:
        return (e.a, e.b)
    if t is Un or t is Cast:
        return (e.a,)
    if t is Call:
        return e.args
    return ()


def walk_expr(e: Expr) -> Iterator[Expr]:
    """Pre-order walk over an expression tree."""
    stack = [e]
    pop, push = stack.pop, stack.extend
    while stack:
        x = pop()
        yield x
        t = type(x)
        if t is Bin:
            stack.append(x.b)
            stack.append(x.a)
        elif t is Load:
            push(reversed(x.index))
        elif t is Un or t is Cast:
            stack.append(x.a)
        elif t is Call:
            push(reversed(x.args))


def stmt_exprs(s: Stmt) -> tuple[Expr, ...]:
    """The expressions directly held by a statement (not those of nested statements)."""
    if isinstance(s, For):
        return (s.lo, s.hi)
    if isinstance(s, Decl):
        return (s.init,) if s.init is not None else ()
    if isinstance(s, Alloc):
        return s.shape
    if isinstance(s, View):
        return s.shape + s.strides + (s.offset,)
    if isinstance(s, Assign):
        return (s.value,)
    if isinstance(s, Store):
        return s.index + (s.value,)
    if isinstance(s, If):
        return (s.cond,)
    raise TypeError(s)


def sub_bodies(s: Stmt) -> tuple[tuple[Stmt, ...], ...]:
    if isinstance(s, For):
        return (s.body,)
    if isinstance(s, If):
        return (s.then, s.orelse)
    return ()


def walk_stmts(body: tuple[Stmt, ...]) -> Iterator[Stmt]:
    """Pre-order walk over all statements of a body."""
    stack = [iter(body)]
    while stack:
        for s in stack[-1]:
            yield s
            t = type(s)
            if t is For:
                stack.append(iter(s.body))
                break
            if t is If:
                stack.append(iter(s.orelse))
                stack.append(iter(s.then))
                break
        else:
            stack.pop()


_NO_READS: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())


@per_object
def expr_reads(e: Expr) -> tuple[frozenset[str], frozenset[str]]:
    """(names of the variables, buffers loaded) anywhere in ``e``; computed once per node, so a
    subtree shared by many expressions (unrolled code) is looked at once."""
    t = type(e)
    if t is Var:
        return frozenset((e.name,)), _NO_READS[1]
    if t is Const:
        return _NO_READS
    return _union([expr_reads(c) for c in children(e)], e.buf if t is Load else None)


@per_object
def stmt_reads(s: Stmt) -> tuple[frozenset[str], frozenset[str]]:
    """(names of the variables, buffers loaded) anywhere in ``s``, its nested statements included."""
    return _union([expr_reads(e) for e in stmt_exprs(s)] + [stmt_reads(x) for b in sub_bodies(s) for x in b])


def body_reads(body: tuple[Stmt, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """:func:`stmt_reads` of a whole body."""
    return _union([stmt_reads(s) for s in body])


def _union(parts: list[tuple[frozenset[str], frozenset[str]]], buf: str | None = None
           ) -> tuple[frozenset[str], frozenset[str]]:
    parts = [p for p in parts if p[0] or p[1]]
    if buf is None and len(parts) <= 1:
        return parts[0] if parts else _NO_READS
    names = frozenset().union(*(p[0] for p in parts))
    bufs = frozenset().union(*(p[1] for p in parts))
    return names, bufs | {buf} if buf is not None else bufs


def idx(value: int) -> Const:
    return Const(value, IDX)
