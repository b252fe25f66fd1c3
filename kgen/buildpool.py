"""Run independent generation jobs on several cores, results in submission order.

Workers are forked from the parent, so they share its parsed kernels and imported modules
(no re-import, no re-parse); results travel back pickled.  With ``jobs <= 1``, one item, or no
``fork`` start method, everything runs in this process.  Output never depends on ``jobs``.
"""
from __future__ import annotations

import gc
import json
import multiprocessing
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_JOB: tuple[Callable, Sequence] | None = None  # set before forking; read by the workers


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (forked workers inherit it).

    Lowering builds millions of short-lived, acyclic IR nodes while the memo tables keep large
    trees alive, so each full collection scans a big heap for nothing: with the collector running,
    a whole release took ~1.6x the CPU time.  Reference counting still frees everything that is
    not in a cycle; the collector runs again (and catches up) on exit."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def default_jobs() -> int:
    """Cores this process may use (``KGEN_JOBS`` overrides)."""
    env = os.environ.get("KGEN_JOBS")
    if env and env.isdigit() and int(env) >= 1:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _run(i: int):
    fn, items = _JOB  # type: ignore[misc]
    return fn(*items[i])


def map_ordered(fn: Callable[..., R], items: Sequence[tuple], jobs: int = 1,
                priority: Sequence[float] | None = None) -> list[R]:
    """``[fn(*item) for item in items]``, spread over ``jobs`` forked processes.

    Items are started in order of decreasing ``priority`` (expected cost: starting the longest
    jobs first balances the cores); results are returned in the order of ``items``."""
    global _JOB
    if jobs <= 1 or len(items) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(*item) for item in items]
    order = list(range(len(items)))
    if priority is not None:
        order.sort(key=lambda i: -priority[i])
    _JOB = (fn, items)
    try:
        ctx = multiprocessing.get_context("fork")
        results: list = [None] * len(items)
        with ctx.Pool(min(jobs, len(items))) as pool:
            for i, r in zip(order, pool.imap(_run, order, chunksize=1)):
                results[i] = r
        return results
    finally:
        _JOB = None


def _times_file() -> Path:
    env = os.environ.get("KGEN_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "kgen") / "build-times.json"


def load_times() -> dict[str, float]:
    """Seconds each variant took in the last build (only used to order work; never affects output)."""
    try:
        data = json.loads(_times_file().read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def save_times(times: dict[str, float]) -> None:
    path = _times_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({k: round(v, 3) for k, v in sorted(times.items())}))
        os.replace(tmp, path)
    except OSError:
        pass
