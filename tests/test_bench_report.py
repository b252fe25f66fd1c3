"""bench/report.py --render-only: Markdown with stack/scratch columns and deterministic PNG plots
from the stored JSON, without simulators; without matplotlib it says so and does not crash."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

REPORT = REPO / "bench" / "report.py"


def render(tmp: Path, out: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPORT), "--render-only", "--results", str(REPO / "bench" / "results"),
                           "--out", str(tmp / out)], capture_output=True, text=True, timeout=300,
                          env=env or dict(os.environ))


def test_render_only_is_deterministic_and_has_plots(tmp_path):
    pytest.importorskip("matplotlib")
    first, second = render(tmp_path, "a"), render(tmp_path, "b")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    md = (tmp_path / "a" / "README.md").read_text()
    assert md == (tmp_path / "b" / "README.md").read_text()
    pngs = sorted(p.name for p in (tmp_path / "a" / "plots").glob("*.png"))
    assert pngs == ["kernels_by_target.png", "matmul_instructions_per_mac.png", "xpulpv2_8core_speedup.png"]
    for name in pngs:
        data = (tmp_path / "a" / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in data and b"matplotlib" not in data.lower()
        assert data == (tmp_path / "b" / "plots" / name).read_bytes(), f"{name} differs between two renders"
        assert f"(plots/{name})" in md
    assert "| stack bytes | scratch bytes |" in md
    assert "bench/report.py: wrote" in first.stderr


def test_committed_report_matches_the_stored_results(tmp_path):
    """bench/README.md and bench/plots/ are what --render-only makes of bench/results/."""
    pytest.importorskip("matplotlib")
    proc = render(tmp_path, "r")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "README.md").read_text() == (REPO / "bench" / "README.md").read_text()
    for png in (tmp_path / "r" / "plots").glob("*.png"):
        committed = REPO / "bench" / "plots" / png.name
        assert committed.is_file() and committed.read_bytes() == png.read_bytes(), png.name


def test_report_without_matplotlib_says_so(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "matplotlib.py").write_text("raise ImportError('no matplotlib here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(REPO)]))
    proc = render(tmp_path, "m", env)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "m" / "README.md").read_text()
    assert "Not generated: matplotlib is not installed" in md and "![" not in md
    assert "plots skipped" in proc.stderr and not (tmp_path / "m" / "plots").exists()
    assert "Traceback" not in proc.stderr
    shutil.rmtree(fake)
