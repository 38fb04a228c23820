"""Browser check of the γ slider of notebooks/04_slerp.ipynb (issue 5 §4).

Needs, besides the project's venv with the ``notebooks`` extra (not in pyproject.toml on purpose):

    apt-get update && apt-get install -y chromium
    . .venv/bin/activate && pip install jupyterlab playwright

(``playwright install`` is not needed: Debian's /usr/bin/chromium is used; override with
$CHROMIUM.) Usage: ``python scripts/browser_check.py [--keep]`` from the repository root.

What it does: copies the notebook into a temporary folder with quick parameters (an
"injected-parameters" cell after the parameters cell, as papermill would add), starts
``jupyter lab --no-browser`` there on a free port with a random token, opens the notebook in
headless Chromium (Playwright), runs all cells, waits for the kernel to go idle, reads the bytes
of the explorer's image (the ``<img>`` of its ``widgets.Image``), presses the right-arrow key on
the γ slider's handle (+1 step, 0.05), waits for the image to be replaced and asserts that its
bytes changed. A screenshot goes to docs/browser_check.png; the server is shut down at the end.
Exit status 0 = passed.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_slerp.ipynb"
SCREENSHOT = ROOT / "docs" / "browser_check.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUICK = dict(threads=1, inversion_steps=20, steps=4, widget_steps=12, n_pairs=1, gammas=[0.0, 1.0])
RUN_TIMEOUT = float(os.environ.get("BROWSER_CHECK_TIMEOUT", 600))   # seconds for "run all cells"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def quick_copy(folder: Path) -> Path:
    """The notebook with a kernelspec and quick parameters injected after its parameters cell."""
    nb = json.loads(NOTEBOOK.read_text())
    nb.setdefault("metadata", {})["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}
    idx = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", []))
    src = "# quick parameters (scripts/browser_check.py)\n" + "\n".join(f"{k} = {v!r}" for k, v in QUICK.items())
    nb["cells"].insert(idx + 1, {"cell_type": "code", "execution_count": None, "id": "browser-check-params",
                                 "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
                                 "source": src.splitlines(keepends=True)})
    dst = folder / NOTEBOOK.name
    dst.write_text(json.dumps(nb, indent=1))
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int, token: str) -> subprocess.Popen:
    env = dict(os.environ, DIFFSTYLE_LAB_DATA=os.environ.get("DIFFSTYLE_LAB_DATA", str(ROOT / "data")),
               JUPYTER_RUNTIME_DIR=str(folder / ".runtime"), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={folder}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={folder / '.workspaces'}",
           f"--LabApp.user_settings_dir={folder / '.settings'}", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    logf = open(folder / "server.log", "w")
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    t0 = time.time()
    while time.time() - t0 < 120:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({proc.returncode}); see {folder / 'server.log'}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            log(f"server up on port {port} after {time.time() - t0:.1f} s")
            return proc
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("jupyter lab did not answer within 120 s")


def stop_server(proc: subprocess.Popen, port: int, token: str):
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(req, timeout=10).read()
        proc.wait(timeout=20)
    except Exception:  # noqa: BLE001
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    log(f"server stopped (exit {proc.returncode})")


KERNEL_STATUS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return k ? k.status : null;
}"""

# hash of the explorer image's bytes (the <img> follows the slider in the view's VBox)
IMAGE_STATE = """async () => {
  const imgs = [...document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets img')];
  const img = imgs.find(i => i.closest('.widget-vbox') && i.closest('.widget-vbox').querySelector('.widget-slider'));
  if (!img || !img.src) return null;
  const buf = await (await fetch(img.src)).arrayBuffer();
  const d = await crypto.subtle.digest('SHA-256', buf);
  return {src: img.src, bytes: buf.byteLength,
          sha: [...new Uint8Array(d)].map(b => b.toString(16).padStart(2, '0')).join('')};
}"""


def wait_idle(page, timeout: float, what: str):
    """Wait until the kernel is idle and no cell shows [*]."""
    t0 = time.time()
    idle_since = None
    while time.time() - t0 < timeout:
        status = page.evaluate(KERNEL_STATUS)
        busy_cells = page.locator(".jp-InputArea-prompt:has-text('[*]')").count()
        if status == "idle" and busy_cells == 0:
            idle_since = idle_since or time.time()
            if time.time() - idle_since > 2:
                log(f"{what}: kernel idle after {time.time() - t0:.1f} s")
                return
        else:
            idle_since = None
        time.sleep(1)
    raise TimeoutError(f"{what}: kernel not idle after {timeout:.0f} s (status {status}, busy cells {busy_cells})")


def check(base: str) -> dict:
    from playwright.sync_api import sync_playwright
    result = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(base)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=180_000)
        t0 = time.time()
        while page.evaluate(KERNEL_STATUS) != "idle":
            if time.time() - t0 > 180:
                raise TimeoutError(f"kernel not ready after 180 s (status {page.evaluate(KERNEL_STATUS)})")
            time.sleep(0.5)
        log(f"kernel ready after {time.time() - t0:.1f} s")

        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        log("run all cells")
        time.sleep(3)
        wait_idle(page, RUN_TIMEOUT, "run all")
        unrun = page.evaluate("""() => {  // from the notebook model, not the (windowed) DOM
          const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
          let n = 0;
          for (let i = 0; i < cells.length; i++) {
            const c = cells.get(i);
            if (c.type === 'code' && !c.executionCount) n++;
          }
          return n;
        }""")
        assert unrun == 0, f"{unrun} code cells were not executed"
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                              ":has-text('Traceback'), .jp-RenderedText[data-mime-type="
                              "'application/vnd.jupyter.error']")
        if errors.count():
            raise AssertionError("a cell raised: " + errors.first.inner_text()[:2000])

        slider = page.locator(".jupyter-widgets.widget-slider").filter(has_text="γ").first
        slider.scroll_into_view_if_needed()
        readout = slider.locator(".widget-readout")
        before = page.evaluate(IMAGE_STATE)
        assert before, "no explorer image found"
        g0 = readout.inner_text()
        log(f"before: γ={g0}, image {before['bytes']} bytes sha {before['sha'][:12]}")

        handle = slider.locator(".noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        t1 = time.time()
        after = before
        while time.time() - t1 < 120:
            time.sleep(0.5)
            after = page.evaluate(IMAGE_STATE)
            if after and after["sha"] != before["sha"]:
                break
        wait_idle(page, 120, "re-render")
        after = page.evaluate(IMAGE_STATE)
        g1 = readout.inner_text()
        log(f"after:  γ={g1}, image {after['bytes']} bytes sha {after['sha'][:12]} "
            f"({time.time() - t1:.1f} s after the key press)")
        page.locator(".jupyter-widgets.widget-vbox").filter(has=page.locator(".widget-slider")).first \
            .scroll_into_view_if_needed()
        news = page.locator(".jp-toast-button:has-text('No')")  # the "Jupyter news?" toast
        if news.count():
            news.first.click()
            time.sleep(0.5)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        log(f"screenshot: {SCREENSHOT.relative_to(ROOT)}")
        browser.close()
        result = dict(gamma_before=g0, gamma_after=g1, before=before, after=after)
    assert result["gamma_before"] != result["gamma_after"], f"slider did not move ({result['gamma_before']})"
    assert result["before"]["sha"] != result["after"]["sha"], "the image did not change after moving γ"
    return result


def main():
    t_start = time.time()
    keep = "--keep" in sys.argv
    folder = Path(tempfile.mkdtemp(prefix="browser_check_"))
    token = hashlib.sha256(os.urandom(16)).hexdigest()[:32]
    port = free_port()
    quick_copy(folder)
    log(f"notebook copy in {folder} with {QUICK}")
    proc = start_server(folder, port, token)
    ok = False
    try:
        check(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}")
        ok = True
    finally:
        stop_server(proc, port, token)
        if keep or not ok:
            log(f"kept {folder} (server.log there)")
        else:
            shutil.rmtree(folder, ignore_errors=True)
        log(f"{'PASSED' if ok else 'FAILED'}; wall {time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
