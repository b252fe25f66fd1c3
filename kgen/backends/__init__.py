"""ISA backends: each turns a DSL kernel into the IR that is emitted for its target.

A backend returns a :class:`Lowered` kernel: the IR to print as C, the sizes it is specialised for,
extra headers it needs, and *packers* for parameters that the lowered kernel takes in a different
form than the DSL kernel (offline weight packing), computed from the DSL kernel's arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

import numpy as np

from ..errors import KgenError
from ..ir import Kernel

Packer = Callable[[Mapping[str, object]], np.ndarray]


@dataclass(frozen=True)
class Lowered:
    kernel: Kernel
    sizes: dict[str, int]
    includes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    packers: dict[str, Packer] = field(default_factory=dict)
    isa_hash: str = ""
    #: extra files (name -> text) the kernel needs in include/ (intrinsic layer headers)
    support_files: dict[str, str] = field(default_factory=dict)
    #: local arrays whose adjacent packed loads are emitted as one 64-bit load
    paired: frozenset[str] = frozenset()
    #: macro placed before the function definition (e.g. KGEN_REGISTER_BLOCKED)
    qualifier: str = ""
    #: packing companions: (packed parameter, DSL kernel that computes it from the original argument)
    companions: tuple[tuple[str, Kernel], ...] = ()
    #: the cost model's view of this lowering (schedule, predicted counts, formulas); set by
    #: :class:`kgen.model.auto.AutoBackend`, empty for backends used directly
    model: dict = field(default_factory=dict)


class Backend(Protocol):
    name: str
    specializes: bool  # True when kernels are generated per concrete shape

    def lower(self, kernel: Kernel, sizes: Mapping[str, int]) -> Lowered: ...


def raw_backend_class(isa: str) -> Callable[..., Backend]:
    """The backend class of ``isa`` itself (its constructor takes ``tile``/``k_unroll``/``cores``)."""
    from .generic import GenericBackend

    backends: dict[str, Callable[..., Backend]] = {"generic": GenericBackend}
    try:
        from .armv7em import ArmBackend

        backends["armv7em"] = ArmBackend
    except ImportError:
        pass
    try:
        from .xpulpv2 import XpulpBackend

        backends["xpulpv2"] = XpulpBackend
    except ImportError:
        pass
    if isa not in backends:
        raise KgenError(f"unknown ISA '{isa}'; available: {', '.join(sorted(backends))}")
    return backends[isa]


def get_backend(isa: str, cores: int = 1, tile: tuple[int, int] | None = None,
                k_unroll: int | None = None) -> Backend:
    """The backend kgen uses: the ISA's, with the schedule chosen by the model (kgen.model.auto)
    unless ``tile``/``k_unroll`` force it, refusing accumulations that can overflow."""
    cls = raw_backend_class(isa)
    if cores != 1:
        if isa != "xpulpv2":
            raise KgenError(f"--cores {cores}: ISA '{isa}' has a single core")
        if cores < 1:
            raise KgenError(f"--cores must be >= 1, got {cores}")
    from ..model.auto import AutoBackend

    return AutoBackend(isa, cores, cls, tile, k_unroll)  # type: ignore[return-value]
