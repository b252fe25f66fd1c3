"""Dead code: what a kernel computes but never uses, removed before C emission.

A DSL kernel may declare a scalar it never reads, fill a local array nothing loads, or take a
parameter its body does not need.  C compilers reject the first and last under
``-Wall -Wextra -Werror`` (unused variable, unused-but-set variable, unused parameter), so the
emitter must not produce them:

* :func:`eliminate_dead_code` removes, to a fixed point, scalar declarations and assignments
  whose value is never read, local arrays that are never loaded (with their views and the stores
  into them), and loops and conditionals it leaves empty (an empty loop that was empty already
  or carries attributes, such as the multi-core barrier, stays).  IR expressions have no side effects, so the
  outputs are unchanged (the reference interpreter runs the original kernel; verification compares);
* :func:`unused_parameters` names the parameters the body never mentions, which the emitter
  marks ``(void)name;``.
"""
from __future__ import annotations

from dataclasses import replace

from .ir import Alloc, Assign, Decl, For, If, Kernel, Stmt, Store, View, body_reads, walk_stmts


def _reads(body: tuple[Stmt, ...]) -> tuple[set[str], set[str]]:
    """(scalar names read, buffers loaded) anywhere in ``body``."""
    names, loaded = body_reads(body)
    return set(names), set(loaded)


def _dead_arrays(body: tuple[Stmt, ...], loaded: set[str]) -> set[str]:
    """Local arrays (and their views) whose storage is never loaded through any name."""
    root: dict[str, str] = {}
    allocs: set[str] = set()
    for s in walk_stmts(body):
        if isinstance(s, Alloc):
            allocs.add(s.name)
            root[s.name] = s.name
        elif isinstance(s, View):
            root[s.name] = root.get(s.base, s.base)
    live_roots = {root.get(b, b) for b in loaded}
    return {n for n, r in root.items() if r in allocs and r not in live_roots}


def _sweep(body: tuple[Stmt, ...], dead_scalars: set[str], dead_arrays: set[str]) -> tuple[Stmt, ...]:
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, (Decl, Assign)) and s.name in dead_scalars:
            continue
        if isinstance(s, (Alloc, View)) and s.name in dead_arrays:
            continue
        if isinstance(s, Store) and s.buf in dead_arrays:
            continue
        if isinstance(s, For):
            inner = _sweep(s.body, dead_scalars, dead_arrays)
            if not inner and s.body and not s.attrs:  # emptied here; loops with attributes (e.g. a
                continue                              # multi-core barrier) are kept as they are
            s = replace(s, body=inner)
        elif isinstance(s, If):
            then, orelse = _sweep(s.then, dead_scalars, dead_arrays), _sweep(s.orelse, dead_scalars, dead_arrays)
            if not then and not orelse:
                continue
            s = replace(s, then=then, orelse=orelse)
        out.append(s)
    return tuple(out)


def eliminate_dead_code(kernel: Kernel) -> Kernel:
    """``kernel`` without computations whose results are never used (see the module docstring)."""
    body = kernel.body
    while True:
        names, loaded = _reads(body)
        scalars = {s.name for s in walk_stmts(body) if isinstance(s, (Decl, Assign))}
        new = _sweep(body, scalars - names, _dead_arrays(body, loaded))
        if new == body:
            return replace(kernel, body=body)
        body = new


def unused_parameters(kernel: Kernel) -> list[str]:
    """Parameters and size arguments (in prototype order) that the body never mentions."""
    names, loaded = _reads(kernel.body)
    used = names | loaded
    for s in walk_stmts(kernel.body):
        if isinstance(s, Store):
            used.add(s.buf)
        elif isinstance(s, View):
            used.add(s.base)
    return [n for n in [p.name for p in kernel.params] + list(kernel.sizes) if n not in used]


def unused_warnings(kernel: Kernel) -> list[str]:
    """``file:line:col: warning: …`` lines for what the DSL kernel declares but never uses (the
    generated C drops or voids it; it is still most likely a mistake in the kernel)."""
    names, loaded = _reads(kernel.body)
    dead_arrays = _dead_arrays(kernel.body, loaded)
    out = []
    for s in walk_stmts(kernel.body):
        if isinstance(s, Decl) and s.name not in names:
            out.append((s.loc, f"local '{s.name}' is never read"))
        elif isinstance(s, Alloc) and s.name in dead_arrays:
            out.append((s.loc, f"local array '{s.name}' is never loaded"))
    unused = set(unused_parameters(kernel))
    out += [(p.loc, f"parameter '{p.name}' is never used") for p in kernel.params if p.name in unused]
    return [f"{loc}: warning: {msg}" if loc else f"warning: {msg}" for loc, msg in out]


__all__ = ["eliminate_dead_code", "unused_parameters", "unused_warnings"]
