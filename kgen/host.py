"""Build and run verification programs on the host (gcc or clang-19, optionally sanitized)."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

from .errors import ToolchainError

WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
COMPILERS = {"gcc": "gcc", "clang": "clang-19"}


@dataclass(frozen=True)
class HostRun:
    exit_code: int
    stdout: str
    stderr: str


def runtime_dir() -> Path:
    return Path(str(resources.files("kgen").joinpath("data", "host")))


def compiler_available(compiler: str) -> bool:
    return shutil.which(COMPILERS[compiler]) is not None


def build_and_run(sources: Sequence[Path], include_dirs: Sequence[Path], workdir: Path,
                  compiler: str = "gcc", sanitize: bool = True, opt: str = "-O2",
                  extra_flags: Sequence[str] = (), timeout: float = 300) -> HostRun:
    """Compile ``sources`` with the host runtime and run the program."""
    exe = workdir / f"test_{compiler}{'_san' if sanitize else ''}"
    cmd = [COMPILERS[compiler], *WARNINGS, opt, "-g", *(SANITIZE if sanitize else []), *extra_flags,
           f"-I{runtime_dir()}", *(f"-I{d}" for d in include_dirs),
           *map(str, sources), str(runtime_dir() / "kgen_harness.c"), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolchainError(f"{' '.join(cmd[:1])} failed:\n{res.stderr.strip()}")
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout, env=env)
    return HostRun(run.returncode, run.stdout, run.stderr)
