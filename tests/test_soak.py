"""Concurrency soak (issue 26): N ``diffstyle-lab inject`` processes into one output folder (and a second
folder), all sharing one inversion cache, killed (SIGKILL) at random moments, then resumed.

Properties: every process exits 0, exits 2 with one line saying the folder is in use, or was killed; after
the resume every pair has exactly one output whose SHA-256 is the manifest's, byte-identical to an
uninterrupted run; no temporary file, no lock file is left; every cache entry verifies.

Bounded: ``ROUNDS`` rounds of ``N`` processes (each with a 180 s timeout), then one resume per folder; the
random moments are seeded (``SOAK_SEED``). About a minute on two loaded cores, hence ``slow``."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_workspace

ROUNDS = int(os.environ.get("SOAK_ROUNDS", "2"))
N = int(os.environ.get("SOAK_PROCESSES", "4"))
SEED = int(os.environ.get("SOAK_SEED", "26"))
STEPS = ["--steps", "20", "--inversion-steps", "20", "--t-edit", "400", "--t-boost", "200"]


def _argv(ws, out, cache):
    return [sys.executable, "-m", "diffstyle_lab.cli", "inject", "--content", str(ws / "content"),
            "--style", str(ws / "style"), "--model", str(ws / "model"), "--device", "cpu", "--quiet",
            "--batch", "2", "--out", str(out), "--cache", str(cache), *STEPS]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _verify(out: Path, pairs: int) -> dict:
    """The finished folder: one verified output per pair, nothing partial, no lock. Returns {name: bytes}."""
    from diffstyle_lab.cli import LOCK_NAME, file_sha256
    man = json.loads((out / "manifest.json").read_text())
    made = sorted(p.name for p in out.glob("*__*.png"))
    assert sorted(man["pairs"]) == made and len(made) == pairs, (made, sorted(man["pairs"]))
    for name, e in man["pairs"].items():
        assert file_sha256(out / name) == e["sha256"], name
    left = sorted(p.name for p in out.iterdir() if p.name == LOCK_NAME or ".tmp" in p.name)
    assert left == [], left
    return {n: (out / n).read_bytes() for n in made}


@pytest.mark.slow
def test_killed_and_resumed_runs_leave_one_verified_output_per_pair(tmp_path):
    import numpy as np
    from PIL import Image
    ws = cli_workspace(tmp_path / "ws")
    for k in (2, 3):                                       # 4 content × 2 style: the lock is held for seconds
        Image.fromarray((np.random.RandomState(k).rand(16, 16, 3) * 255).astype(np.uint8)).save(
            ws / "content" / f"c{k}.png")
    pairs = 4 * 2
    outs, cache = [tmp_path / "out", tmp_path / "out_b"], tmp_path / "cache"
    rng = random.Random(SEED)
    counts = {"started": 0, "killed": 0, "exit 0": 0, "exit 2 (in use)": 0}
    t0 = time.time()
    for _ in range(ROUNDS):
        procs = []
        for i in range(N):
            out = outs[i % 2]                              # two writers per folder, all on one cache
            p = subprocess.Popen(_argv(ws, out, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=_env())
            kill_at = time.time() + rng.uniform(1.0, 15.0) if rng.random() < 0.5 else None
            procs.append((p, kill_at))
            counts["started"] += 1
        deadline = time.time() + 180
        while any(p.poll() is None for p, _ in procs) and time.time() < deadline:
            for p, kill_at in procs:
                if kill_at is not None and p.poll() is None and time.time() >= kill_at:
                    p.send_signal(signal.SIGKILL)
            time.sleep(0.05)
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
            _, err = p.communicate()
            if p.returncode == -signal.SIGKILL:
                counts["killed"] += 1
            elif p.returncode == 0:
                counts["exit 0"] += 1
            else:
                lines = err.strip().splitlines()
                assert p.returncode == 2 and len(lines) == 1 and "in use" in lines[0], (p.returncode, err)
                counts["exit 2 (in use)"] += 1
    for out in outs:                                       # the resume: one uninterrupted run per folder
        r = subprocess.run(_argv(ws, out, cache), capture_output=True, text=True, env=_env(), timeout=300)
        assert r.returncode == 0, r.stderr
    ref = tmp_path / "reference"                           # an uninterrupted run without the cache
    r = subprocess.run(_argv(ws, ref, "off"), capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    expected = _verify(ref, pairs)
    for out in outs:
        assert _verify(out, pairs) == expected             # byte-identical to the uninterrupted run
    from diffstyle_lab import InversionCache
    assert InversionCache(cache).verify() == []            # every entry verifies, no partial file
    entries = InversionCache(cache).size()["entries"]
    assert entries == 4 + 2                                # one entry per input image
    print(f"\nsoak: {counts}, cache entries {entries}, {time.time() - t0:.0f} s")
    assert counts["started"] == ROUNDS * N and counts["killed"] + counts["exit 0"] + counts["exit 2 (in use)"] == \
        counts["started"]
