"""Offline weight packing: the DSL companion kernel, the numpy packer used by the harness, the
generated Python companion and the generated C companion all agree (C run on the host)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kgen.backends import get_backend
from kgen.interp import buffer_shape, run_reference
from kgen.library import builtin_sources
from kgen.release import VariantRequest, companion_source, render_release
from kgen.verify import Target, verify

SOURCES = builtin_sources()


@pytest.mark.parametrize("isa", ["armv7em", "xpulpv2"])
@pytest.mark.parametrize("kernel", ["matmul_nt_s8", "matmul_nn_s8"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 8, 8), (2, 67, 9)])
def test_companions_agree(tmp_path, isa, kernel, shape):
    src = SOURCES[kernel]
    sizes = dict(zip("MKN", shape))
    low = get_backend(isa).lower(src.kernel, sizes)
    ((param, comp),) = low.companions
    w_name = comp.params[0].name
    W = np.random.default_rng(7).integers(-128, 128, buffer_shape(src.kernel.param(w_name), sizes))
    numpy_packed = low.packers[param]({w_name: W})
    dsl_packed = run_reference(comp, {}, {w_name: W})[param]
    assert (numpy_packed == dsl_packed).all()

    files = render_release(isa, [VariantRequest(src, sizes)])
    module_path = tmp_path / "packing.py"
    module_path.write_text(files[f"python/kgen_{isa}_packing.py"])
    spec = importlib.util.spec_from_file_location("packing", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (fn,) = [n for n in dir(module) if n.startswith("kgen_")]
    assert (getattr(module, fn)(W) == numpy_packed).all()

    result = verify(companion_source(src, comp), "generic", {}, Target("host", "gcc", sanitize=True))
    assert result.ok, result.stdout[-1500:]
