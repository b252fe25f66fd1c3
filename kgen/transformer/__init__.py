"""Tiny-transformer kernel library support: reference configurations, op counts, FWSA, memory peaks.

The kernels themselves are DSL files in ``kernels/`` (``linear_qk_s8``, ``mhsa_depth_first_s8``,
``encoder_block_s8``, ...); this package holds the offline tools around them:

- :mod:`.counts`: MACs and parameter counts read off the kernels' loop nests and buffers;
- :mod:`.fwsa`: Fused-Weight Self-Attention weight fusion and its decision rule (paper §5);
- :mod:`.memory`: static buffer liveness, layer-wise vs depth-first MHSA memory peaks (paper §6).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Config:
    """One reference model configuration (``kernels/configs.toml``)."""

    key: str
    title: str
    S: int
    E: int
    P: int
    H: int
    BLK: int
    blk_choices: tuple[int, ...]
    F: int

    @property
    def dims(self) -> dict[str, int]:
        return {"S": self.S, "E": self.E, "P": self.P, "H": self.H}

    def sizes_for(self, size_symbols: tuple[str, ...]) -> dict[str, int]:
        """Sizes of a library kernel at this configuration: the model dims, F, softmax rows of
        the attention map (R = C = S) and the depth-first blocking (NB = S / BLK query blocks)."""
        known = {**self.dims, "F": self.F, "R": self.S, "C": self.S, "BLK": self.BLK, "NB": self.S // self.BLK}
        missing = [s for s in size_symbols if s not in known]
        if missing:
            raise KeyError(f"configuration '{self.key}' does not define sizes {missing}")
        return {s: known[s] for s in size_symbols}


@lru_cache(maxsize=None)
def load_configs() -> dict[str, Config]:
    """The reference configurations by key (``eeg``, ``ecg``, ``bench``), in file order."""
    text = resources.files("kgen.kernels").joinpath("configs.toml").read_text()
    data = tomllib.loads(text)
    out: dict[str, Config] = {}
    for key, d in data.items():
        cfg = Config(key, d["title"], d["S"], d["E"], d["P"], d["H"], d["BLK"],
                     tuple(d.get("blk_choices", (d["BLK"],))), d["F"])
        if cfg.S % cfg.BLK or any(cfg.S % b for b in cfg.blk_choices):
            raise ValueError(f"configs.toml [{key}]: BLK choices must divide S = {cfg.S}")
        out[key] = cfg
    return out


@lru_cache(maxsize=None)
def library_sources():
    """Every kernel of the shipped library (parsed once per process)."""
    from ..library import builtin_sources

    return builtin_sources()


def library_kernel(name: str):
    """The parsed DSL kernel ``name`` of the shipped library."""
    return library_sources()[name].kernel


__all__ = ["Config", "load_configs", "library_kernel", "library_sources"]
