"""Work counts of a kernel at concrete sizes: multiply-accumulates and output elements."""
from __future__ import annotations

from typing import Mapping

from .interp import buffer_extent
from .ir import Kernel


def macs(kernel: Kernel, sizes: Mapping[str, int]) -> int:
    """Multiply-accumulates of one call (the IR walker of :mod:`kgen.transformer.counts`)."""
    from .transformer.counts import macs as count_macs

    return count_macs(kernel, sizes)


def output_elements(kernel: Kernel, sizes: Mapping[str, int]) -> int:
    return sum(buffer_extent(p, sizes) for p in kernel.buffers if p.direction != "in")
