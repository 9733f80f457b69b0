"""benchmarks/gpu_check.sh: skips cleanly without a GPU, and its sections run (on the CPU
at toy sizes with --allow-cpu) so that a session lent a GPU does not find it broken."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import require_shared

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would run, not skip")
def test_gpu_check_skips_cleanly_without_a_gpu():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipped: no CUDA GPU" in done.stdout


def test_gpu_check_fidelity_section_runs_and_judges():
    fixtures = require_shared("fixtures", "reference")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--allow-cpu", "--sections",
                           "fidelity", "--fixtures", str(fixtures)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    figures = dict(re.findall(r"(\w+)=(\S+)", summary))
    assert figures["fidelity_status"] == "ok" and figures["fidelity"] == "ok", done.stdout
    assert float(figures["fidelity_max_abs_diff"]) <= 1e-4
    assert 1e-4 < float(figures["bf16_max_abs_diff"]) < 0.1  # bf16 really ran, and stays close
    for layout in ("v1_tiny", "v2_tiny", "latest_tiny"):
        assert f"  {layout}: " in done.stdout
