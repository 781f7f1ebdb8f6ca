"""bench/gpu.sh: on a machine without an NVIDIA GPU it stops at once with one line; its plumbing runs on the CPU."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_without_a_gpu_it_says_what_is_missing_in_one_line():
    res = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench/gpu: ") and "NVIDIA" in lines[0], res.stderr


@pytest.mark.slow
def test_cpu_smoke_run_writes_every_figure(tmp_path):
    out = tmp_path / "gpu.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--cpu-smoke", "--out", str(out)], check=True,
                   timeout=300, capture_output=True)
    doc = json.loads(out.read_text())
    assert doc["synth"]["views"] > 0 and doc["train"]["samples_per_s_median"] > 0
    assert 0 <= doc["train"]["data_wait_share_median"] <= 1
    assert {r["config"] for r in doc["model"]} >= {"paper"}
