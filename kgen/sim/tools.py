"""Running external tools with errors that say what failed and how."""
from __future__ import annotations

import subprocess

from ..errors import ToolchainError


def run_tool(cmd: list[str], what: str) -> None:
    """Run ``cmd``; raise :class:`ToolchainError` with the command and its stderr when it fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ToolchainError(f"{what}: {cmd[0]} not found") from exc
    if proc.returncode != 0:
        raise ToolchainError(f"{what} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n{proc.stderr}")
