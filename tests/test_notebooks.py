"""The notebooks: sources and paired .ipynb agree, committed .ipynb carry no outputs, each has a
papermill ``parameters`` cell and a hosted-setup cell that does nothing locally, and every notebook
executes with quick parameters (papermill) and shows its figures. Also the helpers of
``diffstyle_lab.lab.notebook`` (the runner's own tests: tests/test_runner.py).

Which notebooks there are, and what each needs (input folders, a paper box, recorded settings), is read
from the notebooks' own metadata (:mod:`diffstyle_lab.lab.catalogue`); a test names a notebook only to
check that notebook's own output (tests/test_catalogue.py keeps the list of those)."""

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

jupytext = pytest.importorskip("jupytext")
from diffstyle_lab.lab import catalogue  # noqa: E402  (needs jupytext)

INFOS = catalogue.notebooks(NB_DIR)
BY_NAME = {i.name: i for i in INFOS}
SOURCES = [i.path for i in INFOS]
NAMES = [i.name for i in INFOS]


def _cells(nb):
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def test_all_notebooks_are_there():
    """Every .py and .ipynb in notebooks/ is a course notebook of the catalogue (a misnamed one would be
    silently left out of every run), each a pair."""
    assert len(NAMES) >= 2
    assert sorted(p.stem for p in NB_DIR.glob("*.py")) == NAMES
    assert sorted(p.stem for p in NB_DIR.glob("*.ipynb")) == NAMES


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
    info = catalogue.read_info(src, nb)
    quick = rn.parameters_for(info, nb, quick=True)
    assert quick and quick == info.quick, f"{src.stem}: no quick parameters apply, or some are not declared"
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
@pytest.mark.parametrize("name", NAMES)
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


# what one notebook prints on the stranger model, checked on purpose for that notebook
STRANGER_SAYS = {"06_local_mixing": lambda p: ["h grid 16×16"],
                 "07_out_of_domain": lambda p: ["styles from " + p["ood_dir"]],
                 "09_when_h_carries_content": lambda p: ["no before/after comparison", "no emergence curve for"]}


@pytest.mark.slow
def test_every_notebook_runs_on_a_stranger_model_and_user_images(tmp_path):
    """The --quick set on another diffusers U-Net of another size (64 px, random weights), with
    folders of the user's own images: every notebook runs; each says which model it ran on and takes
    the folders its metadata says it needs; the paper box says "not measured for this model"; 09 says
    that it has no before/after comparison and no emergence curve for this model."""
    import nbformat
    from diffstyle_lab.lab import run_notebooks as rn
    folder = _stranger_workspace(tmp_path)
    params = {"model": str(folder), "content_dir": str(tmp_path / "content"), "style_dir": str(tmp_path / "style"),
              "ood_dir": str(tmp_path / "ood")}
    summary = rn.run_all(out=tmp_path / "out", quick=True, html=False, jobs=1, timeout=600, parameters=params,
                         echo=lambda *a: None)
    assert [r["notebook"] for r in summary["notebooks"]] == NAMES
    for r in summary["notebooks"]:
        assert r["ok"], f"{r['notebook']} on a 64-px stranger model: {r['error']} (see {r['ipynb']})"
        assert r["parameters"]["model"] == str(folder)
        nb = nbformat.read(r["ipynb"], as_version=4)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
        md = "".join(o.get("data", {}).get("text/markdown", "") for o in outs)
        assert str(folder) in text, r["notebook"]
        info = BY_NAME[r["notebook"]]
        for k in info.needs:
            assert r["parameters"][k] == params[k], f"{info.name}: {k} not passed"
        if info.paper_box:
            assert "not measured for this model" in md, f"{info.name}: the paper box"
        for said in STRANGER_SAYS.get(info.name, lambda p: [])(params):
            assert said in text, f"{info.name}: {said!r}"


@pytest.mark.slow
def test_sweep_writes_a_tidy_table(executed):
    import pandas as pd
    out, rows, _ = executed
    df = pd.read_csv(out / "08_sweep" / "sweep.csv")
    q = BY_NAME["08_sweep"].quick
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
    assert [r["notebook"] for r in t["notebooks"]] == NAMES and t["quick"] is True
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in t["notebooks"])
    html = rn.to_html(rows[NAMES[-1]]["ipynb"], tmp_path / "last.html").read_text()
    assert "data:image/png;base64" in html and "What the figures show" in html


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
    return {"schema": 1, "model": "fake", "weights_sha256": weights, "command": "python -m training.groundtruth_eval --fake",
            "settings": {"gamma": 0.3, "t_edit": 400, "t_boost": 200, "calibrate": True, "omega": 0.3, "steps": 50,
                         "method": "normalised_slerp"},
            "sets": {"posed": one("content differs in identity and pose", 0.15),
                     "upright": one("content differs in identity only (same pose)", 0.01)}}


def test_paper_box_reads_the_model_folders_summary(tmp_path):
    import diffstyle_lab as dl
    from diffstyle_lab.lab import notebook as nb
    from diffstyle_lab.models import tiny_unet
    from diffstyle_lab.faces.architecture import export
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
    for name in NAMES:
        assert (out / name / "settings.json").exists() == BY_NAME[name].injects, f"{name}: metadata `injects`"
    for name in [i.name for i in INFOS if i.injects]:
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
    images take the folders their metadata's `needs` names, defaulting to the sample faces; the first cell's
    heading, reading and compute time are the metadata's."""
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
    info = BY_NAME[src.stem]
    for k in info.needs:
        assert k.endswith("_dir") and params.get(k, "missing") is None, f"{src.stem}: {k} must default to None"
    assert head.splitlines()[0] == f"# {info.heading}", f"{src.stem}: the heading is not the metadata's title"
    assert f"Reading time ≈ {info.reading_minutes} min" in head and f"compute ≈ {info.compute}" in head, \
        f"{src.stem}: reading/compute time in the first cell differ from the metadata"


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
