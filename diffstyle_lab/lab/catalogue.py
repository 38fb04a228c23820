"""The notebooks' catalogue: what the runner, the course site, the tests and ``notebooks/README.md`` know
about each notebook is read from the notebook itself, so a new notebook is its own file pair and nothing else.

A course notebook is a pair ``NN_name.py`` (jupytext percent format, the source) + ``NN_name.ipynb``; its
number ``NN`` is its place in the course. Its header carries a ``diffstyle_lab`` block (in the ``.py`` the
``# jupyter:`` YAML header, mirrored by ``jupytext --sync`` in the ``.ipynb`` notebook metadata; the checkout's
``jupytext.toml`` keeps this block, ``notebook_metadata_filter = "diffstyle_lab,-all"``, and jupytext rewrites the
header in its own YAML style, non-ASCII letters escaped)::

    # ---
    # jupyter:
    #   diffstyle_lab:
    #     title: A tour of h-space          # the heading after "NN · "
    #     teaches: what h and g are, …      # one Markdown line: the README table and the site index
    #     reading_minutes: 8                # as the first cell says ("Reading time ≈ 8 min")
    #     cpu_s: 18.9                       # CPU seconds of one full run ("compute ≈ 19 s CPU"); schedules the runs
    #     quick: {inversion_steps: 8}       # the parameters of a --quick run (each declared in its parameters cell)
    #     cpu_note: …                       # optional: said after cpu_s in the README table
    #     needs: [content_dir, style_dir]   # optional: the parameters naming folders of images it reads
    #     prerequisites: [01_name]          # optional: earlier notebooks to read first (file names)
    #     paper_box: true                   # optional: opens with a "The paper says / this model shows" box
    #     injects: true                     # optional: records its injections' settings (settings.json)
    # ---

:func:`notebooks` reads a folder's notebooks in order; :func:`read_info` one notebook (a source or an executed
``.ipynb``, whose metadata papermill keeps). Both are strict: missing or invalid metadata raises
:class:`CatalogueError`, one line naming the file, the key and the fix. :func:`readme_rows` is the README's table
of notebooks; ``python -m diffstyle_lab.lab.catalogue --write-readme notebooks`` rewrites it from the metadata.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import write_text

SOURCE_GLOB = "[0-9][0-9]_*.py"
NAME = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")
KEY = "diffstyle_lab"
FIX = "then `jupytext --sync` the pair"

# key → (required, what it must be, the check)
_TEXT = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty text")
_POSITIVE_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a whole number > 0")
_POSITIVE = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a number > 0")
_MAPPING = (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a mapping name: value ({} for none)")
_NAMES = (lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v), "a list of names")
_BOOL = (lambda v: isinstance(v, bool), "true or false")
SCHEMA = {"title": (True, *_TEXT), "teaches": (True, *_TEXT), "reading_minutes": (True, *_POSITIVE_INT),
          "cpu_s": (True, *_POSITIVE), "quick": (True, *_MAPPING), "cpu_note": (False, *_TEXT),
          "needs": (False, *_NAMES), "prerequisites": (False, *_NAMES), "paper_box": (False, *_BOOL),
          "injects": (False, *_BOOL)}
REQUIRED = tuple(k for k, (req, *_) in SCHEMA.items() if req)


class CatalogueError(ValueError):
    """A notebook's metadata is missing or invalid (one line: the file, the key, the fix)."""


@dataclass(frozen=True)
class NotebookInfo:
    """One notebook's catalogue entry: its ``diffstyle_lab`` metadata, its name and number, where it was read."""
    name: str
    order: int
    path: Path
    title: str
    teaches: str
    reading_minutes: int
    cpu_s: float
    quick: dict = field(default_factory=dict)
    cpu_note: str = ""
    needs: tuple = ()
    prerequisites: tuple = ()
    paper_box: bool = False
    injects: bool = False

    @property
    def heading(self) -> str:
        """The notebook's first heading, ``NN · title``."""
        return f"{self.order:02d} · {self.title}"

    @property
    def compute(self) -> str:
        """The stated compute time, as the first cell says it (whole seconds, halves up)."""
        return f"{int(self.cpu_s + 0.5)} s CPU"


def declared_parameters(nb) -> dict:
    """Names and default values of the code cell tagged ``parameters`` (papermill's convention; literal
    values, others as source text)."""
    cell = next((c for c in nb.cells if c.cell_type == "code"
                 and "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    out = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = ast.get_source_segment(cell.source, node.value)
    return out


def _checked(path: Path, meta) -> dict:
    """The ``diffstyle_lab`` block of ``meta``, every key known, present where required and of its type."""
    if not isinstance(meta, dict):
        raise CatalogueError(f"{path}: no `{KEY}:` block in its header; add one with {', '.join(REQUIRED)} "
                             f"(diffstyle_lab/lab/catalogue.py shows the schema), {FIX}")
    for key in meta:
        if key not in SCHEMA:
            raise CatalogueError(f"{path}: `{KEY}` metadata has an unknown key `{key}`; the keys are "
                                 f"{', '.join(SCHEMA)}")
    for key, (required, ok, what) in SCHEMA.items():
        if key not in meta:
            if required:
                raise CatalogueError(f"{path}: `{KEY}` metadata lacks `{key}` ({what}); add it to the header, {FIX}")
        elif not ok(meta[key]):
            raise CatalogueError(f"{path}: `{KEY}.{key}` is {meta[key]!r}, expected {what}; {FIX}")
    return meta


def _declared_only(path: Path, meta: dict, declared: dict) -> None:
    for key in ("quick", "needs"):
        for name in meta.get(key, ()):
            if name not in declared:
                raise CatalogueError(f"{path}: `{KEY}.{key}` names `{name}`, which its parameters cell does not "
                                     f"declare; declare it there or remove it from `{key}`")


def read_info(path, nb=None) -> NotebookInfo:
    """The catalogue entry of the notebook at ``path`` (``NN_name.py`` or ``.ipynb``; ``nb``: the notebook if
    already read). Raises :class:`CatalogueError` naming the file and the missing or invalid key."""
    path = Path(path)
    m = NAME.match(path.stem)
    if not m:
        raise CatalogueError(f"{path}: not a course notebook name; name it NN_name (two digits, its place in "
                             "the course, then letters, digits or _)")
    if nb is None:
        import jupytext
        nb = jupytext.read(str(path))
    meta = _checked(path, nb.metadata.get(KEY))
    _declared_only(path, meta, declared_parameters(nb))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.items()}
    return NotebookInfo(name=path.stem, order=int(m.group(1)), path=path, **values)


def notebooks(folder) -> list[NotebookInfo]:
    """The course notebooks of ``folder`` (its ``NN_name.py`` sources), in order. Besides each notebook's own
    metadata it checks the folder: one notebook per number, prerequisites that are earlier notebooks of it."""
    infos = [read_info(p) for p in sorted(Path(folder).glob(SOURCE_GLOB))]
    seen: dict[int, str] = {}
    for i in infos:
        if i.order in seen:
            raise CatalogueError(f"{i.path}: number {i.order:02d} is taken by {seen[i.order]}; renumber one")
        seen[i.order] = i.name
        for pre in i.prerequisites:
            if pre not in {j.name for j in infos if j.order < i.order}:
                raise CatalogueError(f"{i.path}: prerequisite `{pre}` is not an earlier notebook of {folder}; "
                                     "name one by its file name without suffix")
    return infos


# ---------------------------------------------------------------------------------------------
# notebooks/README.md's table of notebooks

TABLE_HEAD = "| # | notebook | what it teaches | CPU time (full run) |"
ROW = re.compile(r"^\| \d\d \| `")


def readme_rows(infos) -> list[str]:
    """The README table's rows, one per notebook, from the metadata."""
    rows = []
    for i in infos:
        cpu = f"{i.cpu_s:.1f} s" + (f" ({i.cpu_note})" if i.cpu_note else "")
        rows.append(f"| {i.order:02d} | `{i.name}` | {i.teaches.replace('|', chr(92) + '|')} | {cpu} |")
    return rows


def _table_span(text: str, readme) -> tuple[list[str], int, int]:
    lines = text.split("\n")
    try:
        start = lines.index(TABLE_HEAD) + 2                    # after the head and its |---| line
    except ValueError:
        raise CatalogueError(f"{readme}: no table of notebooks (a line `{TABLE_HEAD}`); put it back") from None
    end = start
    while end < len(lines) and ROW.match(lines[end]):
        end += 1
    return lines, start, end


def readme_table_problem(folder, infos=None) -> str | None:
    """None where ``folder``/README.md's table of notebooks is the one :func:`readme_rows` makes, else one line
    naming the first row that differs and the command that rewrites the table."""
    readme = Path(folder) / "README.md"
    infos = notebooks(folder) if infos is None else infos
    lines, start, end = _table_span(readme.read_text(encoding="utf-8"), readme)
    have, want = lines[start:end], readme_rows(infos)
    if have == want:
        return None
    k = next((n for n, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
    row = (want[k] if k < len(want) else have[k]).split("`")[1]
    return (f"{readme}: its table of notebooks differs from the notebooks' metadata at row {k + 1} ({row}); "
            f"run `python -m diffstyle_lab.lab.catalogue --write-readme {folder}`")


def write_readme_table(folder) -> bool:
    """Rewrite the rows of ``folder``/README.md's table of notebooks from their metadata; True if it changed."""
    readme = Path(folder) / "README.md"
    text = readme.read_text(encoding="utf-8")
    lines, start, end = _table_span(text, readme)
    new = "\n".join(lines[:start] + readme_rows(notebooks(folder)) + lines[end:])
    if new != text:
        write_text(readme, new)
    return new != text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m diffstyle_lab.lab.catalogue",
                                 description="Check the notebooks' metadata; list them or rewrite the README table.")
    ap.add_argument("folder", nargs="?", default="notebooks", help="the folder of notebooks (default: notebooks)")
    ap.add_argument("--write-readme", action="store_true", help="rewrite README.md's table of notebooks")
    a = ap.parse_args(argv)
    try:
        if a.write_readme:
            print(f"{Path(a.folder) / 'README.md'}: " + ("table rewritten" if write_readme_table(a.folder)
                                                          else "table already current"))
            return 0
        for i in notebooks(a.folder):
            print(f"{i.name}: {i.title} ({i.reading_minutes} min, {i.compute})")
        problem = readme_table_problem(a.folder)
    except (ValueError, OSError) as e:
        print(f"catalogue: error: {e}", file=sys.stderr)
        return 2
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
