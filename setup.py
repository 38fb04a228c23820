"""Build hook: the course notebooks (``notebooks/``, outside the package) travel in the wheel as
``diffstyle_lab/lab/course/`` so that ``diffstyle-lab notebooks`` finds them in any install
(``diffstyle_lab.lab.run_notebooks.notebook_dir``). It copies every pair by pattern, so a new notebook needs no
edit here (its metadata travels inside it; the build environment has no jupytext to read it, and
tests/test_catalogue.py checks these patterns pick exactly the catalogue's pairs). Everything else is in
pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
COURSE = ("[0-9][0-9]_*.py", "[0-9][0-9]_*.ipynb", "README.md")


class build_py_with_course(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):      # an editable install reads notebooks/ in place
            return
        dst = Path(self.build_lib) / "diffstyle_lab" / "lab" / "course"
        dst.mkdir(parents=True, exist_ok=True)
        for pattern in COURSE:
            for f in sorted((HERE / "notebooks").glob(pattern)):
                shutil.copyfile(f, dst / f.name)


setup(cmdclass={"build_py": build_py_with_course})
