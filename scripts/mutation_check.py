"""Would the tests catch a wrong method? Apply each one-line mistake to a copy of the package, run
the tests on the copy, and print whether some test failed (docs/method.md §11).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/mutation_check.py [pytest args; default tests/test_reference.py]

The working tree is never modified: each mutation is written into a temporary copy of
``diffstyle_lab/`` that the test run (a child process) imports instead of the installed package: a finder
first on its ``sys.meta_path`` finds ``diffstyle_lab`` in the copy (sys.path is not touched).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diffstyle_lab.fileio import write_text

ROOT = Path(__file__).resolve().parents[1]
MUTATIONS = [
    ("symmetric step (P_t and D_t from ε̃)", "maths.py",
     "return ddim_step(pred_x0(x_t, eps_tilde, a_t), eps, a_prev, sigma, noise)",
     "return ddim_step(pred_x0(x_t, eps_tilde, a_t), eps_tilde, a_prev, sigma, noise)"),
    ("P_t and D_t swapped", "maths.py",
     "return ddim_step(pred_x0(x_t, eps_tilde, a_t), eps, a_prev, sigma, noise)",
     "return ddim_step(pred_x0(x_t, eps, a_t), eps_tilde, a_prev, sigma, noise)"),
    ("no normalisation of P̃ in calibration", "maths.py",
     "p_tilde = normalise_like(pred_x0(x_t, eps_tilde, a_t), p)",
     "p_tilde = pred_x0(x_t, eps_tilde, a_t)"),
    ("mask_norm ignored", "sampling.py",
     'method = "slerp" if cfg.mask_norm == "none" and cfg.method == "normalised_slerp" else cfg.method',
     "method = cfg.method"),
    ("σ dropped from D_t in boosted steps", "maths.py",
     "max(0.0, 1 - a_prev - sigma ** 2) ** 0.5 * eps",
     "max(0.0, 1 - a_prev) ** 0.5 * eps"),
    ("t ≥ t_edit written t > t_edit", "sampling.py",
     "editing = content is not None and t >= cfg.t_edit and t in inject_ts",
     "editing = content is not None and t > cfg.t_edit and t in inject_ts"),
]

WRONG_IMPORT = 97          # the runner's exit status when it did not import the copy (not a caught mistake)
# the child: diffstyle_lab from the copy (sys.argv[1]), ahead of sys.path and the editable install; then pytest
RUNNER = f"""import importlib.machinery, sys
copy = sys.argv[1]
class FromCopy:
    @staticmethod
    def find_spec(name, path=None, target=None):
        return importlib.machinery.PathFinder.find_spec(name, [copy]) if name == "diffstyle_lab" else None
sys.meta_path.insert(0, FromCopy)
import diffstyle_lab
if not diffstyle_lab.__file__.startswith(copy):
    sys.exit({WRONG_IMPORT})
import pytest
sys.exit(pytest.main(["-q", "-x", "-p", "no:cacheprovider", "--tb=line"] + sys.argv[2:]))
"""


def main(args: list[str]) -> int:
    tests = args or ["tests/test_reference.py"]
    missed = 0
    print("| mistake | result | pytest | first failure |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DIFFSTYLE_LAB_DATA": str(ROOT / "data")}
        for name, file, old, new in MUTATIONS:
            pkg = Path(tmp) / "diffstyle_lab"
            shutil.rmtree(pkg, ignore_errors=True)
            shutil.copytree(ROOT / "diffstyle_lab", pkg, ignore=shutil.ignore_patterns("__pycache__"))
            src = (pkg / file).read_text()
            if src.count(old) != 1:
                raise SystemExit(f"{file}: the line to mutate for {name!r} is not there once; update {__file__}")
            write_text(pkg / file, src.replace(old, new))
            t0 = time.time()
            r = subprocess.run([sys.executable, "-c", RUNNER, tmp, *tests], capture_output=True, text=True, env=env,
                               cwd=ROOT)
            if r.returncode == WRONG_IMPORT:
                raise SystemExit("the tests imported diffstyle_lab from elsewhere, not the mutated copy")
            lines = r.stdout.strip().splitlines()
            first = next((ln for ln in lines if "Error" in ln and "tests/" in ln), "")
            caught = r.returncode == 1
            missed += not caught
            print(f"| {name} | {'caught' if caught else 'NOT CAUGHT'} | {lines[-1] if lines else r.returncode} "
                  f"({time.time() - t0:.0f} s) | {first.split('/tests/')[-1][:140]} |", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
