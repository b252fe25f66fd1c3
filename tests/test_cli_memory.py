"""`kgen memory`: the MHSA memory-peak report on the command line and as JSON."""
import json
import subprocess
import sys


def test_memory_report_cli(tmp_path):
    out = tmp_path / "mem.json"
    res = subprocess.run([sys.executable, "-m", "kgen", "memory", "--json", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "| ecg |" in res.stdout and "| eeg |" in res.stdout and "| bench |" in res.stdout
    report = json.loads(out.read_text())
    for cfg in ("eeg", "ecg", "bench"):
        assert {"peak_layerwise_bytes", "peak_depth_first_bytes"} <= set(report[cfg])
    assert report["ecg"]["peak_layerwise_bytes"] >= 7 * report["ecg"]["peak_depth_first_bytes"]
