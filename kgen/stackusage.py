"""Stack frame of a generated kernel, as the target compiler reports it (``-fstack-usage``).

The kernel's own C file is compiled once more, alone, with the flags of the measured build plus
``-fstack-usage``; gcc and clang both write ``<object>.su`` with one line per function:
``file:line[:col]:function<TAB>bytes<TAB>static|dynamic[,bounded]``.  The figure covers the
function's frame (its helpers are static inline and inlined); kgen kernels call nothing else.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from .verify import Target


def compile_command(kernel_c: Path, inc: Path, obj: Path, target: Target) -> list[str]:
    """The compiler and flags of ``target``'s build, for one object with stack-usage output."""
    if target.kind == "qemu":
        from .sim import arm

        t = arm.ArmTarget(cpu=target.cpu, compiler=target.compiler, opt=target.opt)
        cc = arm.GCC if target.compiler == "gcc" else arm.CLANG
        flags = arm.cflags(t)
    elif target.kind == "spike":
        from .sim import riscv

        cc, flags = riscv.CLANG, riscv.cflags(riscv.RiscvTarget(opt=target.opt, cores=target.cores))
    else:
        from .host import COMPILERS

        cc, flags = COMPILERS[target.compiler], ["-std=c99", target.opt]
    return [cc, *flags, f"-I{inc}", "-fstack-usage", "-c", str(kernel_c), "-o", str(obj)]


def parse_su(text: str, function: str) -> tuple[int, str] | None:
    """(bytes, qualifier) of ``function`` in a ``.su`` file, or None when it is not listed."""
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0].rsplit(":", 1)[-1] == function:
            return int(parts[1]), parts[2].strip()
    return None


def stack_usage(kernel_c: Path, inc: Path, target: Target) -> tuple[int, str] | None:
    """Stack bytes of the public function defined in ``kernel_c`` (named like the file)."""
    with tempfile.TemporaryDirectory(prefix="kgen-su-") as tmp:
        obj = Path(tmp) / "kernel.o"
        proc = subprocess.run(compile_command(kernel_c, inc, obj, target), capture_output=True, text=True)
        su = obj.with_suffix(".su")
        if proc.returncode != 0 or not su.exists():
            return None
        return parse_su(su.read_text(), kernel_c.stem)
