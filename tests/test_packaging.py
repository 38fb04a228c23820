"""The install files agree with each other, and the wheel works outside the checkout."""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


CONDA_NAMES = {"pytorch": "torch", "distributed": "dask"}


def test_environment_yml_names_the_pyproject_dependencies():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in py["dependencies"]}
    for extra in ("notebooks", "data", "sd", "scale", "dev"):
        wanted |= {_name(r) for r in py["optional-dependencies"][extra]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    have = set()
    for d in env["dependencies"]:
        if isinstance(d, dict):
            have |= {_name(r) for r in d["pip"] if not r.startswith("-")}
        else:
            n = _name(d)
            have.add(CONDA_NAMES.get(n, n))
    missing = wanted - have
    extra = have - wanted - {"python", "pip"}
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    assert not extra, f"environment.yml names {sorted(extra)} that pyproject does not"


def test_readme_quick_start_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"quick ?start", readme, re.I)
    assert "bash setup.sh" in readme and "bash setup.sh" in ci
    assert "python -m pytest" in readme and "python -m pytest" in ci


# ---------------------------------------------------------------------------------------------
# the wheel, installed outside the checkout

WHEEL_CHECK = r"""
import importlib, pkgutil, sys, torch
torch.set_num_threads(1)
import diffstyle_lab as dl
assert "site-packages" in dl.__file__ and sys.argv[1] in dl.__file__, dl.__file__
names = [m.name for m in pkgutil.walk_packages(dl.__path__, "diffstyle_lab.")]
for n in names:
    importlib.import_module(n)
m = dl.load_default_model()
from diffstyle_lab.lab import notebook as nb
from diffstyle_lab.faces import factors
assert factors.default_path().is_dir(), factors.default_path()
c, _ = nb.sample_images("content", m.sample_size)
s, _ = nb.sample_images("style", m.sample_size)
r = dl.inject(m, c[:2], s[:2], dl.InjectionConfig.for_model(m, inversion_steps=2, steps=2), progress=False)
assert r.images.shape == (2, 3, m.sample_size, m.sample_size) and torch.isfinite(r.images).all()
print(len(names), "modules", dl.__file__)
"""


@pytest.mark.slow
def test_the_wheel_works_outside_the_checkout(tmp_path):
    """`pip install git+URL` builds this wheel: it must hold every subpackage and the shipped data, and work
    from an ordinary (non-editable) install with no checkout on sys.path."""
    src = tmp_path / "src"        # a copy: no stale build/ folder of the checkout can leak into the wheel
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                             "runs", "outputs", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(src)], check=True, cwd=tmp_path)
    wheel, = wheels.glob("diffstyle_lab-*.whl")
    assert wheel.stat().st_size < 25e6
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
    for f in ("diffstyle_lab/evaluate/run.py", "diffstyle_lab/stats/estimators.py", "diffstyle_lab/faces/architecture.py",
              "diffstyle_lab/lab/run_notebooks.py", "diffstyle_lab/backends/sd.py",
              "diffstyle_lab/data/models/faces32/unet/diffusion_pytorch_model.safetensors",
              "diffstyle_lab/data/models/faces32/diffstyle_lab.json",
              "diffstyle_lab/data/models/factor_classifier/model.safetensors",
              "diffstyle_lab/data/samples/content/content0.png", "diffstyle_lab/lab/course/README.md",
              *(f"diffstyle_lab/lab/course/{p.name}" for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.*")))):
        assert f in files, f"the wheel lacks {f}"
    assert not any("faces32_v1" in f for f in files)

    venv = tmp_path / "venv"        # a fresh environment; the dependencies (torch…) come from this one, read-only
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, env=env, cwd=tmp_path)
    run = tmp_path / "elsewhere"
    run.mkdir()
    out = subprocess.run([str(py), "-c", WHEEL_CHECK, str(venv)], capture_output=True, text=True, env=env, cwd=run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(venv) in out.stdout
    cli = subprocess.run([str(venv / "bin" / "diffstyle-lab"), "--help"], capture_output=True, text=True, env=env,
                         cwd=run)
    assert cli.returncode == 0 and "inject" in cli.stdout, cli.stderr[-2000:]

    # the notebooks travel with the package: listed, copied and run (quick) with no checkout in sight
    def lab(*args):
        return subprocess.run([str(venv / "bin" / "diffstyle-lab"), "notebooks", *args], capture_output=True,
                              text=True, env=env, cwd=run, timeout=900)
    from diffstyle_lab.lab import catalogue
    infos = catalogue.notebooks(ROOT / "notebooks")
    names = [i.name for i in infos]
    listed = lab("--list")
    assert listed.returncode == 0 and [ln.split(":")[0] for ln in listed.stdout.splitlines()] == names, \
        listed.stdout + listed.stderr[-2000:]
    copied = lab("--copy", "course")
    assert copied.returncode == 0 and sorted(p.stem for p in (run / "course").glob("*.ipynb")) == names, copied.stderr
    # the first notebook, and the one that reads out-of-domain styles (ood_dir: data/ood is not in the wheel,
    # so it draws the same images in memory)
    ood = next(i.name for i in infos if "ood_dir" in i.needs)
    quick = lab("--quick", "--only", names[0], ood, "--no-html", "-j", "1", "--out", "outputs")
    assert quick.returncode == 0, quick.stdout + quick.stderr[-3000:]
    assert "0 failed" in quick.stdout and not quick.stderr.strip(), quick.stderr[-2000:]
    assert (run / "outputs" / f"{ood}.ipynb").exists()
