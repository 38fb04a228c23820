"""Generated mutants of the method's modules, run against the fast tests (issue 26).

    .venv/bin/python scripts/mutation_run.py                    # every mutant (long: run it with nohup)
    .venv/bin/python scripts/mutation_run.py --sample 200 --seed 1 --time-limit 3000
    .venv/bin/python scripts/mutation_run.py --report           # the table of docs/mutation/results.json

The mutants are **mutmut's** (v3): its libcst operators (``mutmut.mutation.file_mutation.create_mutations``:
numbers, strings, names, comparison/arithmetic/boolean operators, arguments, keywords, assignments, …),
applied one at a time inside functions and methods of ``maths.py``, ``sampling.py``, ``config.py``,
``hooks.py`` and ``cache.py`` — the same mutants ``mutmut run`` would make. The *runner* is ours, because
mutmut's does not work well here:

* ``mutmut run`` copies the project into ``mutants/`` and needs the tests to import the package from there,
  but this checkout is an editable install whose import hook finds the working tree, and pytest's
  ``pythonpath = ["."]`` puts the working tree first on sys.path; its configuration lives in ``[tool.mutmut]`` of
  pyproject.toml, which this project keeps to packaging;
* it first runs every selected test under its own tracer to map tests to functions, then needs a clean
  ``mutants/`` tree per run; on this 2-core machine shared with training runs that is the slow part;
* it has no seeded sample of mutants, which CI needs (tests/test_mutation_sample.py).

(cosmic-ray would need a session database and its own worker set-up for the same three points.)

How it runs: the fast tests are run once under coverage with one context per test (``--map``, in a child
process), which gives for every line the tests that execute it, and their durations. The parent imports
torch, diffusers and pytest once; for each mutant it writes the mutated module into a private copy of the
package and forks: the child imports the package from the copy (a finder first on ``sys.meta_path``, ahead of
sys.path and the editable install; sys.path is not touched) and runs only the tests that cover the
mutated lines, fastest first, stopping at the first failure (``-x``), under a timeout (twice their
measured time + 20 s). Exit 1 (a test failed) or a collection error: **killed** (the test that failed is
recorded); 0: **survived**; the alarm: **timeout**; no test covers the line: **no coverage** (a survivor).

``docs/mutation/results.json`` holds every mutant's outcome by a stable id (module, function, the line
before and after, occurrence), ``docs/mutation/equivalent.md`` the survivors explained as equivalent
(``id: reason`` lines); the report counts killed / survived / timeout per module and the share of the
non-equivalent mutants killed. CI (tests/test_mutation_sample.py) reruns a seeded sample of the killed
mutants against the test that killed each, and fails if one survives.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from diffstyle_lab.fileio import read_json, sha256_hex, write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["maths.py", "sampling.py", "config.py", "hooks.py", "cache.py"]
FAST_TESTS = ["tests/test_maths.py", "tests/test_sampling.py", "tests/test_hooks.py", "tests/test_cache.py",
              "tests/test_reference.py", "tests/test_properties.py", "tests/test_split_forward.py",
              "tests/test_faults.py", "tests/test_notebooks.py::test_block_table_shapes_are_the_blocks_outputs",
              "tests/test_notebooks.py::test_measures_and_layout"]
RESULTS = ROOT / "docs" / "mutation" / "results.json"
EQUIVALENT = ROOT / "docs" / "mutation" / "equivalent.md"
MAP = Path(tempfile.gettempdir()) / "diffstyle_lab-mutation" / "coverage_map.json"


@dataclass
class Mutant:
    id: str            # stable: module, function, the node before → after, its line's text, occurrence
    module: str
    function: str
    line: int          # first line (1-based) of the mutated node in the original
    lines: list        # every line of the mutated node
    before: str        # the node's source
    after: str         # what replaces it
    _make: object = None

    @property
    def code(self) -> str:
        """The whole mutated module (rendered when needed: rendering all of them takes minutes)."""
        return self._make()

    def show(self) -> str:
        return f"{self.module}:{self.line} `{' '.join(self.before.split())[:90]}` → `{' '.join(self.after.split())[:90]}`"


def mutants(modules=MODULES) -> list[Mutant]:
    """Every mutant mutmut makes inside functions and methods of ``modules`` (in file order)."""
    import mutmut.configuration as mc
    mc._guess_source_paths = lambda: ["diffstyle_lab"]      # mutmut asks for its config; we only use operators
    from libcst import FunctionDef
    from libcst.metadata import MetadataWrapper, PositionProvider
    from mutmut.mutation.file_mutation import create_mutations, deep_replace
    out = []
    for mod in modules:
        code = (ROOT / "diffstyle_lab" / mod).read_text()
        tree, found, _, _ = create_mutations(mod, code)
        pos = MetadataWrapper(tree, unsafe_skip_copy=True).resolve(PositionProvider)
        src = code.splitlines()
        seen: dict = {}
        for mu in found:
            if not isinstance(mu.contained_by_top_level_function, FunctionDef):   # mutmut: functions, methods
                continue
            r = pos[mu.original_node]
            before, after = tree.code_for_node(mu.original_node), tree.code_for_node(mu.mutated_node)
            if before == after:
                continue
            fn = mu.contained_by_top_level_function.name.value
            base = f"{mod}|{fn}|{' '.join(src[r.start.line - 1].split())}|{before}|{after}"
            seen[base] = seen.get(base, 0) + 1
            mid = f"{mod[:-3]}-{sha256_hex(f'{base}|{seen[base]}')[:10]}"
            out.append(Mutant(mid, mod, fn, r.start.line, list(range(r.start.line, r.end.line + 1)), before, after,
                              lambda t=tree, a=mu.original_node, b=mu.mutated_node: deep_replace(t, a, b).code))
    return out


# ---------------------------------------------------------------------------------------------
# The coverage map: which tests execute which lines (run in a child: it imports the working tree)

MAP_RUNNER = r"""
import json, sys, time, coverage, pytest
files = json.loads(sys.argv[1]); out = sys.argv[2]; tests = sys.argv[3:]
cov = coverage.Coverage(include=files, data_file=None)
durations = {}
class Contexts:
    def pytest_runtest_setup(self, item):
        cov.switch_context(item.nodeid); item._t0 = time.perf_counter()
    def pytest_runtest_teardown(self, item):
        durations[item.nodeid] = time.perf_counter() - item._t0
cov.start()
rc = pytest.main(["-q", "-p", "no:cacheprovider", *tests], plugins=[Contexts()])
cov.stop()
data = cov.get_data()
lines = {}
for f in data.measured_files():
    by = data.contexts_by_lineno(f)
    lines[f.rsplit("/", 1)[-1]] = {str(k): sorted(c for c in v if c) for k, v in by.items()}
from diffstyle_lab.fileio import write_json   # after cov.stop(): the map is the tests' alone
write_json(out, {"rc": int(rc), "durations": durations, "lines": lines}, indent=None)
"""


def build_map(tests=FAST_TESTS) -> dict:
    import subprocess
    MAP.parent.mkdir(parents=True, exist_ok=True)
    files = [str(ROOT / "diffstyle_lab" / m) for m in MODULES]
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", MAP_RUNNER, json.dumps(files), str(MAP), *tests], cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode:
        raise SystemExit(f"the coverage run failed (exit {r.returncode}); no map written")
    m = read_json(MAP, fix="; rerun with --remap")
    if m["rc"]:
        raise SystemExit(f"the fast tests fail on the unmutated code (pytest exit {m['rc']}); fix them first")
    print(f"coverage map: {len(m['durations'])} tests, {time.time() - t0:.0f} s", flush=True)
    return m


def tests_for(mu: Mutant, cov: dict) -> list[str]:
    """The tests that execute the mutated lines, fastest first."""
    by_line = cov["lines"].get(mu.module, {})
    ids = {t for ln in mu.lines for t in by_line.get(str(ln), [])}
    for ln in range(mu.lines[-1] + 1, mu.lines[-1] + 30):   # a `def` line runs at import: take its body's tests
        if ids:
            break
        ids = set(by_line.get(str(ln), []))
    return sorted(ids, key=lambda t: (cov["durations"].get(t, 99.0), t))


# ---------------------------------------------------------------------------------------------
# Running one mutant: write it into the private copy, fork, import from the copy, run pytest

WRONG_IMPORT = 97
SANITY = "tests/test_maths.py"
CHILD_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "--tb=no", "-o", "addopts="]


class Runner:
    """A private copy of the package; ``run(mutant, tests, timeout)`` → (status, killer, seconds)."""

    def __init__(self):
        import numpy  # noqa: F401  (imported once in the parent; the children inherit them)
        import torch
        torch.set_num_threads(1)
        import diffusers  # noqa: F401
        import hypothesis  # noqa: F401
        import pytest  # noqa: F401
        import safetensors.torch  # noqa: F401
        self.tmp = Path(tempfile.mkdtemp(prefix="mutation-"))
        self.pkg = self.tmp / "diffstyle_lab"
        shutil.copytree(ROOT / "diffstyle_lab", self.pkg, ignore=shutil.ignore_patterns("__pycache__"))
        self.original = {m: (self.pkg / m).read_text() for m in MODULES}
        status, why, _ = self.run(None, [SANITY], 300)      # the unmutated copy passes, from the copy
        if status != "survived":
            raise SystemExit(f"the unmutated package fails {SANITY} in the runner ({status}: {why})")

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, mu: Mutant | None, tests: list[str], timeout: float):
        if mu is not None:
            write_text(self.pkg / mu.module, mu.code)
        report = self.tmp / "killer.txt"
        report.unlink(missing_ok=True)
        t0 = time.time()
        pid = os.fork()
        if pid == 0:                                        # the child: never returns
            code = 3
            try:
                signal.alarm(int(timeout) + 1)
                code = _child(self.tmp, tests, report)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if mu is not None:
            write_text(self.pkg / mu.module, self.original[mu.module])
        dt = time.time() - t0
        if os.WIFSIGNALED(status):
            return ("timeout" if os.WTERMSIG(status) == signal.SIGALRM else "killed"), \
                f"signal {os.WTERMSIG(status)}", dt
        rc = os.WEXITSTATUS(status)
        if rc == WRONG_IMPORT:
            raise SystemExit("the tests imported diffstyle_lab from the working tree, not the mutant's copy")
        killer = report.read_text() if report.exists() else ""
        if rc == 0:
            return "survived", "", dt
        if rc in (4, 5):                                    # pytest: usage error / no tests ran
            return "missing test", f"pytest exit {rc}: the tests asked for are not there", dt
        return "killed", killer or f"pytest exit {rc}", dt


class FromCopy:
    """A finder, first on ``sys.meta_path``, that finds ``diffstyle_lab`` in ``root`` (ahead of every sys.path
    entry, the working tree that pytest's ``pythonpath`` adds included, and of the editable install's finder);
    the package's submodules are then found through its own ``__path__``, in the copy."""

    def __init__(self, root: Path):
        self.root = str(root)

    def find_spec(self, name, path=None, target=None):
        if name != "diffstyle_lab":
            return None
        return importlib.machinery.PathFinder.find_spec(name, [self.root])


def _child(tmp: Path, tests: list[str], killer_file: Path) -> int:
    """In the forked child: import the package from the copy, run ``tests``; the first failure's id is
    written to ``killer_file``."""
    import contextlib
    import io
    sys.meta_path.insert(0, FromCopy(tmp))
    tests_dir = str(ROOT / "tests")
    for name, mod in list(sys.modules.items()):             # the package, and tests that imported it
        if name == "diffstyle_lab" or name.startswith("diffstyle_lab.") or \
                str(getattr(mod, "__file__", "") or "").startswith(tests_dir):
            del sys.modules[name]
    os.chdir(ROOT)
    os.environ["DIFFSTYLE_LAB_DATA"] = str(ROOT / "diffstyle_lab" / "data")
    import pytest

    class Killer:
        @staticmethod
        def pytest_runtest_logreport(report):
            if report.failed and not killer_file.exists():
                write_text(killer_file, report.nodeid)

        @staticmethod
        def pytest_collectreport(report):
            if report.failed and not killer_file.exists():
                write_text(killer_file, f"collection: {report.nodeid}")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = pytest.main([*CHILD_ARGS, *tests], plugins=[Killer()])
    import diffstyle_lab
    if not diffstyle_lab.__file__.startswith(str(tmp)):     # the tests must have seen the mutant
        return WRONG_IMPORT
    return int(rc)


# ---------------------------------------------------------------------------------------------
# Results, equivalents, report

def load_results() -> dict:
    return read_json(RESULTS) if RESULTS.exists() else {}


def save_results(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS, dict(sorted(results.items())), indent=1, ensure_ascii=False)


def load_equivalent() -> dict[str, str]:
    """``{mutant id: why it is equivalent}`` from the ``- `id`: reason`` lines of docs/mutation/equivalent.md."""
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.startswith("- `") and "`:" in line:
                mid, why = line[3:].split("`:", 1)
                out[mid] = why.strip()
    return out


def report(results: dict, equivalent: dict, out=sys.stdout) -> dict:
    rows = {}
    for r in results.values():
        row = rows.setdefault(r["module"], {"killed": 0, "timeout": 0, "survived": 0, "no coverage": 0,
                                              "equivalent": 0})
        status = "equivalent" if r["id"] in equivalent and r["status"] != "killed" else r["status"]
        row[status] += 1
    total = {k: sum(r[k] for r in rows.values()) for k in ("killed", "timeout", "survived", "no coverage",
                                                           "equivalent")}
    print("| module | killed | timeout | survived | no coverage | equivalent | killed of non-equivalent |",
          file=out)
    print("|---|---|---|---|---|---|---|", file=out)
    for name, r in sorted(rows.items()) + [("**all**", total)]:
        non_eq = r["killed"] + r["timeout"] + r["survived"] + r["no coverage"]
        share = (r["killed"] + r["timeout"]) / non_eq if non_eq else float("nan")
        print(f"| {name} | {r['killed']} | {r['timeout']} | {r['survived']} | {r['no coverage']} | "
              f"{r['equivalent']} | {100 * share:.1f} % |", file=out)
    return total


def verify_killed(n: int, seed: int) -> int:
    """CI: a seeded sample of ``n`` mutants recorded as killed, each rerun against the test that killed it.
    Exit 0 if every one is still killed, 1 if one survives (the tests were weakened), 2 if the record is stale."""
    results = load_results()
    current = {m.id: m for m in mutants()}
    pool = sorted(mid for mid, r in results.items()
                  if r["status"] == "killed" and mid in current and "::" in r["killer"])
    if len(pool) < n:
        print(f"only {len(pool)} recorded kills match the current code; rerun scripts/mutation_run.py", flush=True)
        return 2
    runner = Runner()
    survivors = []
    try:
        for mid in random.Random(seed).sample(pool, n):
            r = results[mid]
            status, _, dt = runner.run(current[mid], [r["killer"]], 300)
            print(f"{status:9s} {dt:5.1f} s  {current[mid].show()}  by {r['killer']}", flush=True)
            if status in ("survived", "missing test"):    # the killing test was weakened, skipped or removed
                survivors.append(f"{current[mid].show()} ({status}; was killed by {r['killer']})")
    finally:
        runner.close()
    for line in survivors:
        print(f"SURVIVED: {line}", flush=True)
    return 1 if survivors else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", nargs="*", default=MODULES)
    ap.add_argument("--sample", type=int, default=0, help="run a seeded random sample of this many mutants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=0, help="stop after this many seconds (0: none)")
    ap.add_argument("--remap", action="store_true", help="rebuild the coverage map")
    ap.add_argument("--only-missing", action="store_true", help="skip mutants that have a result already")
    ap.add_argument("--report", action="store_true", help="print the table of the stored results and exit")
    ap.add_argument("--retry", action="store_true",
                    help="rerun only the recorded survivors (after new tests: with --remap)")
    ap.add_argument("--verify-killed", type=int, default=0, metavar="N",
                    help="CI: rerun N recorded kills (seeded by --seed) against their killing test")
    a = ap.parse_args(argv)
    if a.verify_killed:
        return verify_killed(a.verify_killed, a.seed)
    equivalent = load_equivalent()
    results = load_results()
    if a.report:
        report(results, equivalent)
        return 0
    ms = mutants(a.modules)
    print(f"{len(ms)} mutants in {', '.join(a.modules)}", flush=True)
    if a.only_missing:
        ms = [m for m in ms if m.id not in results]
    if a.retry:
        ms = [m for m in ms if results.get(m.id, {}).get("status") in ("survived", "no coverage")]
    if a.sample:
        ms = random.Random(a.seed).sample(ms, min(a.sample, len(ms)))
    cov = build_map() if a.remap or not MAP.exists() else read_json(MAP, fix="; rerun with --remap")
    runner = Runner()
    t_start = time.time()
    try:
        for i, mu in enumerate(ms):
            if a.time_limit and time.time() - t_start > a.time_limit:
                print(f"time limit reached after {i} mutants", flush=True)
                break
            tests = tests_for(mu, cov)
            if not tests:
                status, killer, dt = "no coverage", "", 0.0
            else:
                budget = 2 * sum(cov["durations"].get(t, 5.0) for t in tests) + 20
                status, killer, dt = runner.run(mu, tests, budget)
                if status == "missing test":
                    raise SystemExit(f"{killer} ({tests[:3]}…): rebuild the coverage map (--remap)")
            results[mu.id] = {"id": mu.id, "module": mu.module, "function": mu.function, "line": mu.line,
                              "before": mu.before.strip(), "after": mu.after.strip(), "status": status,
                              "killer": killer, "tests": len(tests), "seconds": round(dt, 2)}
            print(f"[{i + 1}/{len(ms)}] {status:11s} {dt:6.1f} s  {mu.id}  {mu.show()}", flush=True)
            if i % 10 == 0 or i == len(ms) - 1:
                save_results(results)
    finally:
        runner.close()
        save_results(results)
    report({k: v for k, v in results.items() if k in {m.id for m in ms}} if a.sample else results, equivalent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
