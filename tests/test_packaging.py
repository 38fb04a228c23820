"""The install files agree with each other."""
import re
import tomllib
from pathlib import Path

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
