"""Real-browser check of the notebooks' sliders: JupyterLab in headless Chromium (issue 14 §1).

What CI runs (``tests/test_browser.py``) and what a person can run by hand::

    bash setup.sh --browser                     # Debian's chromium (apt) + the [browser] extra
    .venv/bin/python scripts/browser_check.py   # --only 04 | 05, --keep keeps the temp folder

No ``playwright install``: Playwright drives Debian's ``/usr/bin/chromium`` ($CHROMIUM overrides),
started with the flags this project's closed-network machines need.

For each checked notebook (04: the γ slider, 05: the ω slider) it copies the ``.ipynb`` into a
temporary folder with quick parameters (an "injected-parameters" cell after the ``parameters``
cell, as papermill adds), starts one ``jupyter lab --no-browser`` there (free port, random token),
opens the notebook in Chromium, runs all cells, waits for the kernel to go idle and asserts that
every code cell ran and none raised. It then hashes the bytes of the explorer's image (the
``<img>`` of its ``widgets.Image``), presses → on the slider's handle ``MOVES`` times (one step
each), and after each press measures how long the new image takes to appear (polled every 0.05 s)
and asserts that its bytes changed. A screenshot of each notebook goes to ``outputs/browser/``
(not committed). Exit status 0 = passed; the measured latencies are printed.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from diffstyle_lab.fileio import read_json, write_bytes, write_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage"]
RUN_TIMEOUT = float(os.environ.get("BROWSER_CHECK_TIMEOUT", 600))   # seconds for "run all cells"
MOVES = 3                 # slider presses; the latency judged is their median
LATENCY_GOAL_S = 2.0      # issue 14 §1: the new image within 2 s on 2 cores

# notebook → (slider label, quick parameters). widget_steps is what a re-render costs.
NOTEBOOKS = {
    "04_slerp": ("γ", dict(threads=1, inversion_steps=20, steps=4, widget_steps=8, n_pairs=1,
                           gammas=[0.0, 1.0])),
    "05_calibration": ("ω", dict(threads=1, inversion_steps=20, steps=4, widget_steps=8, n_pairs=1,
                                 omegas=[0.0, 1.0])),
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def missing() -> str | None:
    """Why this machine cannot run the check (None when it can)."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or bash setup.sh --browser)"
    for mod in ("playwright", "jupyterlab"):
        try:
            __import__(mod)
        except ImportError:
            return f"python package {mod!r} missing: pip install -e '.[browser]' (or bash setup.sh --browser)"
    return None


def quick_copy(name: str, folder: Path, params: dict) -> Path:
    """``notebooks/<name>.ipynb`` with a kernelspec and ``params`` injected after its parameters cell."""
    src = ROOT / "notebooks" / f"{name}.ipynb"
    nb = read_json(src)
    nb.setdefault("metadata", {})["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}
    idx = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", []))
    text = "# quick parameters (scripts/browser_check.py)\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    # the kernel must import this checkout's diffstyle_lab (PYTHONPATH from Server, or an editable install of it)
    text += ("\nimport pathlib as _pl, diffstyle_lab as _dsl\n"
             f"assert _pl.Path(_dsl.__file__).resolve().is_relative_to(_pl.Path({str(ROOT.resolve())!r})), "
             f"f'the kernel imported diffstyle_lab from {{_dsl.__file__}}, not from {ROOT.resolve()}'")
    nb["cells"].insert(idx + 1, {"cell_type": "code", "execution_count": None, "id": "browser-check-params",
                                 "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
                                 "source": text.splitlines(keepends=True)})
    dst = folder / src.name
    write_json(dst, nb, indent=1)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``jupyter lab --no-browser`` in ``folder`` on a free port with a random token (a context manager)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.proc = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def __enter__(self):
        f = self.folder
        env = dict(os.environ, DIFFSTYLE_LAB_DATA=os.environ.get("DIFFSTYLE_LAB_DATA", str(ROOT / "data")),
                   JUPYTER_RUNTIME_DIR=str(f / ".runtime"), PYTHONPATH=str(ROOT),
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={self.token}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={f}",
               "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={f / '.workspaces'}",
               f"--LabApp.user_settings_dir={f / '.settings'}", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(f / "server.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=f, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}); see {f / 'server.log'}")
            try:
                urllib.request.urlopen(self.url("api/status"), timeout=2).read()
                log(f"server up on port {self.port} after {time.time() - t0:.1f} s")
                return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError("jupyter lab did not answer within 120 s")

    def __exit__(self, *exc):
        proc = self.proc
        try:
            req = urllib.request.Request(self.url("api/shutdown"), method="POST")
            urllib.request.urlopen(req, timeout=10).read()
            proc.wait(timeout=20)
        except Exception:  # noqa: BLE001 — whatever failed, the server goes
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.log.close()
        log(f"server stopped (exit {proc.returncode})")
        return False


KERNEL_STATUS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return k ? k.status : null;
}"""

UNRUN_CELLS = """() => {  // from the notebook model, not the (windowed) DOM
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  let n = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type === 'code' && !c.executionCount) n++;
  }
  return n;
}"""

ERROR_OUTPUTS = """() => {  // error outputs in the notebook model
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const errs = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (let k = 0; k < c.outputs.length; k++) {
      const o = c.outputs.get(k).toJSON();
      if (o.output_type === 'error') errs.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  }
  return errs;
}"""

# hash of the explorer image's bytes (the <img> in the same VBox as the slider)
IMAGE_STATE = """async (label) => {
  const boxes = [...document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets.widget-vbox')];
  const box = boxes.find(b => [...b.querySelectorAll('.widget-slider')].some(s => s.textContent.includes(label)));
  const img = box && box.querySelector('img');
  if (!img || !img.src) return null;
  const buf = await (await fetch(img.src)).arrayBuffer();
  const d = await crypto.subtle.digest('SHA-256', buf);
  return {src: img.src, bytes: buf.byteLength,
          sha: [...new Uint8Array(d)].map(b => b.toString(16).padStart(2, '0')).join('')};
}"""


def wait_idle(page, timeout: float, what: str, settle: float = 2.0):
    """Wait until the kernel is idle and no cell shows [*] for ``settle`` seconds."""
    t0 = time.time()
    idle_since, status, busy = None, None, None
    while time.time() - t0 < timeout:
        status = page.evaluate(KERNEL_STATUS)
        busy = page.locator(".jp-InputArea-prompt:has-text('[*]')").count()
        if status == "idle" and busy == 0:
            idle_since = idle_since or time.time()
            if time.time() - idle_since > settle:
                log(f"{what}: kernel idle after {time.time() - t0:.1f} s")
                return
        else:
            idle_since = None
        time.sleep(0.5)
    raise TimeoutError(f"{what}: kernel not idle after {timeout:.0f} s (status {status}, busy cells {busy})")


def check_notebook(browser, server: Server, name: str, label: str, screenshot: Path) -> dict:
    """Open one notebook, run all, move the slider labelled ``label`` MOVES times; returns the
    measurements (raises AssertionError on a failed check)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    try:
        t0 = time.time()
        page.goto(server.url(f"lab/workspaces/{name}/tree/{name}.ipynb"))   # one notebook per workspace
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=180_000)
        while page.evaluate(KERNEL_STATUS) != "idle":
            if time.time() - t0 > 180:
                raise TimeoutError(f"{name}: kernel not ready after 180 s (status {page.evaluate(KERNEL_STATUS)})")
            time.sleep(0.3)
        log(f"{name}: page and kernel ready after {time.time() - t0:.1f} s")
        t_run = time.time()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        while True:   # until every code cell has run (read from the notebook model) and the kernel is idle
            errors = page.evaluate(ERROR_OUTPUTS)
            assert not errors, f"{name}: a cell raised: {errors}"
            unrun = page.evaluate(UNRUN_CELLS)
            if unrun == 0 and page.evaluate(KERNEL_STATUS) == "idle":
                break
            if time.time() - t_run > RUN_TIMEOUT:
                raise TimeoutError(f"{name}: {unrun} code cells still not run after {RUN_TIMEOUT:.0f} s")
            time.sleep(0.5)
        wait_idle(page, 60, f"{name}: run all")
        run_all_s = time.time() - t_run

        slider = page.locator(".jupyter-widgets.widget-slider").filter(has_text=label).first
        slider.scroll_into_view_if_needed()
        readout = slider.locator(".widget-readout")
        t1 = time.time()
        while not readout.inner_text().strip() and time.time() - t1 < 10:   # drawn once scrolled into view
            time.sleep(0.1)
        state = page.evaluate(IMAGE_STATE, label)
        assert state, f"{name}: no explorer image next to the {label} slider"
        values, latencies, shas = [readout.inner_text()], [], [state["sha"]]
        handle = slider.locator(".noUi-handle").first
        for k in range(MOVES):
            handle.focus()
            before = state
            handle.press("ArrowRight")
            t1 = time.time()
            while time.time() - t1 < 120:
                state = page.evaluate(IMAGE_STATE, label)
                if state and state["sha"] != before["sha"]:
                    break
                time.sleep(0.05)
            latencies.append(round(time.time() - t1, 2))
            values.append(readout.inner_text())
            shas.append(state["sha"] if state else None)
            assert values[-1] != values[-2], f"{name}: the {label} slider did not move ({values[-2]})"
            assert state and state["sha"] != before["sha"], \
                f"{name}: the image did not change within 120 s after moving {label} {values[-2]} → {values[-1]}"
            log(f"{name}: {label} {values[-2]} → {values[-1]}: new image ({state['bytes']} bytes, "
                f"sha {state['sha'][:12]}) {latencies[-1]:.2f} s after the key press")
            wait_idle(page, 120, f"{name}: re-render {k + 1}", settle=0.5)
        errors = page.evaluate(ERROR_OUTPUTS)
        assert not errors, f"{name}: a re-render raised: {errors}"
        news = page.locator(".jp-toast-button:has-text('No')")   # the "Jupyter news?" toast
        if news.count():
            news.first.click()
        page.locator(".jupyter-widgets.widget-vbox").filter(has=slider).first.scroll_into_view_if_needed()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(screenshot, page.screenshot())
        return {"notebook": name, "slider": label, "values": values, "latencies_s": latencies,
                "median_latency_s": statistics.median(latencies), "run_all_s": round(run_all_s, 1),
                "image_shas": [s[:12] if s else None for s in shas], "screenshot": str(screenshot)}
    finally:
        page.close()


def run(only=None, keep: bool = False, out: Path = OUT) -> list[dict]:
    """Check the notebooks (all of NOTEBOOKS, or those whose name starts with one of ``only``)."""
    from playwright.sync_api import sync_playwright
    names = [n for n in NOTEBOOKS if not only or any(n.startswith(o) for o in only)]
    if not names:
        raise SystemExit(f"no notebook matches {only}; have {list(NOTEBOOKS)}")
    t_start = time.time()
    folder = Path(tempfile.mkdtemp(prefix="browser_check_"))
    results, ok = [], False
    try:
        for n in names:
            quick_copy(n, folder, NOTEBOOKS[n][1])
        with Server(folder) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
            try:
                for n in names:
                    results.append(check_notebook(browser, server, n, NOTEBOOKS[n][0], out / f"{n}.png"))
            finally:
                browser.close()
        ok = True
    finally:
        if keep or not ok:
            log(f"kept {folder} (server.log there)")
        else:
            shutil.rmtree(folder, ignore_errors=True)
        log(f"{'PASSED' if ok else 'FAILED'}; wall {time.time() - t_start:.1f} s")
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NB", help="notebook number prefixes, e.g. 04")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (notebook copies, server.log)")
    a = ap.parse_args(argv)
    why = missing()
    if why:
        print(f"browser_check: {why}", file=sys.stderr)
        return 2
    results = run(a.only, a.keep)
    for r in results:
        print(f"{r['notebook']}: {r['slider']} {' → '.join(r['values'])}; new image after "
              f"{', '.join(f'{x:.2f}' for x in r['latencies_s'])} s (median {r['median_latency_s']:.2f} s, "
              f"goal ≤ {LATENCY_GOAL_S:g} s); run all {r['run_all_s']} s; screenshot {r['screenshot']}")
    slow = [r["notebook"] for r in results if r["median_latency_s"] > LATENCY_GOAL_S]
    if slow:
        print(f"browser_check: median re-render latency over {LATENCY_GOAL_S:g} s in {slow}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
