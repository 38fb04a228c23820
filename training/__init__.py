"""How the shipped default model is made: training, the prepared GPU run, scoring on ground-truth pairs, contact
sheets, sample checks and the emergence curves behind its model card.

Release tooling, kept apart from the product as diffusers keeps ``examples/`` apart from ``src/``: it is not
installed with ``diffstyle_lab`` (a checkout has it) and nothing in the package imports it. Run its modules from
the repository root, e.g. ``python -m training.train --help`` or ``python -m training.groundtruth_eval MODEL``.
"""

import csv
import io
from pathlib import Path

from diffstyle_lab.fileio import write_bytes


def append_rows(path, fields: list, rows: list) -> None:
    """``rows`` (dicts) appended to the CSV ``path``, a header first when it is new or empty; the whole file is
    rewritten atomically, so a run cut off mid-way leaves the file as it was before this call."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fields)
    if not old:
        w.writeheader()
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, old + buf.getvalue().encode("utf-8"))
