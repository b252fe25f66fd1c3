"""The table-driven library softmax computes exactly the direct per-element I-BERT form."""
from pathlib import Path

import numpy as np
import pytest

from kgen.interp import run_reference
from kgen.library import builtin_sources
from kgen.parser import parse_kernels

DIRECT = parse_kernels((Path(__file__).parent / "data" / "softmax_direct.kg").read_text(), "softmax_direct.kg")[0]
TABLE = builtin_sources()["softmax_s8_u8"].kernel

PARAMS = [dict(a=1, b=0, c=1, log2=1), dict(a=16, b=255, c=65536, log2=127), dict(a=1, b=81, c=3127, log2=23),
          dict(a=16, b=0, c=65536, log2=1), dict(a=3, b=255, c=1, log2=64)]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
@pytest.mark.parametrize("R,C", [(3, 1), (2, 7), (4, 64), (1, 2048)])
def test_table_form_equals_direct_form(params, R, C):
    rng = np.random.default_rng(R * 1000 + C)
    X = rng.integers(-128, 128, size=(R, C))
    X[0, :] = rng.choice([-128, 127], size=C)  # extremes: differences of 255 and 0
    args = dict(X=X, **params)
    sizes = dict(R=R, C=C)
    np.testing.assert_array_equal(run_reference(TABLE, sizes, args)["Y"], run_reference(DIRECT, sizes, args)["Y"])


def test_row_length_limit_is_declared():
    """The uint32 row sum is exact only for C <= 2048; the kernel says so in a where-constraint."""
    with pytest.raises(ValueError):
        run_reference(TABLE, dict(R=1, C=2049), dict(X=np.zeros((1, 2049), dtype=int), a=1, b=0, c=1, log2=1))


def test_softmax_64x64_instructions_per_element_on_cortex_m4():
    """Issue #5's target: <= 20 instructions per element for 64 rows × 64 (gcc -O3, Cortex-M4;
    CMSIS-NN arm_softmax_s8: 523.5), exact counts from the QEMU plugin."""
    from kgen.verify import Target, verify

    src = builtin_sources()["softmax_s8_u8"]
    r = verify(src, "armv7em", dict(R=64, C=64), Target("qemu", "gcc", "cortex-m4", "-O3"), modes=("random",))
    assert r.ok
    assert r.region_instructions[0] / (64 * 64) <= 20.0
