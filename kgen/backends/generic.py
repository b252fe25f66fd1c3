"""Portable C99 backend: the DSL kernel as written, sizes as run-time arguments."""
from __future__ import annotations

from typing import Mapping

from ..ir import Kernel
from . import Lowered


class GenericBackend:
    name = "generic"
    specializes = False

    def lower(self, kernel: Kernel, sizes: Mapping[str, int]) -> Lowered:
        return Lowered(kernel, {})
