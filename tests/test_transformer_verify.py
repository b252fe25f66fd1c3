"""Tiny-transformer kernels compiled for the host (generic C, gcc with ASan+UBSan) and compared
bit-exactly with the reference interpreter on the case generator's cases (random, full-range, min,
max and alternating fills; scalars at random values and at both ends of their declared ranges).

The compiles run two at a time (the verify helper only waits on subprocesses).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kgen.host import compiler_available
from kgen.transformer import library_sources
from kgen.verify import Target, describe_failure, verify

GCC = Target("host", "gcc", sanitize=True)
CLANG = Target("host", "clang", sanitize=True)

ODD = dict(S=5, E=7, H=2, P=3)
BLOCKED = dict(NB=5, BLK=1, E=7, H=2, P=3)  # mhsa_s8 and encoder_block_s8 take S = NB·BLK
JOBS: list[tuple[str, dict[str, int], Target]] = [
    ("linear_qk_s8", ODD, GCC),
    ("linear_vt_s8", ODD, GCC),
    ("linear_o_s8", ODD, GCC),
    ("softmax_s8_u8", dict(R=3, C=7), GCC),
    ("softmax_s8_u8", dict(R=1, C=1), GCC),
    ("mhsa_scores_s8", dict(H=2, S=5, P=3), GCC),
    ("mhsa_scores_softmax_s8", dict(H=2, NB=5, BLK=1, P=3), GCC),
    ("mhsa_scores_softmax_s8", dict(H=2, NB=2, BLK=3, P=3), GCC),
    ("mhsa_av_s8", dict(H=2, S=5, P=3), GCC),
    ("mhsa_depth_first_s8", dict(H=2, NB=3, BLK=2, P=3), GCC),
    ("mhsa_depth_first_s8", dict(H=1, NB=5, BLK=1, P=1), GCC),
    ("mhsa_s8", BLOCKED, GCC),
    ("mhsa_s8", dict(BLOCKED, NB=2, BLK=3), GCC),
    ("gelu_s8", dict(S=3, F=5), GCC),
    ("layernorm_s8", dict(S=3, E=7), GCC),
    ("add_requant_s8", dict(S=3, E=5), GCC),
    ("encoder_block_s8", dict(BLOCKED, F=6), GCC),
    ("fwsa_scores_softmax_s8", dict(S=5, E=7, H=2), GCC),
]
if compiler_available("clang"):
    JOBS += [("softmax_s8_u8", dict(R=3, C=7), CLANG), ("layernorm_s8", dict(S=3, E=7), CLANG),
             ("encoder_block_s8", dict(BLOCKED, F=6), CLANG)]


def _id(job) -> str:
    name, sizes, target = job
    return f"{name}-{target.compiler}-" + "".join(f"{k}{v}" for k, v in sizes.items())


@pytest.fixture(scope="module")
def results():
    sources = library_sources()

    def one(job):
        name, sizes, target = job
        return verify(sources[name], "generic", sizes, target, seed=3)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(map(_id, JOBS), pool.map(one, JOBS)))


@pytest.mark.parametrize("job", JOBS, ids=_id)
def test_host_sanitized_bit_exact(job, results):
    r = results[_id(job)]
    assert r.ok, describe_failure(r, library_sources()[job[0]])
    assert len(r.report.summaries) >= 5  # every generated case ran


def test_every_transformer_kernel_is_verified():
    from test_transformer_kernels import KERNELS

    assert set(KERNELS) <= {name for name, _, _ in JOBS}
