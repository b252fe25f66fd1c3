"""C emission must keep DSL semantics in corner cases found while writing the kernel library."""
from pathlib import Path

import pytest

from kgen.library import load_sources
from kgen.verify import Target, verify

DSL = Path(__file__).parent / "data" / "codegen_regressions.kg"


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_shift_division_and_index_min(compiler):
    src = load_sources([str(DSL)])["bugs"]
    result = verify(src, "generic", {"N": 37}, Target("host", compiler, sanitize=True))
    assert result.ok, result.stdout[-2000:]
