"""The notebooks' catalogue (:mod:`diffstyle_lab.lab.catalogue`): each notebook's metadata is read strictly,
the pairs carry the same metadata, notebooks/README.md's table is the metadata's, a new notebook pair is picked
up by the runner, the site and the README table with no other edit, and no list of notebook names creeps back
into the package, its tests or its scripts."""

from __future__ import annotations

import ast
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"

jupytext = pytest.importorskip("jupytext")
from diffstyle_lab.lab import catalogue  # noqa: E402  (needs jupytext)

INFOS = catalogue.notebooks(NB_DIR)


def _pair(folder: Path, name: str, meta: str, body: str = "") -> Path:
    """A notebook pair ``name.py`` + ``name.ipynb`` in ``folder``, with ``meta`` (YAML lines of the
    ``diffstyle_lab`` block, indented by two spaces) as its header."""
    head = "\n".join(f"#     {ln}" for ln in meta.strip().splitlines())
    src = folder / f"{name}.py"
    src.write_text(f"# ---\n# jupyter:\n#   diffstyle_lab:\n{head}\n# ---\n\n" + (body or (
        '# %% tags=["parameters"]\nout_dir = None\nn = 5\n\n# %%\nprint("Measured on", n, "items")\n')))
    jupytext.write(jupytext.read(str(src)), str(src.with_suffix(".ipynb")))
    return src


TINY = """title: Hello, catalogue
teaches: that a new notebook needs only its own pair
reading_minutes: 2
cpu_s: 1.5
quick: {n: 2}"""


# ---------------------------------------------------------------------------------------------
# the checkout's notebooks

def test_each_pair_carries_the_same_metadata():
    for i in INFOS:
        py, nb = jupytext.read(str(i.path)), jupytext.read(str(i.path.with_suffix(".ipynb")))
        assert py.metadata[catalogue.KEY] == nb.metadata[catalogue.KEY], \
            f"{i.path.name}: its .ipynb carries other metadata; run `jupytext --sync {i.path.name}`"
        assert "diffstyle_lab" in nb.metadata["jupytext"]["notebook_metadata_filter"], i.name
    assert 'notebook_metadata_filter = "diffstyle_lab,-all"' in (ROOT / "jupytext.toml").read_text()


def test_the_readme_table_is_the_metadatas():
    assert catalogue.readme_table_problem(NB_DIR, INFOS) is None


def test_setup_copies_exactly_the_catalogues_pairs():
    """setup.py copies the course into the wheel by pattern (its build has no jupytext to read metadata):
    the patterns pick every pair of the catalogue and the README, nothing else; MANIFEST.in ships the same."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    course = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "COURSE")
    copied = {f.name for pattern in course for f in NB_DIR.glob(pattern)}
    assert copied == {f"{i.name}{s}" for i in INFOS for s in (".py", ".ipynb")} | {"README.md"}
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert all(f"notebooks/{pattern}" in manifest for pattern in course)


# ---------------------------------------------------------------------------------------------
# strict reading: one line naming the file and the key

@pytest.mark.parametrize("meta, says", [
    (TINY.replace("reading_minutes: 2\n", ""), "lacks `reading_minutes`"),
    (TINY.replace("cpu_s: 1.5", "cpu_s: fast"), "`diffstyle_lab.cpu_s` is 'fast', expected a number > 0"),
    (TINY.replace("reading_minutes: 2", "reading_minutes: true"), "expected a whole number > 0"),
    (TINY + "\ntitel: typo", "unknown key `titel`"),
    (TINY.replace("{n: 2}", "{n: 2, steps: 4}"), "`diffstyle_lab.quick` names `steps`, which its parameters cell"),
    (TINY + "\nneeds: [content_dir]", "`diffstyle_lab.needs` names `content_dir`"),
    (TINY + "\nprerequisites: 01_a", "expected a list of names"),
])
def test_invalid_metadata_is_one_line_naming_the_file_and_the_key(tmp_path, meta, says):
    src = _pair(tmp_path, "01_tiny", meta)
    with pytest.raises(catalogue.CatalogueError) as e:
        catalogue.read_info(src)
    msg = str(e.value)
    assert says in msg and str(src) in msg and "\n" not in msg, msg


def test_missing_block_bad_name_duplicate_number_and_late_prerequisite(tmp_path):
    (tmp_path / "01_bare.py").write_text('# %%\nprint("no header")\n')
    with pytest.raises(catalogue.CatalogueError, match=r"01_bare.py: no `diffstyle_lab:` block .* title, teaches"):
        catalogue.read_info(tmp_path / "01_bare.py")
    with pytest.raises(catalogue.CatalogueError, match="not a course notebook name"):
        catalogue.read_info(_pair(tmp_path, "intro", TINY))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _pair(a, "01_one", TINY), _pair(a, "01_two", TINY)
    with pytest.raises(catalogue.CatalogueError, match="01_two.py: number 01 is taken by 01_one"):
        catalogue.notebooks(a)
    _pair(b, "01_one", TINY + "\nprerequisites: [02_two]"), _pair(b, "02_two", TINY)
    with pytest.raises(catalogue.CatalogueError, match="01_one.py: prerequisite `02_two` is not an earlier"):
        catalogue.notebooks(b)


def test_a_notebook_without_metadata_stops_the_runner_with_one_line(tmp_path, capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    _pair(tmp_path, "01_tiny", TINY.replace("teaches: that a new notebook needs only its own pair\n", ""))
    assert rn.main(["--dir", str(tmp_path), "--list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "01_tiny.py" in err and "lacks `teaches`" in err, err


# ---------------------------------------------------------------------------------------------
# a new notebook: its pair and nothing else

@pytest.fixture
def course_with_a_new_notebook(tmp_path):
    """A copy of notebooks/ (the pairs and the README) with one more pair, numbered after the last."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for i in INFOS:
        for f in (i.path, i.path.with_suffix(".ipynb")):
            shutil.copyfile(f, folder / f.name)
    shutil.copyfile(NB_DIR / "README.md", folder / "README.md")
    name = f"{INFOS[-1].order + 1:02d}_hello"
    _pair(folder, name, TINY + f"\nprerequisites: [{INFOS[0].name}]",
          body=f'# %% [markdown]\n# # {INFOS[-1].order + 1:02d} · Hello, catalogue\n\n'
               '# %% tags=["parameters"]\nout_dir = None\nn = 5\n\n# %%\nprint("Measured on", n, "items")\n')
    return folder, name


def test_a_new_notebook_is_in_the_catalogue_the_list_and_the_readme_table(course_with_a_new_notebook, capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    folder, name = course_with_a_new_notebook
    infos = catalogue.notebooks(folder)
    assert [i.name for i in infos] == [i.name for i in INFOS] + [name]
    new = infos[-1]
    assert new.quick == {"n": 2} and new.prerequisites == (INFOS[0].name,) and new.heading.endswith("Hello, catalogue")
    assert rn.main(["--dir", str(folder), "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[-1].startswith(f"{name}: {new.heading}; parameters {{'out_dir': None, 'n': 5}}; quick {{'n': 2}}")
    assert [i.name for i in rn.longest_first(infos, folder, quick=False)][-1] == name     # the cheapest: last
    # the README table is generated, not edited by hand: the check names the new row, the writer adds it
    problem = catalogue.readme_table_problem(folder)
    assert problem and name in problem and "--write-readme" in problem
    assert catalogue.main([str(folder), "--write-readme"]) == 0
    assert catalogue.readme_table_problem(folder) is None
    assert f"| {new.order:02d} | `{name}` | that a new notebook needs only its own pair | 1.5 s |" in \
        (folder / "README.md").read_text()
    # what setup.py copies into the wheel, and --copy, take the pair too
    dest = folder.parent / "copied"
    assert rn.main(["--dir", str(folder), "--copy", str(dest)]) == 0
    assert (dest / f"{name}.py").exists() and (dest / f"{name}.ipynb").exists()


@pytest.mark.slow
def test_a_new_notebook_runs_quick_and_gets_a_site_page(course_with_a_new_notebook, tmp_path):
    """The runner executes it with its metadata's quick parameters and the site lists it, titled and
    described from that metadata, with a page of its own."""
    pytest.importorskip("papermill")
    from diffstyle_lab.lab import run_notebooks as rn
    from diffstyle_lab.lab import site
    folder, name = course_with_a_new_notebook
    executed = tmp_path / "executed"
    summary = rn.run_all([name], out=executed, quick=True, html=False, jobs=1, directory=folder, timeout=300,
                         echo=lambda *a: None)
    r, = summary["notebooks"]
    assert r["ok"], r["error"]
    assert r["parameters"] == {"out_dir": str((executed / name).resolve()), "n": 2}
    assert "Measured on 2 items" in Path(r["ipynb"]).read_text()
    built = site.build(executed, tmp_path / "site", notebooks=folder, echo=lambda *a: None)
    assert f"{name}.html" in built["pages"]
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Hello, catalogue" in index and "that a new notebook needs only its own pair" in index
    assert "2 min" in index and "2 s CPU" in index and "a course in one notebook</h1>" in index


# ---------------------------------------------------------------------------------------------
# no list of notebook names outside the notebooks

# (file, notebook name) → why that file names that notebook on purpose
ALLOWED = {
    ("tests/test_notebooks.py", "06_local_mixing"): "the stranger-model test reads the h-grid line only 06 prints",
    ("tests/test_notebooks.py", "07_out_of_domain"): "the stranger-model test reads the 'styles from' line of 07",
    ("tests/test_notebooks.py", "09_when_h_carries_content"): "the stranger-model test reads 09's own "
                                                              "'no before/after comparison' lines",
    ("tests/test_notebooks.py", "08_sweep"): "tests 08's own outputs: sweep.csv, sweep.png, sweep_manifest.json",
    ("tests/test_gpu_check.py", "01_tour_of_h_space"): "benchmarks/gpu_check.sh runs `--only 01` as its smoke "
                                                       "notebook; the test reads that run's timings",
    ("scripts/browser_check.py", "04_slerp"): "the browser check drives 04's γ slider (its label, its parameters)",
    ("scripts/browser_check.py", "05_calibration"): "the browser check drives 05's ω slider",
    ("diffstyle_lab/stats/estimators.py", "03_correlations"): "a docstring pointing to the notebook that "
                                                              "shows the estimators in use",
}
SKIP_DIRS = {".git", ".venv", "build", "dist", "runs", "outputs", "data", "notebooks", "docs", "__pycache__",
             ".pytest_cache", ".hypothesis", "node_modules", "course"}
SUFFIXES = {".py", ".sh", ".toml", ".cfg", ".in", ".yml", ".yaml"}
NUMBER_LIST = re.compile(r"""[\[(]\s*(["'])\d\d\1\s*,\s*(["'])\d\d\2""")     # ("01", "02", …)


def _code_files():
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for f in files:
            p = Path(top) / f
            if (p.suffix in SUFFIXES or p.relative_to(ROOT).as_posix() == ".ci/run") and p != Path(__file__).resolve():
                yield p


def test_no_list_of_notebook_names_outside_the_notebooks():
    """The runner, the site, the tests and the scripts read the catalogue; a notebook's name (or a list of
    notebook numbers) in their code is allowed only where :data:`ALLOWED` says why."""
    found, numbered = set(), []
    for p in _code_files():
        text = p.read_text(encoding="utf-8", errors="replace")
        rel = p.relative_to(ROOT).as_posix()
        found |= {(rel, i.name) for i in INFOS if i.name in text}
        numbered += [f"{rel}: {m.group(0)}" for m in NUMBER_LIST.finditer(text)]
    unexpected = sorted(found - set(ALLOWED))
    assert not unexpected, (f"notebook names in code: {unexpected}; read them from diffstyle_lab.lab.catalogue "
                            "(or, if one file must name one notebook on purpose, add it to ALLOWED with why)")
    assert not numbered, f"lists of notebook numbers in code: {numbered}; read them from the catalogue"
