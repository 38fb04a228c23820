"""The notebooks: sources and paired .ipynb agree, committed .ipynb carry no outputs, each has a
papermill ``parameters`` cell and a hosted-setup cell that does nothing locally, and every notebook
executes with quick parameters (papermill) and shows its figures. Also the helpers of
``diffstyle_lab.lab.notebook`` and ``diffstyle_lab.lab.run_notebooks``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
SOURCES = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
NAMES = [p.stem for p in SOURCES]
EXPECTED = ["01_tour_of_h_space", "02_replacing_h", "03_correlations", "04_slerp", "05_calibration",
            "06_local_mixing", "07_out_of_domain", "08_sweep", "09_when_h_carries_content"]

jupytext = pytest.importorskip("jupytext")


def _cells(nb):
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def test_all_notebooks_are_there():
    assert NAMES == EXPECTED


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_py_and_ipynb_are_in_sync(src):
    ipynb = src.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run `jupytext --sync {src.relative_to(ROOT)}`"
    a, b = _cells(jupytext.read(str(src))), _cells(jupytext.read(str(ipynb)))
    assert len(a) == len(b), f"{src.name} has {len(a)} cells, {ipynb.name} {len(b)}: run jupytext --sync"
    for k, (ca, cb) in enumerate(zip(a, b)):
        assert ca == cb, f"cell {k} differs between {src.name} and {ipynb.name}: run jupytext --sync"


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_committed_ipynb_has_no_outputs(src):
    nb = json.loads(src.with_suffix(".ipynb").read_text())
    for k, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code":
            assert c.get("outputs") == [], f"cell {k} of {src.stem}.ipynb carries outputs"
            assert c.get("execution_count") is None, f"cell {k} of {src.stem}.ipynb has an execution count"


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_parameters_cell(src):
    from diffstyle_lab.lab import run_notebooks as rn
    nb = jupytext.read(str(src))
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    params = rn.declared_parameters(nb)
    assert params.get("model", "missing") is None, "model=None (→ the default model) must be a parameter"
    assert "device" in params and "out_dir" in params and "threads" in params
    # every quick setting the runner would pass is a literal the notebook declares
    quick = rn.parameters_for(src.stem, nb, quick=True)
    assert quick, f"{src.stem}: no quick parameters apply"
    for k, v in quick.items():
        assert type(v) is type(params[k]) or params[k] is None, f"{k}: quick {v!r} vs default {params[k]!r}"
    # the parameters cell comes after the hosted-setup cell and before any use of the model
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code.index(tagged[0]) == 1


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_markdown_opens_with_what_you_learn_and_closes_with_what_figures_show(src):
    nb = jupytext.read(str(src))
    assert nb.cells[0].cell_type == "markdown" and "What you will learn" in nb.cells[0].source
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any(s.startswith("## What the figures show") for s in md)
    # the closing code cell prints measured values
    assert "Measured on" in nb.cells[-1].source and nb.cells[-1].cell_type == "code"


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_hosted_setup_cell_is_short_and_does_nothing_locally(src, monkeypatch):
    nb = jupytext.read(str(src))
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "google.colab" in first.source and "pip install" in first.source and "DIFFSTYLE_LAB_REPO" in first.source
    code = [ln for ln in first.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(code) <= 3, f"{src.name}: the hosted-setup cell has {len(code)} lines of code"
    # every notebook has the same one
    assert first.source == next(c for c in jupytext.read(str(SOURCES[0])).cells if c.cell_type == "code").source
    for k in ("COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE", "COLAB_GPU", "DIFFSTYLE_LAB_DEVICE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    import subprocess

    def refuse(*a, **k):
        raise AssertionError("the hosted-setup cell ran a command on a local kernel")
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(os, "system", refuse)
    env_before, path_before = dict(os.environ), list(sys.path)
    ns: dict = {}
    exec(compile(first.source, f"{src.name}:setup", "exec"), ns)
    assert dict(os.environ) == env_before and sys.path == path_before
    assert "torch" not in ns


# ---------------------------------------------------------------------------------------------
# Execution with papermill (quick parameters)

@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    pytest.importorskip("papermill")
    from diffstyle_lab.lab import run_notebooks as rn
    out = tmp_path_factory.mktemp("notebooks")
    summary = rn.run_all(out=out, quick=True, html=False, jobs=2, timeout=600, echo=lambda *a: None)
    return out, {r["notebook"]: r for r in summary["notebooks"]}, summary


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_executes_with_quick_parameters(executed, name):
    import nbformat
    out, rows, _ = executed
    r = rows[name]
    assert r["ok"], f"{name} failed: {r['error']} (see {r['ipynb']})"
    nb = nbformat.read(r["ipynb"], as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    n_png = sum("image/png" in o.get("data", {}) for o in outputs)
    assert n_png >= 2, f"{name}: expected figures in the executed notebook, found {n_png}"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Measured on" in text and "nan s" not in text
    # the papermill parameters were injected (quick steps, out_dir) and the figures saved there
    injected = [c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(injected) == 1 and "out_dir" in injected[0].source
    assert list((out / name).glob("*.png")), f"{name} saved no figure into its out_dir"
    if "widgets.Dropdown" in "".join(c.source for c in nb.cells):
        assert "re-render" in text and "took" in text


def _stranger_workspace(root):
    """A tiny random 64-px diffusers U-Net (h grid 16×16, not the default model's 32 px and 4×4) saved
    as a pipeline folder, and folders of user images of other sizes and shapes."""
    from PIL import Image
    from diffstyle_lab.models import DEFAULT_SCHEDULER, tiny_unet
    folder = root / "stranger"
    tiny_unet(levels=3, sample_size=64, seed=1).save_pretrained(str(folder / "unet"))
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(DEFAULT_SCHEDULER))
    rng = np.random.RandomState(0)
    for d, shape in (("content", (90, 70, 3)), ("style", (48, 64, 3)), ("ood", (100, 100, 3))):
        (root / d).mkdir()
        for i in range(3):
            Image.fromarray((rng.rand(*shape) * 255).astype(np.uint8)).save(root / d / f"{d}{i}.{'png' if i else 'jpg'}")
    return folder


@pytest.mark.slow
def test_every_notebook_runs_on_a_stranger_model_and_user_images(tmp_path):
    """The --quick set on another diffusers U-Net of another size (64 px, random weights), with
    folders of the user's own images: every notebook, 09 included, runs; each says which model it
    ran on; 09 says that it has no before/after comparison and no emergence curve for this model;
    the paper box says "not measured for this model"."""
    import nbformat
    from diffstyle_lab.lab import run_notebooks as rn
    folder = _stranger_workspace(tmp_path)
    params = {"model": str(folder), "content_dir": str(tmp_path / "content"), "style_dir": str(tmp_path / "style"),
              "ood_dir": str(tmp_path / "ood")}
    summary = rn.run_all(out=tmp_path / "out", quick=True, html=False, jobs=1, timeout=600, parameters=params,
                         echo=lambda *a: None)
    assert [r["notebook"] for r in summary["notebooks"]] == EXPECTED
    for r in summary["notebooks"]:
        assert r["ok"], f"{r['notebook']} on a 64-px stranger model: {r['error']} (see {r['ipynb']})"
        assert r["parameters"]["model"] == str(folder)
        nb = nbformat.read(r["ipynb"], as_version=4)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
        md = "".join(o.get("data", {}).get("text/markdown", "") for o in outs)
        assert str(folder) in text, r["notebook"]
        name = r["notebook"]
        if name[:2] in ("01", "02", "04", "05", "06", "08"):
            assert r["parameters"]["content_dir"] == params["content_dir"] and "style_dir" in r["parameters"]
        if name[:2] in ("02", "04", "05", "06", "08"):
            assert "not measured for this model" in md, f"{name}: the paper box"
        if name.startswith("06"):
            assert "h grid 16×16" in text
        if name.startswith("07"):
            assert r["parameters"]["ood_dir"] == params["ood_dir"] and "styles from " + params["ood_dir"] in text
        if name.startswith("09"):
            assert "no before/after comparison" in text and "no emergence curve for" in text


@pytest.mark.slow
def test_sweep_writes_a_tidy_table(executed):
    import pandas as pd
    from diffstyle_lab.lab import run_notebooks as rn
    out, rows, _ = executed
    df = pd.read_csv(out / "08_sweep" / "sweep.csv")
    q = {**rn.QUICK_COMMON, **rn.QUICK["08_sweep"]}
    assert len(df) == len(set(q["gammas"]) | {0.0, STORED["gamma"]}) * len(q["t_edits"]) * q["n_pairs"]
    for col in ("pair", "gamma", "t_edit", "struct_content", "struct_style", "bg_dist_style", "bg_dist_content",
                "psnr_content", "psnr_style"):
        assert col in df.columns
    assert sorted(df.gamma.unique()) == sorted(set(q["gammas"]) | {0.0, STORED["gamma"]})   # γ = 0 and the model's γ added
    assert df[["struct_content", "bg_dist_style", "psnr_style"]].notna().all().all()
    assert (out / "08_sweep" / "sweep.png").exists()


@pytest.mark.slow
def test_timings_and_html(executed, tmp_path):
    from diffstyle_lab.lab import run_notebooks as rn
    out, rows, summary = executed
    t = json.loads((out / "timings.json").read_text())
    assert [r["notebook"] for r in t["notebooks"]] == EXPECTED and t["quick"] is True
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in t["notebooks"])
    html = rn.to_html(rows["04_slerp"]["ipynb"], tmp_path / "04.html").read_text()
    assert "data:image/png;base64" in html and "What the figures show" in html


# ---------------------------------------------------------------------------------------------
# run_notebooks helpers

def test_runner_passes_only_declared_parameters():
    from diffstyle_lab.lab import run_notebooks as rn
    nb = jupytext.read(str(NB_DIR / "01_tour_of_h_space.py"))
    p = rn.parameters_for("01_tour_of_h_space", nb, quick=True, extra={"gamma": 0.5, "inversion_steps": 12},
                          out_dir="/x", cache_dir="/c")
    assert "gamma" not in p and "cache_dir" not in p            # 01 declares neither
    assert p["inversion_steps"] == 12 and p["out_dir"] == "/x"  # extra wins over quick
    nb8 = jupytext.read(str(NB_DIR / "08_sweep.py"))
    p8 = rn.parameters_for("08_sweep", nb8, quick=True, cache_dir="/c")
    assert p8["gammas"] == rn.QUICK["08_sweep"]["gammas"] and p8["cache_dir"] == "/c"
    assert rn.parameters_for("08_sweep", nb8) == {}


def test_runner_cli(capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    assert rn.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in EXPECTED)
    with pytest.raises(SystemExit):
        rn.main(["--only", "99_nothing"])
    assert rn.build_parser().parse_args(["-p", "gammas=[0.1, 0.2]", "-p", "model=runs/x"]).param == \
        [("gammas", [0.1, 0.2]), ("model", "runs/x")]


# ---------------------------------------------------------------------------------------------
# notebook helpers

def test_explorer_widget_and_static_path():
    widgets = pytest.importorskip("ipywidgets")
    from diffstyle_lab.lab import notebook as nb
    calls = []
    fixed_img = torch.zeros(3, 8, 8)

    def render(a, b=1):
        calls.append((a, b))
        return {"input": fixed_img, "out": torch.full((3, 8, 8), a / 10.0), "map": torch.rand(4, 4)}

    view = nb.Explorer(render, {"a": widgets.IntSlider(value=1, min=0, max=9)}, fixed={"b": 2})
    view.show()
    assert calls == [(1, 2)] and len(view.latencies) == 1
    image = view.widget.children[-1]
    assert isinstance(image, widgets.Image) and image.value[:4] == b"\x89PNG"   # no Output widget (nbclient#312)
    first = image.value
    lat = view.set(a=3)                        # a slider move re-renders once
    assert calls[-1] == (3, 2) and len(view.latencies) == 2 and lat == view.latencies[-1] >= 0
    assert image.value != first
    view.controls["a"].value = 5               # as the frontend would
    assert calls[-1] == (5, 2)
    rows, labels, names = view.static_rows([{"a": 0}, {"a": 9}])
    assert names == ["input", "out", "map"] and labels == ["a=0", "a=9"]
    assert rows[1][0] is None and rows[1][1] is not None   # the unchanged input is drawn once
    fig = view.static_figure([{"a": 0}, {"a": 9}])
    assert len(fig.axes) == 6
    fig = view.sweep_figure("a", [0, 4, 8], rows=[{"b": 1}, {"b": 2}], keep=("input",), result="out")
    assert len(fig.axes) == 2 * 4
    import matplotlib.pyplot as plt
    plt.close("all")


def test_mask_toggles_drive_an_explorer():
    pytest.importorskip("ipywidgets")
    from diffstyle_lab.lab import notebook as nb
    t = nb.mask_toggles(2, 3, initial=[[1, 0, 0], [0, 0, 1]])
    assert t.value == ((1, 0, 0), (0, 0, 1))
    seen = []
    view = nb.Explorer(lambda mask: seen.append(nb.mask_from_cells(mask)) or {"m": nb.mask_from_cells(mask)},
                       {"mask": t})
    view.show()
    t._buttons[0][1].value = True              # a click on cell (0, 1)
    assert t.value == ((1, 1, 0), (0, 0, 1))
    assert torch.equal(seen[-1], torch.tensor([[1.0, 1, 0], [0, 0, 1]]))
    t.value = ((0, 0, 0), (1, 1, 1))           # setting the value moves the buttons
    assert [b.value for b in t._buttons[1]] == [True, True, True]
    assert torch.equal(nb.mask_from_cells({(0, 2)}, shape=(2, 3)), torch.tensor([[0.0, 0, 1], [0, 0, 0]]))
    up = nb.upsample_mask(torch.tensor([[1.0, 0], [0, 1]]), 4)
    assert up.shape == (4, 4) and up[:2, :2].eq(1).all() and up[:2, 2:].eq(0).all()
    with pytest.raises(ValueError):
        nb.mask_toggles(2, 2, initial=[[1, 0, 0]])


def test_inversion_store_inverts_each_image_once(tiny, images, tmp_path):
    import diffstyle_lab as dl
    from diffstyle_lab.lab import notebook as nb
    store = nb.InversionStore(tiny, steps=5, disk=tmp_path / "c")
    a = store(images)
    assert (store.hits, store.misses) == (0, 2)
    b = store(torch.cat([images[1:], images[1:]]))      # seen before, and twice in one batch
    assert (store.hits, store.misses) == (2, 2) and len(store) == 2
    assert torch.equal(b.x_T[0], a.x_T[1]) and torch.equal(b.h[1], a.h[1])
    ref = dl.ddim_invert(tiny, images, steps=5, progress=False)
    assert torch.allclose(a.x_T, ref.x_T, atol=1e-5) and a.ts == ref.ts
    assert list((tmp_path / "c").glob("*/*.safetensors"))          # written through to disk
    fresh = nb.InversionStore(tiny, steps=5, disk=tmp_path / "c")
    fresh(images)
    assert fresh.disk.hits == 2                                     # a new kernel reads the disk cache


def test_measures_and_layout(tiny, images):
    from diffstyle_lab import hooks
    from diffstyle_lab.evaluate import metrics
    from diffstyle_lab.lab import notebook as nb
    df = metrics.measures(images, images, images.flip(0))
    assert len(df) == 2
    assert np.allclose(df.struct_content, 1.0) and (df.bg_dist_content.abs() < 1e-4).all()
    assert (df.out_of_range == 0).all() and (df.tv > 0).all()
    tab = hooks.block_table(tiny)
    assert nb.h_shape(tiny) == tuple(tab.attrs["h"])
    assert tab["hook point"].str.contains("h = ").sum() == 1
    assert tab.parameters.sum() == sum(p.numel() for p in tiny.unet.parameters()) - \
        sum(p.numel() for n, p in tiny.unet.named_parameters() if n.startswith(("time_", "conv_norm_out")))
    assert not tiny.hooked.has_hooks()


def test_block_table_shapes_are_the_blocks_outputs(tiny):
    """The shapes the table derives from the config are what each block really outputs."""
    from diffstyle_lab import hooks
    u = tiny.unet
    seen, handles = {}, []
    mods = [("conv_in", u.conv_in)] + [(f"down_blocks[{i}]", b) for i, b in enumerate(u.down_blocks)] + \
        [("mid_block", u.mid_block)] + [(f"up_blocks[{i}]", b) for i, b in enumerate(u.up_blocks)] + [("conv_out", u.conv_out)]
    for name, mod in mods:
        handles.append(mod.register_forward_hook(
            lambda m, a, o, name=name: seen.__setitem__(name, "×".join(map(str, (o[0] if isinstance(o, tuple) else o).shape[1:])))))
    try:
        with torch.no_grad():
            tiny.hooked.eps(torch.zeros(1, 3, tiny.sample_size, tiny.sample_size), 0)
    finally:
        for hd in handles:
            hd.remove()
    tab = hooks.block_table(tiny)
    assert dict(zip(tab.block, tab["output (C×H×W)"])) == seen


def test_ood_images_are_the_shipped_ones():
    from PIL import Image
    from diffstyle_lab.lab import notebook as nb
    from diffstyle_lab.faces.procedural import ood_images
    made = ood_images()
    assert set(made) == {"stripes", "sunset", "clouds", "checker", "swirl", "mosaic"}
    assert not np.array_equal(made["clouds"], ood_images(seed=1)["clouds"])
    for name, a in made.items():
        assert a.shape == (128, 128, 3) and a.dtype == np.uint8 and a.std() > 10
        shipped = nb.ood_folder() / f"{name}.png"
        assert shipped.exists(), f"{shipped} missing: python -c 'from diffstyle_lab.faces.procedural import write_ood_images as w; w(\"data/ood\")'"
        assert np.array_equal(np.asarray(Image.open(shipped).convert("RGB")), a)
    assert (nb.ood_folder() / "README.md").exists()


def test_cli_forwards_options_to_the_notebook_runner(capsys):
    from diffstyle_lab.cli import main
    assert main(["notebooks", "--list"]) == 0
    out = capsys.readouterr().out
    assert "01_tour_of_h_space" in out and "08_sweep" in out


def test_runner_schedules_longest_first_on_free_cores(tmp_path, monkeypatch):
    from diffstyle_lab.lab import run_notebooks as rn
    srcs = rn.notebooks()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(rn, "busy_cores", lambda window=0.5: 0.1)
    assert rn.auto_jobs(8) == 2 and rn.auto_jobs(1) == 1
    monkeypatch.setattr(rn, "busy_cores", lambda window=0.5: 1.8)      # busy now: one at a time
    assert rn.auto_jobs(8) == 1
    # the load average is only the fallback where /proc/stat is absent
    monkeypatch.setattr(rn, "busy_cores", lambda window=0.5: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert rn.auto_jobs(8) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (3.7, 3.0, 2.0))
    assert rn.auto_jobs(8) == 1
    order = [p.stem for p in rn.longest_first(srcs, tmp_path, quick=False)]
    assert order[:2] == ["03_correlations", "08_sweep"] and sorted(order) == EXPECTED
    # a previous run's timings (same mode) win over the hint
    (tmp_path / "timings.json").write_text(json.dumps({"quick": False, "notebooks": [
        {"notebook": n, "wall_s": 100.0 if n == "01_tour_of_h_space" else 1.0, "ok": True} for n in EXPECTED]}))
    assert rn.longest_first(srcs, tmp_path, quick=False)[0].stem == "01_tour_of_h_space"
    assert rn.longest_first(srcs, tmp_path, quick=True)[0].stem == "03_correlations"
    text = rn.table([{"notebook": "b", "wall_s": 2.0, "cpu_s": 1.0, "ok": True, "error": None},
                     {"notebook": "a", "wall_s": 3.0, "cpu_s": 1.5, "ok": False, "error": "boom"}])
    assert text.splitlines()[1].startswith("a ") and "FAILED — boom" in text


def test_collect_inject_shares_the_generate_trajectories(tiny):
    """Notebook 03 takes its 'generate' table from the content generations of the 'inject' run
    (``also_generate``): the same table as ``source="generate"``, without generating twice."""
    import diffstyle_lab as dl
    from diffstyle_lab.stats import trajectory_norms as tn
    kw = dict(steps=5, batch_size=3, seed=4, progress=False)
    cfg = dl.InjectionConfig(gamma=0.3, t_edit=400, t_boost=0, steps=5)
    shared = []
    inj = tn.collect(tiny, 5, source="inject", config=cfg, also_generate=shared, **kw)
    alone = tn.collect(tiny, 5, source="generate", **kw)
    got = tn.NormTable.concat(shared)
    assert len(shared) == 2 and got.n == alone.n == inj.n == 5 and got.source == "generate"
    assert list(got.ts) == list(alone.ts) and set(got.values) == set(alone.values)
    for q in alone.values:
        assert np.array_equal(got.values[q], alone.values[q], equal_nan=True), q
    with pytest.raises(ValueError, match="also_generate"):
        tn.collect(tiny, 3, source="generate", also_generate=[], **kw)


def test_free_cores_are_read_from_proc_stat(tmp_path, monkeypatch):
    """/proc/stat parsing: busy = all but idle and iowait; two reads over a window give busy cores."""
    from diffstyle_lab.lab import run_notebooks as rn
    text = ("cpu  100 5 45 800 50 0 0 0 0 0\ncpu0 50 2 20 400 25 0 0 0 0 0\n"
            "cpu1 50 3 25 400 25 0 0 0 0 0\nintr 1 2 3\n")
    assert rn.cpu_times(text) == (150.0, 1000.0)
    assert rn.cpu_times("cpu 1 2 3 4\n") == (6.0, 10.0)          # an old kernel with four fields
    with pytest.raises(ValueError):
        rn.cpu_times("intr 1 2\n")
    reads = iter(["cpu  100 0 0 900 0 0 0 0\n", "cpu  175 0 0 925 0 0 0 0\n"])   # 75 of 100 jiffies busy

    class Stat:
        def __init__(self, *a, **k):
            self.text = next(reads)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return self.text
    monkeypatch.setattr("builtins.open", Stat)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert rn.busy_cores(window=0.0) == pytest.approx(3.0)
    monkeypatch.undo()
    assert rn.busy_cores(window=0.0, stat=str(tmp_path / "missing")) is None
    if Path("/proc/stat").exists():
        b = rn.busy_cores(window=0.05)
        assert b is not None and 0.0 <= b <= (os.cpu_count() or 1) + 1e-6


# ---------------------------------------------------------------------------------------------
# claims computed from numbers, the paper box, the model's settings

def test_claim_compares_with_no_injection_and_both_baselines():
    from diffstyle_lab.lab import notebook as nb
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.05, 40)
    up = base + 0.2 + rng.normal(0, 0.01, 40)           # clearly higher than γ = 0
    same = base + rng.normal(0, 0.05, 40)               # no effect
    refs = {nb.NO_INJECTION: base, nb.PIXEL_BLEND: base + 0.5, nb.REINHARD: base - 0.5}
    s = nb.claim("structure similarity with the content", up, refs, better="higher")
    assert s.startswith("structure similarity with the content: injection 0.")
    parts = s.split("; ")
    assert "no injection (γ = 0)" in parts[1] and parts[1].endswith("higher (better)")
    assert "pixel blend" in parts[2] and parts[2].endswith("lower (worse)")
    assert "Reinhard" in parts[3] and "higher (better)" in parts[3]
    assert "n = 40 pairs, paired bootstrap 95 % CI" in s
    s0 = nb.claim("x", same, refs)
    assert s0.split("; ")[1].endswith("no effect detected")
    c = nb.compare(same, base)
    assert c["diff"][1] < 0 < c["diff"][2] and c["effect"] == "no effect detected"
    # a missing reference is named, not skipped
    assert "Reinhard colour transfer: not measured" in nb.claim("x", up, {nb.NO_INJECTION: base})
    # one pair: no interval, said so
    s1 = nb.claim("x", [0.3], {nb.NO_INJECTION: [0.2], nb.PIXEL_BLEND: [0.1], nb.REINHARD: [0.4]})
    assert "no interval (n too small)" in s1 and "n = 1 pair: too few for an interval" in s1
    assert "too few for an interval (at least 4)" in nb.claim("x", up[:3], {k: v[:3] for k, v in refs.items()})
    assert "n = 3 pairs, paired bootstrap" in nb.claim("x", up[:3], {k: v[:3] for k, v in refs.items()}, min_n=3)
    with pytest.raises(ValueError, match="same units"):
        nb.compare([1.0, 2.0], [1.0, 2.0, 3.0])


def test_gap_sentences_and_effect_words():
    from diffstyle_lab.lab import notebook as nb
    assert nb.gap_sentence((0.15, 0.12, 0.18)) == "content injection closes 15 % [12 %, 18 %] of the gap to the ideal"
    assert nb.gap_sentence((0.02, -0.01, 0.05)).endswith("— no effect detected")
    assert nb.effect(0.1, 0.2) == "higher" and nb.effect(-0.2, -0.1) == "lower" and nb.effect(-0.1, 0.1) == \
        "no effect detected" and nb.effect(float("nan"), 1.0).startswith("no interval")
    # triples against a constant 0 (doing nothing closes 0) and against each other
    assert nb.compare((0.15, 0.12, 0.18), 0.0)["effect"] == "higher"
    assert nb.compare((0.15, 0.12, 0.18), (0.4, 0.35, 0.45))["effect"] == "lower"
    assert nb.compare((0.15, 0.12, 0.18), (0.17, 0.1, 0.2))["effect"].startswith("no difference detected")
    assert nb.interval_text(0.5, 0.4, 0.6, share=True, digits=2) == "50 % [40 %, 60 %]"


def _summary(weights="0" * 64):
    def one(desc, v):
        return {"pairs": 100, "seed": 90000, "description": desc, "gap_closed": [v, v - 0.03, v + 0.03],
                "layout_as_content": [0.61, 0.52, 0.70], "colours_as_style": [0.8, 0.72, 0.88],
                "baselines": {"pixel_blend": {"gap_closed": [0.42, 0.40, 0.44]},
                              "reinhard": {"gap_closed": [-0.1, -0.15, -0.05]}}}
    return {"schema": 1, "model": "fake", "weights_sha256": weights, "command": "python scripts/groundtruth_eval.py --fake",
            "settings": {"gamma": 0.3, "t_edit": 400, "t_boost": 200, "calibrate": True, "omega": 0.3, "steps": 50,
                         "method": "normalised_slerp"},
            "sets": {"posed": one("content differs in identity and pose", 0.15),
                     "upright": one("content differs in identity only (same pose)", 0.01)}}


def test_paper_box_reads_the_model_folders_summary(tmp_path):
    import diffstyle_lab as dl
    from diffstyle_lab.lab import notebook as nb
    from diffstyle_lab.models import tiny_unet
    from diffstyle_lab.faces.train import export
    export(tiny_unet(seed=0), tmp_path / "model")
    m = dl.load_model(tmp_path / "model")
    assert nb.model_folder(m) == tmp_path / "model"
    box = nb.paper_box(m, "γ 0.3 keeps the content's layout")
    assert "The paper says** | γ 0.3 keeps the content's layout" in box
    assert "not measured for this model" in box
    mem = dl.tiny_model(seed=0)                                     # no folder at all
    assert nb.model_folder(mem) is None and "not measured for this model" in nb.paper_box(mem, "x")
    (tmp_path / "model" / "summary.json").write_text(json.dumps(_summary(m.weights_hash)))
    box = nb.paper_box(m, "the paper's claim")
    assert "not measured" not in box and "other weights" not in box
    assert "content injection closes 15 % [12 %, 18 %] of the gap to the ideal" in box
    assert "content injection closes 1 % [-2 %, 4 %] of the gap to the ideal — no effect detected" in box
    assert "pixel blend 42 % [40 %, 44 %]" in box and "Reinhard -10 % [-15 %, -5 %]" in box
    assert "layout as content in 61 % [52 %, 70 %] of those pairs" in box and "calibrate True" in box
    assert "other images than the sample pairs" in box and "posed" in box and "upright" in box
    assert max(len(ln) for ln in box.split("<br>")) < 400                 # one short line per set
    about = nb.paper_box(m, "calibration keeps colours", about="style calibration")
    assert "not style calibration" in about and "15 %" not in about     # no off-topic numbers
    (tmp_path / "model" / "summary.json").write_text(json.dumps(_summary("f" * 64)))
    assert "measured on other weights" in nb.paper_box(m, "x")
    (tmp_path / "model" / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="summary.json: not valid JSON"):
        nb.paper_box(m, "x")


def test_config_starts_from_the_models_defaults(tiny):
    import diffstyle_lab as dl
    from diffstyle_lab.lab import notebook as nb
    tiny.defaults = {"t_edit": 400, "t_boost": 200, "gamma": 0.3, "calibrate": True, "omega": 0.3}
    cfg = nb.config(tiny)
    assert cfg == dl.InjectionConfig.for_model(tiny) and cfg.calibrate is True
    assert nb.config(tiny, gamma=None, t_edit=None) == cfg                    # None keeps the model's value
    assert nb.config(tiny, t_edit=100).t_boost == 100                         # boosting clipped to t_edit
    assert nb.varied(cfg, tiny).startswith("settings: the model's defaults")
    assert "gamma=0.6 (model default 0.3)" in nb.varied(nb.config(tiny, gamma=0.6), tiny)


def test_load_pairs_at_the_models_size_with_clear_errors(tiny, tmp_path):
    from PIL import Image
    from diffstyle_lab.lab import notebook as nb
    c, s, cn, sn = nb.load_pairs(tiny, 2)
    assert c.shape == (2, 3, tiny.sample_size, tiny.sample_size) and len(sn) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="content_dir: .*no images"):
        nb.load_pairs(tiny, 2, content_dir=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="style_dir: .* is not a folder"):
        nb.load_pairs(tiny, 2, style_dir=tmp_path / "nope")
    (tmp_path / "mine").mkdir()
    Image.new("RGB", (50, 40), (200, 10, 10)).save(tmp_path / "mine" / "a.jpg")
    c, s, cn, sn = nb.load_pairs(tiny, 4, content_dir=tmp_path / "mine")
    assert c.shape == (1, 3, 16, 16) and cn == ["a"] and len(s) == 1


# ---------------------------------------------------------------------------------------------
# the model's settings, exercises, links, the Colab cell

STORED = json.loads((ROOT / "diffstyle_lab" / "data" / "models" / "faces32" / "diffstyle_lab.json").read_text())["injection_defaults"]


@pytest.mark.slow
def test_executed_notebooks_injected_with_the_models_defaults(executed):
    """Every notebook that injects recorded its settings; each field equals the default model's stored
    default (diffstyle_lab/data/models/faces32/diffstyle_lab.json, read here directly) unless the notebook says it
    varies that field on purpose. 08's sweep_manifest.json records the stored calibration, ω and t_boost."""
    out, rows, _ = executed
    for name in EXPECTED[1:8]:                   # 02 … 08 inject
        rec = json.loads((out / name / "settings.json").read_text())
        assert rec["model_defaults"] == {**rec["model_defaults"], **STORED}, name
        for k, v in rec["config"].items():
            if k not in rec["varied_on_purpose"]:
                assert v == rec["model_defaults"][k], f"{name}: {k}={v!r} against the model's {rec['model_defaults'][k]!r}"
    man = json.loads((out / "08_sweep" / "sweep_manifest.json").read_text())
    assert man["calibrate"] is STORED["calibrate"] is True and man["omega"] == STORED["omega"]
    assert man["t_boost"] == STORED["t_boost"] and man["method"] == "normalised_slerp"
    assert man["varied_on_purpose"] == ["gamma", "t_edit"]


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_no_parameter_defaults_against_the_models_defaults(src):
    """A parameter named like an injection setting is None (→ the model's default) or the model's stored
    value, unless its line says it is varied on purpose."""
    from diffstyle_lab.lab import run_notebooks as rn
    nb = jupytext.read(str(src))
    params = rn.declared_parameters(nb)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    for k, v in params.items():
        if k in STORED or k == "method":
            line = next(ln for ln in cell.source.splitlines() if ln.startswith(f"{k} ="))
            assert v is None or v == STORED.get(k, "normalised_slerp") or "varied on purpose" in line, \
                f"{src.stem}: {k} = {v!r} against the model's {STORED.get(k)!r}"


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_course_material(src):
    """An exercise with a solution cell (tagged, so papermill runs it), previous/next links to notebooks
    that exist, a link to the glossary and docs/method.md, reading and compute time; notebooks that read
    images take content_dir and style_dir (07: ood_dir), defaulting to the sample faces."""
    import re
    from diffstyle_lab.lab import run_notebooks as rn
    nb = jupytext.read(str(src))
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any(m_.startswith("## Exercise") for m_ in md), f"{src.stem}: no exercise"
    sol = [c for c in nb.cells if "solution" in c.get("metadata", {}).get("tags", [])]
    assert len(sol) == 1 and sol[0].cell_type == "code" and sol[0].source.strip()
    head = nb.cells[0].source
    assert "Reading time" in head and "compute" in head and "README.md#glossary" in head and "../docs/method.md" in head
    links = re.findall(r"\]\(([^)#]+)", head)
    for link in links:
        assert (NB_DIR / link).exists(), f"{src.stem}: link {link} points nowhere"
    params = rn.declared_parameters(nb)
    if src.stem[:2] in ("01", "02", "04", "05", "06", "08"):
        assert params.get("content_dir", "missing") is None and params.get("style_dir", "missing") is None
    if src.stem.startswith("07"):
        assert params.get("ood_dir", "missing") is None


def test_glossary_links_the_method_notes():
    text = (NB_DIR / "README.md").read_text()
    assert "## Glossary" in text and "../docs/method.md" in text
    for sym in ("x_T", "P_t", "D_t", "h", "g", "γ", "ω", "t_edit", "t_boost", "r_homo", "r_hetero"):
        assert f"| {sym} |" in text or f"| `{sym}` |" in text, f"glossary: {sym} missing"
    assert "## A real checkpoint on a GPU" in text and "google/ddpm-ema-celebahq-256" in text


def test_hosted_setup_cell_says_what_to_set_instead_of_a_key_error(monkeypatch, capsys):
    """On Colab without DIFFSTYLE_LAB_REPO the first cell prints one sentence and runs nothing."""
    import types
    nb = jupytext.read(str(SOURCES[0]))
    first = next(c for c in nb.cells if c.cell_type == "code")
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.delenv("DIFFSTYLE_LAB_REPO", raising=False)
    calls = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd) or 1)     # "pip show" fails: not installed
    exec(compile(first.source, "setup", "exec"), {})
    out = capsys.readouterr().out
    assert "Set DIFFSTYLE_LAB_REPO" in out and out.count("\n") == 1
    assert calls == ["pip show -q diffstyle_lab"]
    monkeypatch.setenv("DIFFSTYLE_LAB_REPO", "https://example.invalid/dsl.git")
    exec(compile(first.source, "setup", "exec"), {})
    assert any("git clone" in c and "example.invalid" in c for c in calls)
    sys.path.remove("dsl")


def test_a_constant_map_is_not_auto_scaled():
    """06's "everywhere" mask (all ones) must be drawn bright, not black: a constant 2-D map is drawn on [0, 1]."""
    import matplotlib.pyplot as plt
    from diffstyle_lab.lab import notebook as nb
    fig = nb.grid_figure([[torch.ones(4, 4), torch.zeros(4, 4), torch.tensor([[0.0, 2.0], [1.0, 0.5]])]])
    clims = [ax.images[0].get_clim() for ax in fig.axes]
    assert clims[0] == (0.0, 1.0) and clims[1] == (0.0, 1.0) and clims[2] == (0.0, 2.0)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Quiet runs (issue 27 §3): no kernel noise on a clean run, a real error still shown

def _runner(args, cwd, timeout=600):
    import subprocess
    return subprocess.run([sys.executable, "-m", "diffstyle_lab.lab.run_notebooks", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


NOISE = ("WARNING", "ERROR", "without encryption", "KeyboardInterrupt", "Traceback")


@pytest.mark.slow
def test_a_clean_run_prints_the_table_and_nothing_else(tmp_path):
    r = _runner(["--quick", "--only", "01", "--no-html", "-j", "1", "--out", str(tmp_path / "out")], ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "01_tour_of_h_space" in r.stdout and "status" in r.stdout and "0 failed" in r.stdout
    noisy = [ln for ln in (r.stdout + r.stderr).splitlines() if any(w in ln for w in NOISE)]
    assert not noisy, f"a clean run printed {noisy}"


@pytest.mark.slow
def test_a_failing_notebooks_error_is_shown(tmp_path):
    import jupytext
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    (nb_dir / "01_fails.py").write_text(
        '# %% tags=["parameters"]\nout_dir = None\n\n# %%\nprint("before")\n\n'
        '# %%\nraise RuntimeError("deliberate failure: the lecturer broke cell 2")\n')
    jupytext.read(str(nb_dir / "01_fails.py"))              # a valid notebook
    r = _runner(["--dir", str(nb_dir), "--no-html", "-j", "1", "--out", str(tmp_path / "out")], tmp_path)
    assert r.returncode == 1
    assert "deliberate failure: the lecturer broke cell 2" in r.stdout + r.stderr
    assert "FAILED" in r.stdout
    assert "without encryption" not in r.stderr


def test_the_kernel_manager_encrypts_and_does_not_interrupt_a_shutdown():
    import asyncio

    import zmq
    from diffstyle_lab.lab.kernel import QuietKernelManager
    km = QuietKernelManager(kernel_name="python3")
    if zmq.has("curve"):
        assert km.transport_encryption == "auto" and km.transport == "tcp"
    else:
        assert km.transport == ("ipc" if os.name == "posix" else "tcp")
    with pytest.raises(RuntimeError):                     # no kernel: an interrupt outside a shutdown is sent
        asyncio.run(km._async_interrupt_kernel())
    km.shutting_down = True
    assert asyncio.run(km._async_interrupt_kernel()) is None


def test_no_notebooks_is_one_line_and_non_zero(tmp_path, monkeypatch, capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    monkeypatch.setattr(rn, "NOTEBOOK_DIR", tmp_path / "none")
    monkeypatch.setattr(rn, "PACKAGED_DIR", tmp_path / "none2")
    for args in (["--list"], ["--quick"], ["--copy", str(tmp_path / "c")]):
        assert rn.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no notebooks found" in err, err
    assert rn.main(["--dir", str(tmp_path), "--list"]) == 2
    assert "--dir" in capsys.readouterr().err


def test_copy_writes_the_notebooks_and_refuses_to_overwrite(tmp_path, capsys):
    from diffstyle_lab.lab import run_notebooks as rn
    dest = tmp_path / "course"
    assert rn.main(["--copy", str(dest)]) == 0
    assert sorted(p.stem for p in dest.glob("*.ipynb")) == EXPECTED and (dest / "README.md").exists()
    assert sorted(p.stem for p in dest.glob("*.py")) == EXPECTED
    assert rn.main(["--copy", str(dest)]) == 0              # the same files again: fine
    (dest / "04_slerp.ipynb").write_text("{}")
    capsys.readouterr()
    assert rn.main(["--copy", str(dest)]) == 2
    assert "04_slerp.ipynb" in capsys.readouterr().err
    assert rn.main(["--dir", str(dest), "--list"]) == 0


def test_site_says_what_to_run_when_nothing_was_executed_and_rewrites_links(tmp_path, capsys):
    from diffstyle_lab.cli import main
    from diffstyle_lab.lab import site
    assert main(["site", "--executed", str(tmp_path / "nothing"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diffstyle-lab notebooks --out" in err and not (tmp_path / "s").exists()
    pages = {"01_a.html", "index.html", "method.html"}
    html = site.rewrite_links('<a href="01_a.ipynb">x</a> <a href="README.md#glossary">g</a> '
                              '<a class="k" href="../docs/method.md#2-notation">m</a> <a href="../diffstyle_lab/maths.py">s</a> '
                              '<a href="https://example.org/">e</a> <a href="02_b.ipynb">n</a>', pages)
    assert 'href="01_a.html"' in html and 'href="index.html#glossary"' in html
    assert 'class="k" href="method.html#2-notation"' in html and 'href="https://example.org/"' in html
    assert html.count("data-unlinked=") == 2 and "maths.py" in html        # text kept, no dead link
    assert site.slug("2. Notation and the step — <code>diffstyle_lab/maths.py</code>") == \
        "2-notation-and-the-step--diffstyle_labmathspy"


def test_claims_table_has_short_cells_and_says_how_to_read_them():
    import pandas as pd
    from diffstyle_lab.lab import notebook as nb
    r = pd.DataFrame({"s": [0.5, 0.6, 0.7, 0.8], "d": [1.0, 2.0, 3.0, 4.0]})
    refs = {nb.NO_INJECTION: pd.DataFrame({"s": [0.4, 0.5, 0.6, 0.7], "d": [1.0, 2.0, 3.0, 4.1]}),
            nb.PIXEL_BLEND: pd.DataFrame({"s": [0.5, 0.6, 0.7, 0.9], "d": [1.0, 2.0, 3.0, 4.0]}),
            nb.REINHARD: pd.DataFrame({"s": [0.1, 0.1, 0.1, 0.1], "d": [1.0, 2.0, 3.0, 4.0]})}
    df, note = nb.claims_table(r, refs, {"s": ("structure", "higher"), "d": ("distance", "lower")}, name="γ=0.3",
                               digits=2)
    assert list(df.columns) == ["γ=0.3", "vs no injection", "vs pixel blend", "vs Reinhard"]
    assert df.loc["structure", "vs no injection"].endswith("higher (better)")
    assert df.loc["structure", "vs Reinhard"].startswith("+0.55")
    assert all(len(str(v)) < 60 for v in df.to_numpy().ravel())            # short cells, not 400-character lines
    assert "n = 4 pairs" in note and "35 distinct resamples" in note


def test_float64_copy_casts_without_the_spurious_diffusers_warning(tiny, capfd):
    import logging
    from diffstyle_lab.lab import notebook as nb
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("diffusers").addHandler(handler)
    try:
        m64 = nb.float64_copy(tiny)
    finally:
        logging.getLogger("diffusers").removeHandler(handler)
    assert next(m64.unet.parameters()).dtype == torch.float64 and next(tiny.unet.parameters()).dtype == torch.float32
    assert m64.weights_hash != tiny.weights_hash
    assert not [r for r in records if "float32" in r.getMessage()] and "float32" not in capfd.readouterr().err
