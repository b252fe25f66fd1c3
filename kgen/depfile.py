"""Make-style dependency files for ``kgen build --depfile PATH``.

A release is a pure function of the DSL sources, the ISA files, ``kernels/variants.toml``, the
jinja2 templates and kgen's own generator code.  The depfile names all of them as prerequisites
of each release's ``manifest.json`` (written last-but-atomically with the whole release), so a
Makefile rule whose target is that manifest regenerates exactly when an input changed::

    generated/armv7em/manifest.json:
    	python3 -m kgen build --isa armv7em --depfile generated/armv7em.d
    -include generated/armv7em.d

Paths are relative to the current directory (where ``make`` runs), sorted, and ``\\``-escaped
where make needs it; every prerequisite also gets an empty rule (as ``gcc -MP``), so deleting a
file does not break the build.  The simulator code (``kgen/sim``) and the verification runtimes
are not inputs of a release and are not listed.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterable

_EXCLUDED_DIRS = {"sim", "__pycache__"}


def _package_files() -> list[Path]:
    root = Path(str(resources.files("kgen")))
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if not p.is_file() or _EXCLUDED_DIRS & set(rel.parts[:-1]):
            continue
        if p.suffix == ".py" or (rel.parts[:2] == ("data", "templates")):
            out.append(p)
    return out


def _resource_files(package: str, suffixes: tuple[str, ...]) -> list[Path]:
    """Files of a data package and its subfolders (e.g. isa/platforms/) with these suffixes."""
    root = Path(str(resources.files(package)))
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def release_inputs(user_dsl: Iterable[str] = ()) -> list[Path]:
    """Every file a release is generated from."""
    files = _package_files()
    files += _resource_files("kgen.kernels", (".kg", ".toml", ".json"))
    files += _resource_files("kgen.isa", (".toml",))
    files += _resource_files("kgen.grammar", (".lark",))
    files += [Path(p) for p in user_dsl]
    return files


def _make_path(p: Path, base: Path) -> str:
    rel = os.path.relpath(os.path.abspath(p), base)
    return rel.replace("\\", "/").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def render_depfile(targets: Iterable[Path], user_dsl: Iterable[str] = (), base: Path | None = None) -> str:
    """The depfile text: ``target: inputs`` for each target, then one empty rule per input."""
    base = Path(base or os.getcwd()).resolve()
    deps = sorted({_make_path(p, base) for p in release_inputs(user_dsl)})
    lines = []
    for t in sorted(_make_path(Path(t), base) for t in targets):
        lines.append(f"{t}: \\")
        lines.extend(f"  {d} \\" for d in deps[:-1])
        lines.append(f"  {deps[-1]}")
    lines.append("")
    lines.extend(f"{d}:" for d in deps)
    return "\n".join(lines) + "\n"


def write_depfile(path: Path, text: str) -> None:
    """Write ``path`` atomically (a reader never sees half a depfile)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
