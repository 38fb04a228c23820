"""The CPU path of the prepared GPU check (benchmarks/gpu_check.sh, issue 14 §3): a tiny random
U-Net, 4 steps, batch 1 and 2, and notebook 01 --quick on it — the same script a session lent a
GPU runs once (there with the 256-px layout at batch 1 and 8 and all notebooks)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_path_writes_its_numbers(tmp_path):
    out = tmp_path / "gpu_check"
    env = dict(os.environ, GPU_CHECK_CPU="1", OUT=str(out), PYTHON=sys.executable, OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert {f.name for f in out.iterdir()} == {"gpu_check.txt", "bench_b1.txt", "bench_b2.txt", "notebooks.txt",
                                               "notebooks_timings.json"}
    for b in (1, 2):
        text = (out / f"bench_b{b}.txt").read_text()
        s = re.search(r"^summary: device=cpu .* batch=(\d+) steps=4: images/s plain DDIM ([\d.]+), injection ([\d.]+), "
                      r"injection\+calibration ([\d.]+); ratio vs naive ([\d.]+) \(injection\), ([\d.]+)", text, re.M)
        assert s, text[-2000:]
        assert int(s.group(1)) == b and all(float(s.group(k)) > 0 for k in range(2, 7))
        assert "same image" in text            # ours and the naive path agree
    t = json.loads((out / "notebooks_timings.json").read_text())
    assert [r["notebook"] for r in t["notebooks"]] == ["01_tour_of_h_space"] and t["ok"] and t["quick"]
    log = (out / "gpu_check.txt").read_text()
    assert "all steps passed" in log and "device cpu" in log
