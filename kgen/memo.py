"""Memoisation of pure functions of immutable values (IR nodes, bodies, index tuples).

The lowering passes ask the same questions about the same subtrees many times (which variables
does this expression read, what does this loop cost), and the unrolled bodies share subtrees, so
answers are worth keeping.  Two forms:

* :func:`per_object` stores the answer in the object's own instance dict (IR nodes are frozen
  dataclasses with a ``__dict__``): it lives exactly as long as the object, needs no bound and
  cannot be confused by a recycled ``id``.  IR nodes drop these entries when pickled
  (:func:`kgen.ir.node`).
* :func:`by_identity` is for values without an instance dict (tuples: bodies, index tuples): a
  table keyed by ``id`` that keeps the object alive beside its answer (so the id stays unique)
  and is emptied when it grows past ``limit`` entries.

Both require the function to be pure in its (immutable) argument and the extra hashable
arguments of :func:`by_identity`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

R = TypeVar("R")
_MISSING: Any = object()

#: Prefix of the instance-dict keys memoised answers are stored under (see kgen.ir.node).
PREFIX = "_kgen_"


def per_object(fn: Callable[[Any], R]) -> Callable[[Any], R]:
    """``fn(x)`` computed once per object ``x`` and kept in ``x.__dict__``."""
    key = f"{PREFIX}{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def memoised(x: Any) -> R:
        d = x.__dict__
        out = d.get(key, _MISSING)
        if out is _MISSING:
            out = d[key] = fn(x)
        return out
    return memoised


def by_identity(limit: int) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """``fn(x, *rest)`` computed once per object ``x`` (by identity) and hashable ``rest``."""
    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        table: dict[Any, tuple[Any, R]] = {}

        @functools.wraps(fn)
        def memoised(x: Any, *rest: Any) -> R:
            key = (id(x), *rest) if rest else id(x)
            hit = table.get(key)
            if hit is not None and hit[0] is x:
                return hit[1]
            out = fn(x, *rest)
            if len(table) >= limit:
                table.clear()
            table[key] = (x, out)
            return out
        memoised.cache_clear = table.clear  # type: ignore[attr-defined]
        return memoised
    return decorate


__all__ = ["PREFIX", "by_identity", "per_object"]
