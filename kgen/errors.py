"""User-facing errors: every one names a file position and renders like a compiler diagnostic."""
from __future__ import annotations

from .ir import Loc


class KgenError(Exception):
    """An error in user input (DSL, ISA file, command line); the CLI prints it and exits 2."""

    def __init__(self, message: str, loc: Loc | None = None, source: str | None = None,
                 notes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.source = source
        self.notes = notes

    def __reduce__(self):  # keep the location when the error crosses a process boundary
        return (type(self), (self.message, self.loc, self.source, self.notes))

    def render(self) -> str:
        """``file:line:col: error: message``, the offending line and a caret under the column."""
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.loc and self.source is not None:
            src_lines = self.source.splitlines()
            if 1 <= self.loc.line <= len(src_lines):
                text = src_lines[self.loc.line - 1].expandtabs(1)
                lines.append(f"  {text}")
                lines.append("  " + " " * (max(self.loc.col, 1) - 1) + "^")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class VerificationError(Exception):
    """Generated code disagreed with the reference (CLI exit status 1)."""


class ToolchainError(Exception):
    """A compiler, simulator or other external tool failed or is missing."""
