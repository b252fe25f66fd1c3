"""docs/tutorial.md cannot rot: its files are written to a temporary directory and every `$ `
command of its `sh` blocks runs there, in order; the lines shown after a command must appear in
its output (digits may differ, `…` stands for any text)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

TUTORIAL = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.M | re.S)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in BLOCK.finditer(TUTORIAL.read_text())]


def expected_pattern(line: str) -> re.Pattern:
    parts = [re.sub(r"\d+", r"\\d+", re.escape(p)) for p in line.strip().split("…")]
    return re.compile(".*".join(parts))


def steps() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) in the order of the page."""
    out: list[tuple[str, list[str]]] = []
    for info, body in blocks():
        if info != "sh":
            continue
        for line in body.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif line.strip():
                out[-1][1].append(line)
    return out


def test_tutorial_shape():
    names = [info.split("file=")[1] for info, _ in blocks() if "file=" in info]
    assert names == ["relu_rescale_s8.kg", "my_variants.toml"]
    cmds = [c for c, _ in steps()]
    for verb in ("kgen check", "kgen verify", "kgen build", "kgen bench"):
        assert any(verb in c for c in cmds), verb
    assert "docs/tutorial.md" in (REPO / "README.md").read_text()


def test_tutorial_commands_work_as_written(tmp_path):
    from kgen.sim import arm, riscv

    if not (arm.tools_available() and riscv.tools_available()):
        pytest.skip("the tutorial runs on QEMU and Spike too")
    for info, body in blocks():
        if "file=" in info:
            (tmp_path / info.split("file=")[1]).write_text(body)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for cmd, expected in steps():
        if cmd.startswith("python3 "):
            cmd = f"{shlex.quote(sys.executable)} {cmd[len('python3 '):]}"
        proc = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
        for line in expected:
            assert expected_pattern(line).search(proc.stdout), f"{cmd}: expected\n  {line}\nin\n{proc.stdout}"
    assert (tmp_path / "my_release.d").read_text().startswith("my_release/armv7em/manifest.json: \\")
    assert (tmp_path / "relu.json").is_file()


def test_the_error_example_is_what_kgen_check_prints(tmp_path):
    dsl = next(body for info, body in blocks() if info == "kgen file=relu_rescale_s8.kg")
    (tmp_path / "bad.kg").write_text(dsl.replace("max(i32(X[r, c]), 0)", "max(i32(X[r, c + 1]), 0)"))
    shown = next(body for info, body in blocks() if info == "text")
    proc = subprocess.run([sys.executable, "-m", "kgen", "check", "bad.kg"], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert proc.returncode == 2
    assert [ln.rstrip() for ln in proc.stderr.strip().splitlines()] == [ln.rstrip() for ln in shown.strip().splitlines()]
