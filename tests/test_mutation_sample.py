"""CI's seeded sample of generated mutants (issue 26): mutants that the full run
(``scripts/mutation_run.py``, results in ``docs/mutation/results.json``) saw killed are rerun against the
test that killed each; if one now survives, a test was weakened or removed, and this fails naming it.

``MUTATION_SAMPLE`` (default 8) mutants, seeded by ``MUTATION_SAMPLE_SEED`` (default 26; CI may rotate it).
Bounded: about a minute on one core (each mutant runs one test in a forked child)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import mutation_run as mr

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("MUTATION_SAMPLE", "8"))
SEED = int(os.environ.get("MUTATION_SAMPLE_SEED", "26"))


@pytest.mark.slow
def test_a_seeded_sample_of_killed_mutants_is_still_killed():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "mutation_run.py"), "--verify-killed", str(N),
                        "--seed", str(SEED)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    out = r.stdout + r.stderr[-2000:]
    assert r.returncode == 0, out
    assert sum(line.startswith("killed") or line.startswith("timeout") for line in r.stdout.splitlines()) == N, out


def test_the_record_covers_the_five_modules_and_explains_its_equivalents():
    results = json.loads(mr.RESULTS.read_text())
    modules = {r["module"] for r in results.values()}
    assert set(mr.MODULES) <= modules, modules
    assert {r["status"] for r in results.values()} <= {"killed", "survived", "timeout", "no coverage"}
    for mid, why in mr.load_equivalent().items():
        assert mid in results and results[mid]["status"] != "killed", mid    # an equivalent mutant survives
        assert len(why) > 20, (mid, why)                                      # and says why
