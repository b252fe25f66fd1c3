"""IR → DSL text.  ``parse_kernel(print_kernel(k)) == k`` for every kernel the parser produces."""
from __future__ import annotations

from .ir import (BINOPS, IDX, LIT, UNOPS, Alloc, Assign, Bin, BufferParam, Call, Cast, Const, Decl,
                 Expr, For, If, Kernel, Load, Stmt, Store, Un, Var, View)

# Binding strength of each operator, as in the grammar (higher binds tighter).
_PREC = {"lor": 1, "land": 2, "or": 3, "xor": 4, "and": 5, "eq": 6, "ne": 6, "lt": 7, "le": 7,
         "gt": 7, "ge": 7, "shl": 8, "shr": 8, "add": 9, "sub": 9, "mul": 10, "div": 10, "mod": 10}
_UNARY_PREC = 11
_COMPOUND_OPS = {"add": "+=", "sub": "-=", "mul": "*=", "or": "|=", "and": "&=", "xor": "^="}


def print_expr(e: Expr, parent_prec: int = 0, right: bool = False) -> str:
    """Print an expression, parenthesising only where the grammar needs it."""
    if isinstance(e, Const):
        text = str(e.value) if e.value >= 0 else f"-{-e.value}"
        return f"({text})" if e.value < 0 and parent_prec >= _UNARY_PREC else text
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Load):
        return f"{e.buf}[{', '.join(print_expr(i) for i in e.index)}]"
    if isinstance(e, Cast):
        return f"{e.type}({print_expr(e.a)})"
    if isinstance(e, Un):
        return f"{UNOPS[e.op]}{print_expr(e.a, _UNARY_PREC)}"
    if isinstance(e, Call):
        args = [print_expr(a) for a in e.args] + list(e.flags)
        return f"{e.fn}({', '.join(args)})"
    if isinstance(e, Bin):
        prec = _PREC[e.op]
        # Left-associative grammar: the right operand needs parentheses at equal precedence.
        text = f"{print_expr(e.a, prec)} {BINOPS[e.op]} {print_expr(e.b, prec, right=True)}"
        needs = prec < parent_prec or (prec == parent_prec and right)
        return f"({text})" if needs else text
    raise TypeError(e)


def _stmt_lines(s: Stmt, indent: int) -> list[str]:
    pad = "    " * indent
    if isinstance(s, For):
        attrs = "".join(
            f" @{a.name}" + (f"({', '.join(print_expr(x) for x in a.args)})" if a.args else "")
            for a in s.attrs)
        head = f"{pad}for {s.var} in {print_expr(s.lo)}..{print_expr(s.hi)}{attrs} {{"
        return [head, *_body_lines(s.body, indent + 1), f"{pad}}}"]
    if isinstance(s, Decl):
        init = f" = {print_expr(s.init)}" if s.init is not None else ""
        return [f"{pad}var {s.name}: {s.type}{init};"]
    if isinstance(s, Alloc):
        return [f"{pad}var {s.name}: {s.type}[{', '.join(print_expr(d) for d in s.shape)}];"]
    if isinstance(s, View):
        off = "" if s.offset == Const(0, IDX) else f" offset {print_expr(s.offset)}"
        return [f"{pad}view {s.name} = {s.base}[{', '.join(print_expr(d) for d in s.shape)}] "
                f"strides [{', '.join(print_expr(d) for d in s.strides)}]{off};"]
    if isinstance(s, Assign):
        v = s.value
        if isinstance(v, Bin) and v.op in _COMPOUND_OPS and v.a == Var(s.name, v.type):
            return [f"{pad}{s.name} {_COMPOUND_OPS[v.op]} {print_expr(v.b)};"]
        return [f"{pad}{s.name} = {print_expr(v)};"]
    if isinstance(s, Store):
        target = f"{s.buf}[{', '.join(print_expr(i) for i in s.index)}]"
        v = s.value
        if isinstance(v, Bin) and v.op in _COMPOUND_OPS and v.a == Load(s.buf, s.index, v.type):
            return [f"{pad}{target} {_COMPOUND_OPS[v.op]} {print_expr(v.b)};"]
        return [f"{pad}{target} = {print_expr(v)};"]
    if isinstance(s, If):
        lines = [f"{pad}if {print_expr(s.cond)} {{", *_body_lines(s.then, indent + 1)]
        if s.orelse:
            lines.append(f"{pad}}} else {{")
            lines.extend(_body_lines(s.orelse, indent + 1))
        lines.append(f"{pad}}}")
        return lines
    raise TypeError(s)


def _body_lines(body: tuple[Stmt, ...], indent: int) -> list[str]:
    out: list[str] = []
    for s in body:
        out.extend(_stmt_lines(s, indent))
    return out


def print_stmts(body: tuple[Stmt, ...], indent: int = 0) -> str:
    return "\n".join(_body_lines(body, indent))


def print_kernel(k: Kernel) -> str:
    params = []
    for p in k.params:
        if isinstance(p, BufferParam):
            strides = f" strides [{', '.join(print_expr(s) for s in p.strides)}]" if p.strides else ""
            params.append(f"    {p.name}: {p.direction} {p.type}[{', '.join(print_expr(d) for d in p.shape)}]"
                          f"{strides}")
        else:
            rng = f" in {print_expr(p.lo)}..{print_expr(p.hi)}" if p.lo is not None else ""
            params.append(f"    {p.name}: {p.type}{rng}")
    where = f" where {', '.join(print_expr(w) for w in k.where)}" if k.where else ""
    doc = [f"# {line}".rstrip() for line in k.doc.splitlines()]
    lines = [*doc, f"kernel {k.name}(", ",\n".join(params), f"){where} {{", *_body_lines(k.body, 1), "}"]
    return "\n".join(lines) + "\n"


__all__ = ["print_expr", "print_kernel", "print_stmts", "LIT"]
