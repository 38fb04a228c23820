"""Execute the notebooks (``notebooks/NN_name.py``, jupytext percent format) with papermill into
``<out>/NN_name.ipynb`` + ``.html``, each with ``out_dir=<out>/NN_name/`` for its figures and tables;
wall and CPU times go to ``<out>/timings.json``. Usage: notebooks/README.md. Exit status 1 if any
notebook failed (its executed notebook is still written, with the error).

Where the notebooks are (:func:`notebook_dir`): ``--dir``, else the checkout's ``notebooks/``, else
the copy that travels in the wheel (``diffstyle_lab/lab/course/``, put there by ``setup.py``);
``--copy DIR`` writes that copy (``.ipynb``, ``.py``, README) into a folder of the user's choice.
Kernels are started by :class:`~diffstyle_lab.lab.kernel.QuietKernelManager` (no TCP warning, no
shutdown noise; a notebook's real error is still printed).

What the runner knows of each notebook — its quick parameters, its cost for scheduling, its title — is
the notebook's own ``diffstyle_lab`` metadata, read by :mod:`diffstyle_lab.lab.catalogue`: a new notebook
needs no edit here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from ..fileio import read_json, write_json, write_text
from .catalogue import SOURCE_GLOB, NotebookInfo, declared_parameters, read_info
from .catalogue import notebooks as catalogue

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"                       # in a checkout (and an editable install)
PACKAGED_DIR = Path(__file__).resolve().parent / "course"   # in a wheel (setup.py copies notebooks/ there)
DEFAULT_OUT = Path("outputs") / "notebooks"
DEFAULT_TIMEOUT = 1800   # seconds per cell


class NoNotebooks(FileNotFoundError):
    """No folder of notebooks was found (the message says where it looked and what to do)."""


def notebook_dir(directory=None) -> Path:
    """The folder of notebook sources: ``directory`` if given (it must hold ``NN_*.py``), else the
    checkout's ``notebooks/``, else the copy shipped in the package. Raises :class:`NoNotebooks` with
    a one-line message when there is none."""
    if directory:
        d = Path(directory).expanduser()
        if not sorted(d.glob(SOURCE_GLOB)):
            raise NoNotebooks(f"--dir {d}: no notebook sources (NN_name.py) there; pass the folder that "
                              "`diffstyle-lab notebooks --copy DIR` wrote, or the checkout's notebooks/")
        return d
    for d in (NOTEBOOK_DIR, PACKAGED_DIR):
        if sorted(d.glob(SOURCE_GLOB)):
            return d
    raise NoNotebooks(f"no notebooks found: neither {NOTEBOOK_DIR} (a checkout) nor {PACKAGED_DIR} (the installed "
                      "copy) holds NN_name.py files; reinstall diffstyle_lab from its repository or a wheel, or "
                      "pass --dir FOLDER")


def notebooks(directory=None) -> list[NotebookInfo]:
    """The notebooks of :func:`notebook_dir` (``directory``), in order, each with its metadata
    (:func:`~diffstyle_lab.lab.catalogue.notebooks`: a notebook without valid metadata is one line naming it)."""
    return catalogue(notebook_dir(directory))


def copy_notebooks(dest, directory=None) -> list[Path]:
    """Write the notebooks (``NN_name.ipynb`` and their paired ``.py``) and the README into ``dest``
    (created if missing); refuses, naming the file, to overwrite one that is there and differs."""
    import shutil
    src = notebook_dir(directory)
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"--copy {dest} is a file; pass a folder (it is created if missing)")
    infos = catalogue(src)
    files = [i.path.with_suffix(".ipynb") for i in infos] + [i.path for i in infos] + [src / "README.md"]
    files = [f for f in files if f.exists()]
    for f in files:
        t = dest / f.name
        if t.exists() and t.read_bytes() != f.read_bytes():
            raise ValueError(f"--copy {dest}: {t.name} is there and differs from the shipped one; "
                             "choose another folder or move it away")
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, dest / f.name)
    return [dest / f.name for f in files]


def read(path):
    """A notebook source as an nbformat notebook (jupytext; ``.py`` percent or ``.ipynb``)."""
    import jupytext
    return jupytext.read(str(path))


def parameters_for(info: NotebookInfo, nb, quick: bool = False, extra: dict | None = None, out_dir=None,
                   cache_dir=None) -> dict:
    """The parameters to pass to the notebook ``info`` (``nb``, as read): ``out_dir`` and ``cache_dir``,
    its metadata's ``quick`` settings (if ``quick``), then ``extra`` — each kept only if the notebook
    declares it."""
    declared = declared_parameters(nb)
    p = {k: str(v) for k, v in (("out_dir", out_dir), ("cache_dir", cache_dir)) if v is not None}
    if quick:
        p.update(info.quick)
    p.update(extra or {})
    return {k: v for k, v in p.items() if k in declared}


def _cpu_seconds() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_one(source, out="outputs/notebooks", parameters: dict | None = None, quick: bool = False,
            html: bool = True, kernel: str = "python3", cwd=None, timeout: int | None = DEFAULT_TIMEOUT,
            progress: bool = False, cache_dir=None) -> dict:
    """Execute one notebook source into ``out``; returns ``{"notebook", "ok", "error", "wall_s",
    "cpu_s", "parameters", "ipynb", "html"}``. ``cache_dir`` (passed as the notebooks'
    ``cache_dir`` parameter) lets notebooks share DDIM inversions on disk."""
    import papermill as pm
    from .kernel import QuietKernelManager
    source = Path(source)
    name = source.stem
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    nb = read(source)
    params = parameters_for(read_info(source, nb), nb, quick, parameters, out_dir=(out / name).resolve(),
                            cache_dir=None if cache_dir is None else Path(cache_dir).resolve())
    ipynb = out / f"{name}.ipynb"
    t0, c0 = time.perf_counter(), _cpu_seconds()
    error = None
    if cwd is None:    # the notebook's folder; an installed copy may be read-only: then the output folder
        cwd = source.parent if os.access(source.parent, os.W_OK) else out
    try:
        pm.execute_notebook(nb, str(ipynb), parameters=params, kernel_name=kernel, language="python",
                            progress_bar=progress, cwd=str(cwd), execution_timeout=timeout or None,
                            kernel_manager_class=QuietKernelManager)
    except Exception as e:  # papermill writes the notebook with the failing cell marked
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    html_path = to_html(ipynb, out / f"{name}.html") if html and ipynb.exists() else None
    return {"notebook": name, "ok": error is None, "error": error, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "parameters": params, "ipynb": str(ipynb), "html": None if html_path is None else str(html_path)}


def to_html(ipynb, html_path) -> Path:
    """Export an executed notebook to HTML with nbconvert."""
    import nbformat
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    write_text(html_path, body)
    return Path(html_path)


def select(infos: list[NotebookInfo], only) -> list[NotebookInfo]:
    """The notebooks of ``infos`` whose name starts with one of ``only`` (all where ``only`` is empty)."""
    if not only:
        return infos
    keep = [i for i in infos if any(i.name.startswith(o) for o in only)]
    missing = [o for o in only if not any(i.name.startswith(o) for i in infos)]
    if missing:
        raise SystemExit(f"no notebook matches {missing}; have {[i.name for i in infos]}")
    return keep


def cpu_times(text: str) -> tuple[float, float]:
    """``(busy, total)`` jiffies of all CPUs from the text of ``/proc/stat`` (its first ``cpu`` line:
    user nice system idle iowait irq softirq steal …; idle and iowait are not busy; guest time is
    already counted in user)."""
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == "cpu":
            v = [float(x) for x in f[1:9]]
            v += [0.0] * (8 - len(v))
            total = sum(v)
            return total - v[3] - v[4], total
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def busy_cores(window: float = 0.5, stat: str = "/proc/stat") -> float | None:
    """How many cores were busy, on average, over the next ``window`` seconds (two reads of
    ``/proc/stat``); None where there is no /proc/stat (macOS, Windows)."""
    try:
        with open(stat) as fh:
            b0, t0 = cpu_times(fh.read())
        time.sleep(window)
        with open(stat) as fh:
            b1, t1 = cpu_times(fh.read())
    except (OSError, ValueError):
        return None
    cores = os.cpu_count() or 1
    return cores * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def auto_jobs(n: int, window: float = 0.5) -> int:
    """How many notebooks to run at once: one per CPU core that is free now (cores minus the cores
    busy over a short ``window`` read from /proc/stat — not the 1-minute load average, which still
    counts an install that just finished; the load average only where /proc/stat is absent), each
    notebook's kernel using one thread; at least 1, at most ``n``."""
    cores = os.cpu_count() or 1
    busy = busy_cores(window)
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):   # no load average (Windows): assume the cores are free
            busy = 0.0
    return max(1, min(n, int(cores - busy + 0.5)))


def longest_first(infos: list[NotebookInfo], out: Path, quick: bool) -> list[NotebookInfo]:
    """``infos`` ordered by their last wall time in ``out/timings.json`` (same quick/full mode),
    else by the full-run CPU seconds their metadata states (``cpu_s``), longest first — so the long
    ones do not start last. A timings file that cannot be read is ignored."""
    cost = {}
    t = Path(out) / "timings.json"
    if t.exists():
        try:
            prev = read_json(t)
            if prev.get("quick") == quick:
                cost = {r["notebook"]: float(r["wall_s"]) for r in prev["notebooks"] if r.get("ok")}
        except (ValueError, KeyError, TypeError, AttributeError):
            cost = {}
    if not all(i.name in cost for i in infos):
        cost = {i.name: i.cpu_s for i in infos}
    return sorted(infos, key=lambda i: -cost[i.name])


def table(rows: list[dict]) -> str:
    """The per-notebook table printed at the end of a run."""
    lines = [f"{'notebook':22s} {'wall s':>8s} {'cpu s':>8s}  status"]
    for r in sorted(rows, key=lambda r: r["notebook"]):
        lines.append(f"{r['notebook']:22s} {r['wall_s']:8.1f} {r['cpu_s']:8.1f}  "
                     f"{'ok' if r['ok'] else 'FAILED — ' + str(r['error'])}")
    return "\n".join(lines)


def run_all(only=None, out=DEFAULT_OUT, quick: bool = False, parameters: dict | None = None, html: bool = True,
            kernel: str = "python3", directory=None, timeout: int | None = DEFAULT_TIMEOUT, cache: bool = True,
            jobs: int = 1, echo=print) -> dict:
    """Execute every notebook (or those in ``only``: names or number prefixes) and return
    ``{"notebooks": [per-notebook dicts], "wall_s", "cpu_s", "quick", "ok"}`` (also written to
    ``<out>/timings.json``). With ``cache``, the notebooks share inversions through
    ``<out>/inversion_cache`` (so a notebook's time depends on what ran before it). ``jobs`` > 1
    runs that many notebooks at once, each in its own process, the longest first (CPU time is then
    the sum of the notebooks' own); ``jobs=0`` picks :func:`auto_jobs`."""
    sources = select(notebooks(directory), only)
    out = Path(out)
    jobs = auto_jobs(len(sources)) if not jobs or jobs < 1 else int(jobs)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    kw = dict(out=out, parameters=parameters, quick=quick, html=html, kernel=kernel, timeout=timeout,
              cache_dir=out / "inversion_cache" if cache else None)

    def report(r):
        status = "ok" if r["ok"] else f"FAILED — {r['error']}"
        echo(f"  {r['notebook']}: {status}   wall {r['wall_s']:7.1f} s   cpu {r['cpu_s']:7.1f} s   → {r['ipynb']}")

    if jobs <= 1:
        rows = []
        for info in sources:
            echo(f"▶ {info.name} …")
            rows.append(run_one(info.path, **kw))
            report(rows[-1])
        cpu = _cpu_seconds() - c0
    else:  # one process per running notebook; each measures its own kernel's CPU time
        from concurrent.futures import ProcessPoolExecutor, as_completed
        order = longest_first(sources, out, quick)
        echo(f"▶ {len(sources)} notebooks, {jobs} at a time, longest first "
             f"({', '.join(f'{i.order:02d}' for i in order)}) …")
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, i.path, **kw) for i in order]
            for f in as_completed(futures):
                report(f.result())
            done = {r["notebook"]: r for r in (f.result() for f in futures)}
        rows = [done[i.name] for i in sources]
        cpu = sum(r["cpu_s"] for r in rows)
    summary = {"notebooks": rows, "wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(cpu, 2),
               "quick": quick, "jobs": jobs, "ok": all(r["ok"] for r in rows), "cpu_count": os.cpu_count(),
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(out / "timings.json", summary)
    echo(table(rows))
    echo(f"total: {len(rows)} notebooks, wall {summary['wall_s']:.1f} s, cpu {summary['cpu_s']:.1f} s "
         f"({'quick' if quick else 'full'} run, {jobs} at a time; {sum(not r['ok'] for r in rows)} failed) → {out}")
    return summary


def _parse_param(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"-p {text!r}: write name=value")
    k, v = text.split("=", 1)
    try:
        val = json.loads(v)
    except json.JSONDecodeError:
        val = v
    return k.strip(), val


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="diffstyle-lab notebooks",
                                 description="Execute the notebooks with papermill into executed .ipynb + HTML.")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: outputs/notebooks)")
    ap.add_argument("--quick", action="store_true", help="small grids and few steps (a smoke run)")
    ap.add_argument("--only", nargs="+", metavar="NB", help="notebook names or number prefixes, e.g. 01 04")
    ap.add_argument("-p", "--param", action="append", type=_parse_param, default=[], metavar="NAME=VALUE",
                    help="set a notebook parameter (JSON value or plain string); repeatable")
    ap.add_argument("--model", help="shortcut for -p model=PATH_OR_ID")
    ap.add_argument("--no-html", action="store_true", help="skip the HTML export")
    ap.add_argument("--no-cache", action="store_true",
                    help="do not share inversions between notebooks through <out>/inversion_cache")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    ap.add_argument("--jobs", "-j", type=int, default=0,
                    help="notebooks to run at once (default 0: one per CPU core that is free now, see auto_jobs)")
    ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                    help=f"per-cell timeout in seconds (default {DEFAULT_TIMEOUT}; 0 = none): a hung cell fails "
                         "the notebook instead of blocking the run")
    ap.add_argument("--list", action="store_true",
                    help="list the notebooks: title, parameters and quick settings (from each notebook), then exit")
    ap.add_argument("--dir", help="the folder of notebook sources NN_name.py (default: the checkout's notebooks/, "
                                  "else the copy installed with the package)")
    ap.add_argument("--copy", metavar="DIR", help="write the notebooks (.ipynb + paired .py) and their README into "
                                                  "DIR, to open in Jupyter, then exit")
    return ap


def check_arguments(a) -> None:
    """Refuse, before anything runs or is written, an ``--out`` that is a file and ``-p`` names that
    no selected notebook declares in its ``parameters`` cell (suggesting the nearest name)."""
    import difflib
    if Path(a.out).exists() and not Path(a.out).is_dir():
        raise ValueError(f"--out {a.out} is a file; pass a folder (it is created if missing)")
    notebooks(a.dir)                   # NoNotebooks (one line) where there are none
    if not a.param:
        return
    declared = {n for i in select(notebooks(a.dir), a.only) for n in declared_parameters(read(i.path))}
    for name, _ in a.param:
        if name not in declared:
            near = difflib.get_close_matches(name, sorted(declared), n=1)
            raise ValueError(f"-p {name}: no selected notebook has a parameter of that name"
                             + (f"; did you mean -p {near[0]}=…?" if near else "")
                             + " (`diffstyle-lab notebooks --list` shows each notebook's parameters)")


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        check_arguments(a)
        if a.copy:
            files = copy_notebooks(a.copy, a.dir)
            n = sum(f.suffix == ".ipynb" for f in files)
            print(f"{n} notebooks (.ipynb + paired .py) and README.md → {a.copy}; open them with "
                  f"`jupyter lab {a.copy}`, or run them with `diffstyle-lab notebooks --dir {a.copy}`")
            return 0
        if a.list:
            for i in notebooks(a.dir):
                print(f"{i.name}: {i.heading}; parameters {declared_parameters(read(i.path))}; quick {i.quick}")
            return 0
    except (ValueError, OSError) as e:     # NoNotebooks is an OSError
        print(f"diffstyle-lab notebooks: error: {e}", file=sys.stderr)
        return 2
    params = dict(a.param)
    if a.model:
        params["model"] = a.model
    summary = run_all(a.only, a.out, quick=a.quick, parameters=params, html=not a.no_html, kernel=a.kernel,
                      directory=a.dir, timeout=a.timeout, cache=not a.no_cache, jobs=a.jobs)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
