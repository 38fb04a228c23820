"""The notebook runner (``diffstyle_lab.lab.run_notebooks``, ``diffstyle-lab notebooks``), its kernels and the
course site's command: parameters, listing, scheduling, quiet runs, copies, errors. The notebooks themselves are
tested in tests/test_notebooks.py; which notebooks there are is read from their metadata
(:mod:`diffstyle_lab.lab.catalogue`, tests/test_catalogue.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"

jupytext = pytest.importorskip("jupytext")
from diffstyle_lab.lab import catalogue  # noqa: E402  (needs jupytext)

INFOS = catalogue.notebooks(NB_DIR)
NAMES = [i.name for i in INFOS]


TINY_HEADER = """# ---
# jupyter:
#   diffstyle_lab:
#     title: {title}
#     teaches: one printed line
#     reading_minutes: 1
#     cpu_s: 0.5
#     quick: {quick}
# ---
"""


def test_runner_passes_only_declared_parameters(tmp_path):
    from diffstyle_lab.lab import run_notebooks as rn
    src = tmp_path / "01_tiny.py"
    src.write_text(TINY_HEADER.format(title="Tiny", quick="{inversion_steps: 8, gammas: [0.0]}")
                   + '# %% tags=["parameters"]\nout_dir = None\ninversion_steps = 20\ngammas = [0.2, 0.4]\n')
    nb = jupytext.read(str(src))
    info = catalogue.read_info(src, nb)
    p = rn.parameters_for(info, nb, quick=True, extra={"gamma": 0.5, "inversion_steps": 12}, out_dir="/x",
                          cache_dir="/c")
    assert "gamma" not in p and "cache_dir" not in p            # it declares neither
    assert p["inversion_steps"] == 12 and p["out_dir"] == "/x"  # extra wins over quick
    assert p["gammas"] == [0.0]                                 # the quick settings of its metadata
    assert rn.parameters_for(info, nb) == {}


def test_runner_cli(capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    assert rn.main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in listed] == NAMES
    assert all(i.heading in ln and str(i.quick) in ln for i, ln in zip(INFOS, listed))
    with pytest.raises(SystemExit):
        rn.main(["--only", "99_nothing"])
    assert rn.build_parser().parse_args(["-p", "gammas=[0.1, 0.2]", "-p", "model=runs/x"]).param == \
        [("gammas", [0.1, 0.2]), ("model", "runs/x")]


def test_cli_forwards_options_to_the_notebook_runner(capsys):
    from diffstyle_lab.cli import main
    assert main(["notebooks", "--list"]) == 0
    out = capsys.readouterr().out
    assert [ln.split(":")[0] for ln in out.splitlines()] == NAMES


def test_runner_schedules_longest_first_on_free_cores(tmp_path, monkeypatch):
    from diffstyle_lab.lab import run_notebooks as rn
    srcs = rn.notebooks()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(rn, "busy_cores", lambda window=0.5: 0.1)
    assert rn.auto_jobs(8) == 2 and rn.auto_jobs(1) == 1
    monkeypatch.setattr(rn, "busy_cores", lambda window=0.5: 1.8)      # busy now: one at a time
    assert rn.auto_jobs(8) == 1
    # the load average is only the fallback where /proc/stat is absent
    monkeypatch.setattr(rn, "busy_cores", lambda window=0.5: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert rn.auto_jobs(8) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (3.7, 3.0, 2.0))
    assert rn.auto_jobs(8) == 1
    # without timings: by the full-run CPU seconds each notebook's metadata states
    order = rn.longest_first(srcs, tmp_path, quick=False)
    costs = [i.cpu_s for i in order]
    assert costs == sorted(costs, reverse=True) and sorted(i.name for i in order) == NAMES
    costliest, cheapest = order[0].name, order[-1].name
    # a previous run's timings (same mode) win over the metadata
    (tmp_path / "timings.json").write_text(json.dumps({"quick": False, "notebooks": [
        {"notebook": n, "wall_s": 100.0 if n == cheapest else 1.0, "ok": True} for n in NAMES]}))
    assert rn.longest_first(srcs, tmp_path, quick=False)[0].name == cheapest
    assert rn.longest_first(srcs, tmp_path, quick=True)[0].name == costliest
    (tmp_path / "timings.json").write_text("{not json")        # unreadable: ignored
    assert rn.longest_first(srcs, tmp_path, quick=False)[0].name == costliest
    text = rn.table([{"notebook": "b", "wall_s": 2.0, "cpu_s": 1.0, "ok": True, "error": None},
                     {"notebook": "a", "wall_s": 3.0, "cpu_s": 1.5, "ok": False, "error": "boom"}])
    assert text.splitlines()[1].startswith("a ") and "FAILED — boom" in text


def test_free_cores_are_read_from_proc_stat(tmp_path, monkeypatch):
    """/proc/stat parsing: busy = all but idle and iowait; two reads over a window give busy cores."""
    from diffstyle_lab.lab import run_notebooks as rn
    text = ("cpu  100 5 45 800 50 0 0 0 0 0\ncpu0 50 2 20 400 25 0 0 0 0 0\n"
            "cpu1 50 3 25 400 25 0 0 0 0 0\nintr 1 2 3\n")
    assert rn.cpu_times(text) == (150.0, 1000.0)
    assert rn.cpu_times("cpu 1 2 3 4\n") == (6.0, 10.0)          # an old kernel with four fields
    with pytest.raises(ValueError):
        rn.cpu_times("intr 1 2\n")
    reads = iter(["cpu  100 0 0 900 0 0 0 0\n", "cpu  175 0 0 925 0 0 0 0\n"])   # 75 of 100 jiffies busy

    class Stat:
        def __init__(self, *a, **k):
            self.text = next(reads)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return self.text
    monkeypatch.setattr("builtins.open", Stat)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert rn.busy_cores(window=0.0) == pytest.approx(3.0)
    monkeypatch.undo()
    assert rn.busy_cores(window=0.0, stat=str(tmp_path / "missing")) is None
    if Path("/proc/stat").exists():
        b = rn.busy_cores(window=0.05)
        assert b is not None and 0.0 <= b <= (os.cpu_count() or 1) + 1e-6


def _runner(args, cwd, timeout=600):
    import subprocess
    return subprocess.run([sys.executable, "-m", "diffstyle_lab.lab.run_notebooks", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


NOISE = ("WARNING", "ERROR", "without encryption", "KeyboardInterrupt", "Traceback")


@pytest.mark.slow
def test_a_clean_run_prints_the_table_and_nothing_else(tmp_path):
    cheapest = min(INFOS, key=lambda i: i.cpu_s).name
    r = _runner(["--quick", "--only", cheapest, "--no-html", "-j", "1", "--out", str(tmp_path / "out")], ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert cheapest in r.stdout and "status" in r.stdout and "0 failed" in r.stdout
    noisy = [ln for ln in (r.stdout + r.stderr).splitlines() if any(w in ln for w in NOISE)]
    assert not noisy, f"a clean run printed {noisy}"


@pytest.mark.slow
def test_a_failing_notebooks_error_is_shown(tmp_path):
    import jupytext
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    (nb_dir / "01_fails.py").write_text(
        TINY_HEADER.format(title="Fails", quick="{}")
        + '# %% tags=["parameters"]\nout_dir = None\n\n# %%\nprint("before")\n\n'
        '# %%\nraise RuntimeError("deliberate failure: the lecturer broke cell 2")\n')
    jupytext.read(str(nb_dir / "01_fails.py"))              # a valid notebook
    r = _runner(["--dir", str(nb_dir), "--no-html", "-j", "1", "--out", str(tmp_path / "out")], tmp_path)
    assert r.returncode == 1
    assert "deliberate failure: the lecturer broke cell 2" in r.stdout + r.stderr
    assert "FAILED" in r.stdout
    assert "without encryption" not in r.stderr


def test_the_kernel_manager_encrypts_and_does_not_interrupt_a_shutdown():
    import asyncio

    import zmq
    from diffstyle_lab.lab.kernel import QuietKernelManager
    km = QuietKernelManager(kernel_name="python3")
    if zmq.has("curve"):
        assert km.transport_encryption == "auto" and km.transport == "tcp"
    else:
        assert km.transport == ("ipc" if os.name == "posix" else "tcp")
    with pytest.raises(RuntimeError):                     # no kernel: an interrupt outside a shutdown is sent
        asyncio.run(km._async_interrupt_kernel())
    km.shutting_down = True
    assert asyncio.run(km._async_interrupt_kernel()) is None


def test_no_notebooks_is_one_line_and_non_zero(tmp_path, monkeypatch, capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    monkeypatch.setattr(rn, "NOTEBOOK_DIR", tmp_path / "none")
    monkeypatch.setattr(rn, "PACKAGED_DIR", tmp_path / "none2")
    for args in (["--list"], ["--quick"], ["--copy", str(tmp_path / "c")]):
        assert rn.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no notebooks found" in err, err
    assert rn.main(["--dir", str(tmp_path), "--list"]) == 2
    assert "--dir" in capsys.readouterr().err


def test_copy_writes_the_notebooks_and_refuses_to_overwrite(tmp_path, capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    dest = tmp_path / "course"
    assert rn.main(["--copy", str(dest)]) == 0
    assert sorted(p.stem for p in dest.glob("*.ipynb")) == NAMES and (dest / "README.md").exists()
    assert sorted(p.stem for p in dest.glob("*.py")) == NAMES
    assert rn.main(["--copy", str(dest)]) == 0              # the same files again: fine
    (dest / f"{NAMES[-1]}.ipynb").write_text("{}")
    capsys.readouterr()
    assert rn.main(["--copy", str(dest)]) == 2
    assert f"{NAMES[-1]}.ipynb" in capsys.readouterr().err
    assert rn.main(["--dir", str(dest), "--list"]) == 0


def test_site_says_what_to_run_when_nothing_was_executed_and_rewrites_links(tmp_path, capsys):
    from diffstyle_lab.cli import main
    from diffstyle_lab.lab import site
    assert main(["site", "--executed", str(tmp_path / "nothing"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diffstyle-lab notebooks --out" in err and not (tmp_path / "s").exists()
    pages = {"01_a.html", "index.html", "method.html"}
    html = site.rewrite_links('<a href="01_a.ipynb">x</a> <a href="README.md#glossary">g</a> '
                              '<a class="k" href="../docs/method.md#2-notation">m</a> <a href="../diffstyle_lab/maths.py">s</a> '
                              '<a href="https://example.org/">e</a> <a href="02_b.ipynb">n</a>', pages)
    assert 'href="01_a.html"' in html and 'href="index.html#glossary"' in html
    assert 'class="k" href="method.html#2-notation"' in html and 'href="https://example.org/"' in html
    assert html.count("data-unlinked=") == 2 and "maths.py" in html        # text kept, no dead link
    assert site.slug("2. Notation and the step — <code>diffstyle_lab/maths.py</code>") == \
        "2-notation-and-the-step--diffstyle_labmathspy"
