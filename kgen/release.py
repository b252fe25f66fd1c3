"""Releases: every requested kernel variant for one ISA, written atomically with a manifest.

The release is rendered into memory, written into a temporary sibling directory and only then
swapped into place, so an interrupted or failed build leaves the previous release untouched.
Output is a pure function of the DSL sources, the ISA file and the kgen version.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from . import __version__
from .emit import KernelSource, common_header
from .errors import KgenError
from .printer import print_expr
from .report import isa_path, report_files
from .verify import build_variant


@dataclass(frozen=True)
class VariantRequest:
    source: KernelSource
    sizes: dict[str, int]
    cores: int = 1


@dataclass
class RenderedVariant:
    """Everything one variant contributes to its release, as plain (picklable) data."""

    files: dict[str, str]  # relative path -> text, in insertion order
    support: dict[str, str]  # include/<name> -> text of shared support headers
    headers: list[str]
    entry: dict
    python_fns: list[tuple[str, str]]  # (function, text) of packing twins
    isa_hash: str


def render_variant(isa: str, req: VariantRequest) -> RenderedVariant:
    """Lower and emit one variant (kernel, its packing companions, its manifest entry)."""
    lowered, em = build_variant(req.source, isa, req.sizes, req.cores)
    files = {f"include/{em.header_name}": em.header, f"src/{em.source_name}": em.source}
    headers = [em.header_name]
    companions = []
    python_fns: list[tuple[str, str]] = []
    for param, comp in lowered.companions:
        csrc = companion_source(req.source, comp)
        _, cem = emit_companion(csrc, comp, isa, lowered.sizes)
        files[f"include/{cem.header_name}"] = cem.header
        files[f"src/{cem.source_name}"] = cem.source
        headers.append(cem.header_name)
        companions.append({"parameter": param, "function": cem.function, "prototype": cem.prototype + ";",
                           "python": f"python/kgen_{isa}_packing.py:{cem.function}"})
        python_fns.append((cem.function, python_packer(cem.function, comp)))
    k = req.source.kernel
    scratch = None
    if em.scratch is not None:
        scratch = {"get_buffer_size": em.buffer_size_prototype + ";", "bytes": em.scratch.constant,
                   "formula": em.scratch.formula(), "alignment": 8,
                   "arrays": {a.name: {"offset": _plain(a.offset), "bytes": _plain(a.size)}
                              for a in em.scratch.arrays}}
    entry = {
        "name": em.function,
        "kernel": k.name,
        "prototype": em.prototype + ";",
        "header": f"include/{em.header_name}",
        "source": f"src/{em.source_name}",
        "dsl_source": req.source.source_name,
        "dsl_sha256": req.source.source_hash,
        "isa": isa,
        "shape": dict(lowered.sizes) if lowered.sizes else None,
        "shape_symbols": list(k.sizes),
        "shape_constraints": [f"{s} >= 1" for s in k.sizes if s not in lowered.sizes]
        + [print_expr(w) for w in k.where],
        "packed_parameters": sorted(lowered.packers),
        "packing_companions": companions,
        "cores": req.cores,
        "scratch": scratch,
        "scratch_bytes": em.scratch.constant if em.scratch is not None else 0,
        "isa_path": isa_path(lowered.kernel, isa),
        "model": lowered.model or None,
    }
    support = {f"include/{name}": text for name, text in lowered.support_files.items()}
    return RenderedVariant(files, support, headers, entry, python_fns, lowered.isa_hash)


def _timed_renders(isa: str, reqs: list[VariantRequest]) -> list[tuple[RenderedVariant, float]]:
    """:func:`render_variant` of each request, with the seconds it took, one after the other in this
    process (the variants of one kernel and shape for several core counts share their one-core
    lowering, see kgen.backends.xpulpv2)."""
    import time

    out = []
    for req in reqs:
        t0 = time.perf_counter()
        out.append((render_variant(isa, req), time.perf_counter() - t0))
    return out


def _plain(e) -> int | str:
    return int(e) if e.is_Integer else str(e).replace("Round8", "round8")


def _estimated_cost(isa: str, req: VariantRequest) -> float:
    """Relative generation time of a variant before any build has been timed (the longest jobs
    start first): the DSL kernel's statement count, per ISA, more with several cores."""
    from .ir import walk_stmts

    weight = {"generic": 0.005, "armv7em": 0.03, "xpulpv2": 0.08}.get(isa, 0.08)
    stmts = sum(1 for _ in walk_stmts(req.source.kernel.body))
    return weight * stmts * (1.5 if req.cores > 1 else 1.0)


def render_release(isa: str, requests: list[VariantRequest], jobs: int = 1) -> dict[str, str]:
    """All files of a release, relative path -> text (``jobs`` > 1: variants in worker processes)."""
    return render_releases([(isa, requests)], jobs)[isa]


def render_releases(work: list[tuple[str, list[VariantRequest]]], jobs: int = 1) -> dict[str, dict[str, str]]:
    """Several releases at once; one pool of ``jobs`` processes serves all their variants."""
    from .buildpool import cyclic_gc_paused, load_times, map_ordered, save_times

    items = [(isa, req) for isa, reqs in work for req in reqs]
    keys = [f"{isa}:{req.source.kernel.name}:{sorted(req.sizes.items())}:{req.cores}" for isa, req in items]
    times = load_times()
    cost = [times.get(k, _estimated_cost(isa, req)) for k, (isa, req) in zip(keys, items)]
    groups: dict[tuple, list[int]] = {}  # one job per kernel and shape: its core counts, fewest first
    for i, (isa, req) in enumerate(items):
        groups.setdefault((isa, req.source.kernel.name, tuple(sorted(req.sizes.items()))), []).append(i)
    members = [sorted(g, key=lambda i: items[i][1].cores) for g in groups.values()]
    with cyclic_gc_paused():
        done = map_ordered(_timed_renders, [(items[g[0]][0], [items[i][1] for i in g]) for g in members],
                           jobs, [sum(cost[i] for i in g) for g in members])
    timed: list = [None] * len(items)
    for g, results in zip(members, done):
        for i, r in zip(g, results):
            timed[i] = r
    rendered = [r for r, _ in timed]
    if jobs > 1:
        save_times({**times, **{k: s for k, (_, s) in zip(keys, timed)}})
    out = {}
    pos = 0
    for isa, reqs in work:
        out[isa] = assemble_release(isa, rendered[pos:pos + len(reqs)])
        pos += len(reqs)
    return out


def assemble_release(isa: str, variants: list[RenderedVariant]) -> dict[str, str]:
    """Merge rendered variants (in request order) into the files of one release."""
    files: dict[str, str] = {"include/kgen_common.h": common_header()}
    entries = []
    headers: list[str] = []
    python_fns: list[str] = []
    isa_hash = ""
    for v in variants:
        isa_hash = v.isa_hash or isa_hash
        header, source = v.entry["header"], v.entry["source"]
        if source in files:
            raise KgenError(f"two variants produce the same function {v.entry['name']}")
        files[header] = v.files[header]
        files[source] = v.files[source]
        for rel, text in v.support.items():
            if files.setdefault(rel, text) != text:
                raise KgenError(f"{rel}: two different support headers share this name")
        for rel, text in v.files.items():  # packing companions
            if rel not in (header, source):
                files[rel] = text
        headers.extend(v.headers)
        for function, text in v.python_fns:
            if all(not f.startswith(f"def {function}(") for f in python_fns):  # same packing for 1 and N cores
                python_fns.append(text)
        entries.append(v.entry)
    umbrella = [f"/* kgen_{isa}.h: generated by kgen {__version__}; every kernel of this release. */",
                f"#ifndef KGEN_{isa.upper()}_H", f"#define KGEN_{isa.upper()}_H", ""]
    umbrella += [f'#include "{h}"' for h in headers] + ["", f"#endif /* KGEN_{isa.upper()}_H */", ""]
    umbrella_path = f"include/kgen_{isa}.h"
    if umbrella_path in files:
        raise KgenError(f"{umbrella_path}: the release header collides with a support header of the same name")
    files[umbrella_path] = "\n".join(umbrella)
    if python_fns:
        files[f"python/kgen_{isa}_packing.py"] = python_module(isa, python_fns)
    sources = sorted(f for f in files if f.startswith("src/"))
    files["CMakeLists.txt"] = cmake_file(isa, sources)
    files["kgen.mk"] = make_fragment(isa, sources)
    if isa == "xpulpv2":
        files["gap_sdk.mk"] = gap_sdk_fragment(isa, sources)
    manifest = {"kgen_version": __version__, "isa": isa, "isa_sha256": isa_hash or None, "kernels": entries}
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    files.update(report_files(isa, entries))
    return files


def companion_source(parent: KernelSource, comp) -> KernelSource:
    """A packing companion is a DSL kernel too; its printed text is its source."""
    import hashlib

    from .printer import print_kernel

    text = print_kernel(comp)
    return KernelSource(comp, f"{parent.source_name} (packing companion)", hashlib.sha256(text.encode()).hexdigest())


def emit_companion(src: KernelSource, comp, isa: str, sizes: dict[str, int]):
    from .emit import emit_kernel

    return None, emit_kernel(src, comp, isa, sizes)


def python_packer(function: str, comp) -> str:
    """A numpy twin of a packing companion, generated from the same DSL kernel."""
    from .ir import For

    src, dst = comp.params
    dims = []
    loop = comp.body[0]
    while isinstance(loop, For):
        dims.append(loop.var)
        loop = loop.body[0]
    store = loop.then[0]
    from .printer import print_expr

    cond = " & ".join(f"({print_expr(c)})" for c in (loop.cond.a, loop.cond.b))
    src_index = ", ".join(print_expr(i) for i in store.value.a.index)
    shape = ", ".join(print_expr(d) for d in dst.shape)
    grid = ", ".join(dims)
    return (f"def {function}({src.name}: np.ndarray) -> np.ndarray:\n"
            f'    """{comp.doc.splitlines()[0] if comp.doc else "Packing companion."}"""\n'
            f"    {src.name} = np.asarray({src.name})\n"
            f"    {grid} = np.meshgrid(*(np.arange(d) for d in ({shape},)), indexing='ij')\n"
            f"    inside = ({cond})\n"
            f"    out = np.zeros(({shape},), dtype=np.{dst.type.ctype.removesuffix('_t')})\n"
            f"    out[inside] = {src.name}[{', '.join(f'({x})[inside]' for x in src_index.split(', '))}]\n"
            f"    return out\n")


def python_module(isa: str, functions: list[str]) -> str:
    head = (f'"""Offline weight packing for the kgen {isa} release (generated by kgen {__version__}; do not edit).\n\n'
            f"Each function is the numpy twin of the C packing companion of the same name.\n\"\"\"\n"
            "import numpy as np\n\n\n")
    return head + "\n\n".join(functions)


def cmake_file(isa: str, sources: list[str]) -> str:
    srcs = "\n".join(f"  {s}" for s in sources)
    return (f"# Generated by kgen {__version__}; do not edit.  add_subdirectory() this folder and link kgen_{isa}.\n"
            "cmake_minimum_required(VERSION 3.13)\n"
            f"project(kgen_{isa} C)\n"
            f"add_library(kgen_{isa} STATIC\n{srcs}\n)\n"
            f"target_include_directories(kgen_{isa} PUBLIC ${{CMAKE_CURRENT_SOURCE_DIR}}/include)\n"
            f"set_property(TARGET kgen_{isa} PROPERTY C_STANDARD 99)\n")


def make_fragment(isa: str, sources: list[str]) -> str:
    var = f"KGEN_{isa.upper()}"
    srcs = " \\\n".join(f"  $({var}_DIR){s}" for s in sources)
    return (f"# Generated by kgen {__version__}; do not edit.  In a Makefile:  include path/to/kgen.mk\n"
            f"# then add $({var}_SRCS) to the sources and $({var}_CFLAGS) to CFLAGS.\n"
            f"{var}_DIR := $(dir $(lastword $(MAKEFILE_LIST)))\n"
            f"{var}_SRCS := \\\n{srcs}\n"
            f"{var}_CFLAGS := -I$({var}_DIR)include\n")


def gap_sdk_fragment(isa: str, sources: list[str]) -> str:
    """A fragment for a GAP SDK (PMSIS) application Makefile (APP_SRCS / APP_CFLAGS)."""
    var = f"KGEN_{isa.upper()}"
    srcs = " \\\n".join(f"  $({var}_DIR){s}" for s in sources)
    return (f"# Generated by kgen {__version__}; do not edit.  In a GAP SDK (PMSIS) application Makefile,\n"
            "# before `include $(RULES_DIR)/pmsis_rules.mk`:\n"
            "#     include path/to/gap_sdk.mk\n"
            "# It adds the kernels to APP_SRCS and to APP_CFLAGS the include path, -DKGEN_PMSIS (kgen_core_id() and\n"
            "# kgen_barrier() become pi_core_id() and pi_cl_team_barrier()) and -DKGEN_PULP_BUILTINS (PULP GCC's\n"
            f"# __builtin_pulp_* for the XpulpV2 instructions; set {var}_PULP_BUILTINS = 0 before the include to\n"
            "# get the .insn inline-assembly spelling instead).  _c8 kernels run on the cluster: call them from\n"
            "# a function that pi_cl_team_fork(8, ...) runs on every core, with the same arguments on each.\n"
            f"{var}_DIR := $(dir $(lastword $(MAKEFILE_LIST)))\n"
            f"{var}_PULP_BUILTINS ?= 1\n"
            f"APP_SRCS += \\\n{srcs}\n"
            f"APP_CFLAGS += -I$({var}_DIR)include -DKGEN_PMSIS\n"
            f"ifeq ($({var}_PULP_BUILTINS),1)\n"
            "APP_CFLAGS += -DKGEN_PULP_BUILTINS\n"
            "endif\n")


def write_atomically(out: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` into ``out``, replacing its previous content only once all are written."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for rel, text in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if out.exists() and _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous release
            return
        old = None
        if out.exists():  # no atomic exchange on this system: two renames, undone on interruption
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rmdir(old)
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            if old is not None and not out.exists():
                os.replace(old, out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False when unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def differences(out: Path, files: Mapping[str, str]) -> list[str]:
    """Paths whose content differs between ``out`` and ``files`` (for ``kgen build --check``)."""
    diffs = []
    existing = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} if out.exists() else set()
    for rel, text in files.items():
        p = out / rel
        if not p.exists():
            diffs.append(f"missing: {rel}")
        elif p.read_text() != text:
            diffs.append(f"differs: {rel}")
    for rel in sorted(existing - set(files)):
        diffs.append(f"extra: {rel}")
    return diffs
