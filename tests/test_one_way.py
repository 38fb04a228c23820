"""One way to write a file, one way to hash, and no sys.path edits (issues "one I/O module — every writer and
hash goes through it" and "no sys.path edits").

Every ``.py`` under diffstyle_lab/, scripts/, training/, research/, benchmarks/ and tests/ is read with ``ast``
(comments and strings are not code, so they never count), and:

(a) the parts of an atomic write — ``os.replace``, ``os.rename``, ``os.renames``, ``shutil.move``,
    ``tempfile.mkstemp``, ``tempfile.NamedTemporaryFile``, a path's ``.replace(target)`` / ``.rename(target)``
    — and ``import hashlib`` appear only in diffstyle_lab/fileio.py (its ``atomic_write`` and digests);
(b) in the product and its tooling (all but tests/) nothing calls ``json.dump`` or writes JSON text itself
    (``path.write_text(json.dumps(…))``, ``path.write_bytes(json.dumps(…).encode())``): ``fileio.write_json``;
(c) nothing assigns, inserts, appends or extends ``sys.path`` (``monkeypatch.syspath_prepend`` and
    ``site.addsitedir`` included): scripts run from the root with the package installed, tests import
    ``scripts`` / ``training`` / ``research`` through pytest's ``pythonpath = ["."]``, and the mutation tools
    import their copy through a finder on ``sys.meta_path``.

Names are followed through imports (``from os import replace as r``; ``r(a, b)`` is ``os.replace``). A
one-argument ``.replace(x)`` / ``.rename(x)`` on anything but an imported module is taken as pathlib's (str and
bytes ``.replace`` need two arguments); a pandas ``df.rename(mapper)`` would be reported too: pass it by keyword.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ("diffstyle_lab", "scripts", "training", "research", "benchmarks", "tests")
PRODUCT = ("diffstyle_lab", "scripts", "training", "research", "benchmarks")      # rule (b): all but the tests
FILEIO = "diffstyle_lab/fileio.py"

MOVES = {"os.replace", "os.rename", "os.renames", "shutil.move", "tempfile.mkstemp", "tempfile.NamedTemporaryFile",
         "pathlib.Path.replace", "pathlib.Path.rename"}
SYS_PATH_EDITS = {"sys.path.insert", "sys.path.append", "sys.path.extend", "site.addsitedir"}

# (file, what) → why it may stay. Each entry names one file and one rule's finding, and says why it is not a
# second way of doing what fileio does.
ALLOWED = {
    ("tests/test_faults.py", "os.replace"):
        "a spy on the rename inside fileio.atomic_write: it keeps the real os.replace and calls it, recording the "
        "temporary names the one atomic write used; it renames nothing of its own",
    ("tests/test_cache.py", "import hashlib"):
        "the pixel cache key written out independently of fileio.sha256_hex (a test of the key must not compute "
        "it the way the code under test does)",
}


def _imports(tree: ast.AST) -> dict[str, str]:
    """Local name → what it names, for every absolute import in ``tree`` (``import os.path as p`` → p: os.path,
    ``import os.path`` → os: os, ``from os import replace as r`` → r: os.replace)."""
    out = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            for a in n.names:
                out[a.asname or a.name] = f"{n.module}.{a.name}"
    return out


def _dotted(node: ast.AST, names: dict) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, its first part followed through the imports."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([names.get(node.id, node.id), *reversed(parts)])


def _writes_json_text(call: ast.Call, names: dict) -> bool:
    """``x.write_text(json.dumps(…)…)`` / ``x.write_bytes(json.dumps(…)…)``: JSON text as the data argument."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr in ("write_text", "write_bytes") and call.args):
        return False
    return any(isinstance(c, ast.Call) and _dotted(c.func, names) == "json.dumps" for c in ast.walk(call.args[0]))


def _modules_imported(n: ast.AST) -> set[str]:
    """The top-level modules an import statement imports (``import a.b, c`` → a, c; ``from a.b import x`` → a)."""
    if isinstance(n, ast.Import):
        return {a.name.split(".")[0] for a in n.names}
    if isinstance(n, ast.ImportFrom) and n.module and not n.level:
        return {n.module.split(".")[0]}
    return set()


def _assigns_sys_path(n: ast.AST, names: dict) -> bool:
    """``sys.path = …``, ``sys.path[…] = …``, ``sys.path += …`` (also as one of several targets)."""
    targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, (ast.AugAssign, ast.AnnAssign)) \
        else []
    for t in targets:
        for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]):
            if _dotted(e.value if isinstance(e, ast.Subscript) else e, names) == "sys.path":
                return True
    return False


def offences(source: str) -> set[tuple[str, int, str]]:
    """(rule, line, what) for each offence in ``source``: rule "a" (a rename, a temporary file or hashlib), "b"
    (JSON written without fileio) or "c" (a sys.path edit)."""
    tree = ast.parse(source)
    names = _imports(tree)
    found = set()

    def check(what, line):
        if what in MOVES:
            found.add(("a", line, what))
        elif what == "json.dump":
            found.add(("b", line, what))
        elif what in SYS_PATH_EDITS:
            found.add(("c", line, what))

    for n in ast.walk(tree):
        if "hashlib" in _modules_imported(n):
            found.add(("a", n.lineno, "import hashlib"))
        if isinstance(n, ast.ImportFrom) and n.module and not n.level:
            for a in n.names:
                check(f"{n.module}.{a.name}", n.lineno)
        if isinstance(n, (ast.Name, ast.Attribute)):
            check(_dotted(n, names), n.lineno)
        if isinstance(n, ast.Attribute) and n.attr == "syspath_prepend":
            found.add(("c", n.lineno, "syspath_prepend"))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("replace", "rename") \
                and len(n.args) == 1 and not n.keywords \
                and not (isinstance(n.func.value, ast.Name) and n.func.value.id in names):
            found.add(("a", n.lineno, f"Path.{n.func.attr} (a one-argument .{n.func.attr}())"))
        if isinstance(n, ast.Call) and _writes_json_text(n, names):
            found.add(("b", n.lineno, f".{n.func.attr}(json.dumps(…))"))
        if _assigns_sys_path(n, names):
            found.add(("c", n.lineno, "sys.path assigned"))
    return found


def scan(root: Path, trees=TREES) -> list[tuple[str, str, int, str]]:
    """(file relative to ``root``, rule, line, what) for every offence in the ``.py`` files under ``root/<tree>``."""
    out = []
    for tree in trees:
        for f in sorted((root / tree).rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            out += [(rel, *o) for o in sorted(offences(f.read_text(encoding="utf-8")))]
    return out


@functools.cache
def _repository():
    return scan(ROOT)


def _listed(rule: str, trees=TREES, exempt=()) -> str:
    bad = [f"  {path}:{line}: {what}" for path, r, line, what in _repository()
           if r == rule and path.split("/")[0] in trees and path not in exempt and (path, what) not in ALLOWED]
    return "\n".join(bad)


def test_a_renames_temporary_files_and_hashlib_only_in_fileio():
    bad = _listed("a", exempt=(FILEIO,))
    assert not bad, ("an atomic write or a hash outside diffstyle_lab/fileio.py (use fileio.atomic_write / "
                     f"write_* / atomic_dir, file_sha256 / sha256_hex / tensor_digest):\n{bad}")


def test_b_json_is_written_only_through_fileio():
    bad = _listed("b", trees=PRODUCT, exempt=(FILEIO,))
    assert not bad, f"JSON written without fileio.write_json:\n{bad}"


def test_c_nothing_edits_sys_path():
    bad = _listed("c")
    assert not bad, f"sys.path edited (run from the repository root; tests: pytest's pythonpath):\n{bad}"


def test_the_allow_list_names_findings_that_exist():
    """An entry whose finding has gone (the file was fixed or moved) is removed, not kept as a blank permit."""
    found = {(path, what) for path, _, _, what in _repository()}
    assert set(ALLOWED) <= found, set(ALLOWED) - found


def test_the_one_atomic_write_is_fileio_s():
    """Without its exemption, fileio.py is what the scanner reports: the rename and the temporary file of
    atomic_write, and hashlib for the digests."""
    whats = {what for _, _, what in offences((ROOT / FILEIO).read_text(encoding="utf-8"))}
    assert {"os.replace", "tempfile.mkstemp", "import hashlib"} <= whats, whats


BAD = '''\
import hashlib
import json, os, sys
import shutil as sh
from os import rename as rn
from pathlib import Path
from sys import path
from tempfile import NamedTemporaryFile

def save(tmp, target, obj, monkeypatch):
    os.replace(tmp, target)
    rn(tmp, target)
    sh.move(tmp, target)
    Path(tmp).replace(target)
    Path.rename(tmp, target)
    json.dump(obj, open(target, "w"))
    Path(target).write_text(json.dumps(obj, indent=1) + "\\n")
    Path(target).write_bytes(json.dumps(obj).encode())
    sys.path.insert(0, "x")
    sys.path[:] = ["x"]
    sys.path += ["x"]
    path.append("x")
    monkeypatch.syspath_prepend("x")
'''

GOOD = '''\
import dataclasses, json, sys
from diffstyle_lab import fileio
from diffstyle_lab.fileio import write_json

# os.replace(tmp, target); sys.path.insert(0, "x"); import hashlib
NOTE = "tmp.replace(target) and json.dump(obj, f) and sys.path.append('x')"

def save(cfg, target, obj, text):
    write_json(target, obj)
    fileio.write_text(target, json.dumps(obj))
    print(json.dumps(obj), text.replace("a", "b"), dataclasses.replace(cfg), sys.path[0])
'''


def test_the_scanner_catches_each_planted_offence_and_nothing_else(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "bad.py").write_text(BAD)
    (tmp_path / "scripts" / "good.py").write_text(GOOD)
    found = scan(tmp_path, trees=("scripts",))
    assert {(path, rule, line) for path, rule, line, _ in found} == {("scripts/bad.py", r, n) for r, n in [
        ("a", 1), ("a", 4), ("a", 7), ("a", 10), ("a", 11), ("a", 12), ("a", 13), ("a", 14),
        ("b", 15), ("b", 16), ("b", 17),
        ("c", 18), ("c", 19), ("c", 20), ("c", 21), ("c", 22)]}, found
