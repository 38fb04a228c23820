"""Regression tests for the faults of issue 12 (table in docs/faults.md): each bad input or fault that
was tried against ``diffstyle-lab inject``, ``notebooks`` and the Python API, and what it gives now.

CLI cases run in-process through ``diffstyle_lab.cli.main`` on a tiny random U-Net (16 px, 3 steps)."""

import json
import os
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import cli_workspace
from diffstyle_lab.cli import FolderLock, file_sha256, main

STEPS = ["--steps", "3", "--inversion-steps", "3", "--t-edit", "400", "--t-boost", "0"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A model folder (tiny random U-Net) and content/style folders of two images each."""
    return cli_workspace(tmp_path_factory.mktemp("faults"))


def args(ws, out, *extra, content=None, style=None, model=None):
    return ["inject", "--content", str(content or ws / "content"), "--style", str(style or ws / "style"),
            "--model", str(model or ws / "model"), "--cache", "off", "--device", "cpu", "--quiet",
            *STEPS, "--out", str(out), *extra]


def run(capsys, argv):
    """(exit status, stderr) of one in-process CLI call."""
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().err


def one_line_error(err, *names):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    for n in names:
        assert n in lines[0], (n, err)
    assert "Traceback" not in err
    return lines[0]


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im).copy()


# =============================================================================================
# Must never happen again

def test_1_inputs_sharing_a_stem_get_their_own_outputs(ws, tmp_path, capsys):
    c = tmp_path / "content"
    c.mkdir()
    rng = np.random.RandomState(1)
    for name, fmt in (("a.png", "PNG"), ("a.jpg", "JPEG"), ("cmyk.jpg", "JPEG"), ("cmyk.tif", "TIFF")):
        im = Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8))
        (im.convert("CMYK") if name.startswith("cmyk") else im).save(c / name, fmt)
    out = tmp_path / "out"
    assert run(capsys, args(ws, out, content=c))[0] == 0
    made = sorted(p.name for p in out.glob("*__*.png"))
    assert len(made) == 4 * 2                                   # every input × style has its own file
    assert {"a_png__s0_png.png", "a_jpg__s0_png.png", "cmyk_jpg__s1_png.png", "cmyk_tif__s1_png.png"} <= set(made)
    man = json.loads((out / "manifest.json").read_text())
    assert man["pairs"]["a_jpg__s0_png.png"]["content"].endswith("a.jpg")
    assert not np.array_equal(pixels(out / "a_png__s0_png.png"), pixels(out / "a_jpg__s0_png.png"))


def test_1_colliding_names_stop_before_any_work(ws, tmp_path, capsys):
    c = copy_tree(ws / "content", tmp_path / "content")
    shutil.copy(c / "c0.png", c / "C0.png")                     # one file on macOS/Windows, two on Linux
    out = tmp_path / "out"
    rc, err = run(capsys, args(ws, out, content=c))
    assert rc == 2
    one_line_error(err, "C0.png", "c0.png", "rename")
    assert not out.exists()


def test_2_resume_keys_on_content_not_names(ws, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, args(ws, out))[0] == 0
    man = json.loads((out / "manifest.json").read_text())
    entry = man["pairs"]["c0_png__s0_png.png"]
    assert entry["content_sha256"] == file_sha256(ws / "content" / "c0.png")
    assert entry["style_sha256"] == file_sha256(ws / "style" / "s0.png")
    assert entry["sha256"] == file_sha256(out / "c0_png__s0_png.png")
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*__*.png")}

    # another content folder whose files have the same names: refused, the old results stay untouched
    other = tmp_path / "other"
    other.mkdir()
    rng = np.random.RandomState(7)
    for n in ("c0.png", "c1.png"):
        Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8)).save(other / n)
    rc, err = run(capsys, args(ws, out, content=other))
    assert rc == 2
    one_line_error(err, str(out), "same names", "another --out")
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*__*.png")} == before

    # deleting the outputs made from the old pixels recomputes them from the new ones
    for p in out.glob("c*__*.png"):
        p.unlink()
    assert run(capsys, args(ws, out, content=other))[0] == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["pairs"]["c1_png__s1_png.png"]["content_sha256"] == file_sha256(other / "c1.png")


def test_2_a_damaged_output_is_recomputed(ws, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, args(ws, out))[0] == 0
    good = pixels(out / "c1_png__s1_png.png")
    Image.new("RGB", (16, 16)).save(out / "c1_png__s1_png.png")        # overwritten by something else
    assert run(capsys, args(ws, out))[0] == 0
    assert np.array_equal(pixels(out / "c1_png__s1_png.png"), good)


def test_3_a_held_folder_is_refused(ws, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):                                       # another run holds the folder
        rc, err = run(capsys, args(ws, out))
    assert rc == 2
    one_line_error(err, str(out), "in use", f"pid {os.getpid()}", "another --out")
    assert sorted(p.name for p in out.iterdir()) == []          # nothing written, lock file released


def test_3_two_locks_exclude_each_other_and_release(tmp_path):
    with FolderLock(tmp_path) as a:
        assert (tmp_path / ".diffstyle-lab.lock").read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(OSError, match="in use"):
            FolderLock(tmp_path).__enter__()
        assert a.stale is None
    assert not (tmp_path / ".diffstyle-lab.lock").exists()
    with FolderLock(tmp_path):                                  # free again
        pass


def test_3_a_stale_lock_is_taken_over_and_leftovers_cleaned(ws, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".diffstyle-lab.lock").write_text("pid 999999999 on somewhere since 2020-01-01T00:00:00")  # killed run
    (out / ".c0_png__s0_png.png.x1y2.tmp").write_bytes(b"half a png")       # its temporary files
    (out / "c0__s0.tmp.png").write_bytes(b"older temporary name")
    capsys.readouterr()
    assert main([a for a in args(ws, out) if a != "--quiet"]) == 0
    assert "took over the lock" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".") or ".tmp" in p.name) == []
    assert len(list(out.glob("*__*.png"))) == 4


def test_3_temporary_names_are_per_process_without_image_suffix(tmp_path, monkeypatch):
    from diffstyle_lab import cli
    seen = []
    real = os.replace
    monkeypatch.setattr(cli.os, "replace", lambda a, b: (seen.append(a), real(a, b)))
    cli.save_png(Image.new("RGB", (4, 4)), tmp_path / "x.png")
    cli.save_png(Image.new("RGB", (4, 4)), tmp_path / "x.png")
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(os.path.basename(s).startswith(".x.png.") and s.endswith(".tmp") for s in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


@pytest.fixture
def cached(tmp_path):
    from diffstyle_lab import InversionCache, tiny_model
    from diffstyle_lab.cache import cached_invert
    m = tiny_model(levels=2)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    cache = InversionCache(tmp_path / "cache")
    ref = cached_invert(m, x, steps=4, progress=False, cache=cache)
    key = cache.key(m, x[0], 4, "authors", True)
    return m, x, cache, ref, key


def _rewrite(cache, key, tensors, meta_from_entry=True, checksum=False):
    """Replace an entry's tensors, keeping (a copy of) its metadata; optionally a matching checksum."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from diffstyle_lab.fileio import tensor_digest
    p = cache.path(key)
    with safe_open(str(p), framework="pt") as f:
        meta = dict(f.metadata())
    if checksum:
        meta["sha256"] = tensor_digest(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(p), metadata=meta)


@pytest.mark.parametrize("damage", ["h_wrong_shape", "zero_tensors", "wrong_dtype", "extra_tensor"])
def test_4_the_cache_verifies_shapes_dtypes_and_checksum(cached, damage):
    from diffstyle_lab.cache import cached_invert
    m, x, cache, ref, key = cached
    x_T, h = ref.x_T[0], ref.h[0]
    if damage == "h_wrong_shape":            # broadcastable h of another shape, with a matching checksum
        _rewrite(cache, key, {"x_T": x_T, "h": h[:, :, :1, :1].clone()}, checksum=True)
    elif damage == "zero_tensors":           # copied metadata, zeros in place of the tensors
        _rewrite(cache, key, {"x_T": torch.zeros_like(x_T), "h": torch.zeros_like(h)})
    elif damage == "wrong_dtype":
        _rewrite(cache, key, {"x_T": x_T.double(), "h": h.double()}, checksum=True)
    else:
        _rewrite(cache, key, {"x_T": x_T, "h": h, "extra": torch.ones(1)}, checksum=True)
    with pytest.warns(UserWarning, match="not trusted.*recomputing"):
        again = cached_invert(m, x, steps=4, progress=False, cache=cache)
    assert torch.equal(again.x_T, ref.x_T) and torch.equal(again.h, ref.h)
    assert cache.load(key, cache.expected(m, x[0], 4, "authors", True)) is not None     # rewritten, trusted


def test_4_a_true_entry_is_trusted_without_warnings(cached):
    from diffstyle_lab.cache import cached_invert
    m, x, cache, ref, key = cached
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cached_invert(m, x, steps=4, progress=False, cache=cache)
    assert cache.hits == 1 and torch.equal(again.h, ref.h)


def test_5_a_resume_with_another_batch_is_refused(ws, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, args(ws, out, "--batch", "3"))[0] == 0
    (out / "c1_png__s1_png.png").unlink()
    rc, err = run(capsys, args(ws, out, "--batch", "2"))
    assert rc == 2
    one_line_error(err, "batch", "--batch 3")
    assert not (out / "c1_png__s1_png.png").exists()


def test_5_a_resumed_pair_is_byte_identical_in_another_batch(ws, tmp_path, capsys):
    """--batch 3 on 4 pairs: chunks of 3 and 1 (padded to 3). A resumed pair runs in another chunk, at
    another position, with other partners — and comes out byte-identical."""
    out = tmp_path / "out"
    assert run(capsys, args(ws, out, "--batch", "3", "--t-boost", "200"))[0] == 0
    first = {p.name: pixels(p) for p in out.glob("*__*.png")}
    for n in ("c0_png__s1_png.png", "c1_png__s1_png.png"):     # positions 1 and 3 of the first run
        (out / n).unlink()
    assert run(capsys, args(ws, out, "--batch", "3", "--t-boost", "200"))[0] == 0
    for n, a in first.items():
        assert np.array_equal(pixels(out / n), a), n


# =============================================================================================
# Clear errors instead of tracebacks: one line naming the file or parameter and the fix; nothing written

def test_mask_with_a_decompression_bomb_header(ws, tmp_path, capsys, monkeypatch):
    Image.new("L", (100, 100), 255).save(tmp_path / "mask.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)        # inputs (256 px) pass, the mask (10⁴) is a "bomb"
    out = tmp_path / "out"
    rc, err = run(capsys, args(ws, out, "--mask", str(tmp_path / "mask.png")))
    assert rc == 2
    one_line_error(err, "mask.png", "too large")
    assert not out.exists()


@pytest.mark.parametrize("device", ["mps", "cuda", "cuda:7", "tpu"])
def test_unavailable_devices(ws, tmp_path, capsys, device):
    from diffstyle_lab.devices import DeviceError, pick_device
    try:
        pick_device(device)
    except DeviceError:
        pass
    else:
        pytest.skip(f"{device} is available on this machine; the error case needs a machine without it")
    out = tmp_path / "out"
    rc, err = run(capsys, [a if a != "cpu" else device for a in args(ws, out)])
    assert rc == 2
    one_line_error(err, f"--device={device}", "cpu")
    assert not out.exists()


def test_device_rule(monkeypatch):
    from diffstyle_lab.devices import pick_device
    monkeypatch.delenv("DIFFSTYLE_LAB_DEVICE", raising=False)
    auto = pick_device()
    assert auto == pick_device("auto") and auto in ("cpu", "cuda", "mps")
    assert auto == ("cuda" if torch.cuda.is_available() else auto)
    assert pick_device("CPU") == "cpu"
    monkeypatch.setenv("DIFFSTYLE_LAB_DEVICE", "cpu")
    assert pick_device(None) == "cpu" and pick_device("auto") == auto
    monkeypatch.setenv("DIFFSTYLE_LAB_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"\$DIFFSTYLE_LAB_DEVICE=.*not a device"):
        pick_device(None)


@pytest.mark.parametrize("content", ["[]", '{"params": {}}', "{bad json", '{"pairs": {}, "params": {}}'])
def test_manifest_that_is_not_one(ws, tmp_path, capsys, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(content)
    rc, err = run(capsys, args(ws, out))
    assert rc == 2
    one_line_error(err, "manifest.json", "another --out")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def _model_copy(ws, tmp_path):
    return copy_tree(ws / "model", tmp_path / "model")


@pytest.mark.parametrize("case", ["config_list", "config_bad_json", "scheduler_list", "beta_schedule",
                                  "truncated", "pickle_bin", "nan", "strict"])
def test_broken_model_folders(ws, tmp_path, capsys, case):
    from safetensors.torch import load_file, save_file
    m = _model_copy(ws, tmp_path)
    st = m / "unet" / "diffusion_pytorch_model.safetensors"
    expect = []
    if case == "config_list":
        (m / "unet" / "config.json").write_text("[1, 2]")
        expect = ["config.json", "JSON list"]
    elif case == "config_bad_json":
        (m / "unet" / "config.json").write_text('{"_class_name": "UNet2DModel",')
        expect = ["config.json", "not valid JSON", "line 1"]
    elif case == "scheduler_list":
        (m / "scheduler" / "scheduler_config.json").write_text("[]")
        expect = ["scheduler_config.json", "JSON list"]
    elif case == "beta_schedule":
        p = m / "scheduler" / "scheduler_config.json"
        p.write_text(json.dumps({**json.loads(p.read_text()), "beta_schedule": "cubic"}))
        expect = ["scheduler_config.json", "beta_schedule='cubic'", "squaredcos_cap_v2"]
    elif case == "truncated":
        st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
        expect = ["diffusion_pytorch_model.safetensors", "truncated"]
    elif case == "pickle_bin":
        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {tmp_path}/PWNED",))
        st.unlink()
        with open(m / "unet" / "diffusion_pytorch_model.bin", "wb") as f:
            pickle.dump({"x": Evil()}, f)
        expect = ["diffusion_pytorch_model.bin", "never unpickles"]
    elif case == "nan":
        sd = load_file(str(st))
        k = sorted(sd)[5]
        sd[k][...] = float("nan")
        save_file(sd, str(st))
        expect = [k, "NaN"]
    else:
        sd = load_file(str(st))
        k = sorted(sd)[0]
        sd["extra.weight"] = sd.pop(k)
        save_file(sd, str(st))
        expect = ["missing keys: " + k, "unexpected keys: extra.weight"]
    out = tmp_path / "out"
    rc, err = run(capsys, args(ws, out, model=m))
    assert rc == 2
    line = one_line_error(err, *expect)
    assert "weights_only=False" not in line
    assert not out.exists() and not (tmp_path / "PWNED").exists()


def test_notebooks_out_pointing_at_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    rc, err = run(capsys, ["notebooks", "--out", str(tmp_path / "f"), "--only", "01"])
    assert rc == 2
    one_line_error(err, "--out", "is a file")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize("batch", ["0", "-1"])
def test_batch_below_one(ws, tmp_path, capsys, batch):
    out = tmp_path / "out"
    rc, err = run(capsys, args(ws, out, "--batch", batch))
    assert rc == 2
    one_line_error(err, f"--batch {batch}", "≥ 1")
    assert not out.exists()


def test_a_sub_folder_named_like_an_image(ws, tmp_path, capsys):
    c = copy_tree(ws / "content", tmp_path / "content")
    (c / "x.png").mkdir()
    out = tmp_path / "out"
    rc, err = run(capsys, args(ws, out, content=c))
    assert rc == 2
    one_line_error(err, "x.png", "folder", "rename")
    assert not out.exists()


def test_out_pointing_at_a_file(ws, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    rc, err = run(capsys, args(ws, tmp_path / "f"))
    assert rc == 2
    one_line_error(err, "--out", "is a file")


# =============================================================================================
# Also

def test_an_unwritable_cache_folder_warns_and_runs_without(ws, tmp_path, capsys):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    out = tmp_path / "out"
    argv = args(ws, out)
    argv[argv.index("--cache") + 1] = str(tmp_path / "cache")
    with pytest.warns(UserWarning, match="cannot be written.*without storing"):
        rc, _ = run(capsys, argv)
    assert rc == 0 and len(list(out.glob("*__*.png"))) == 4


def test_no_empty_output_folder_after_an_early_error(ws, tmp_path, capsys, monkeypatch):
    out = tmp_path / "deep" / "out"
    assert run(capsys, args(ws, out, "--gamma", "3"))[0] == 2             # refused before the folder is made
    assert not out.exists()
    from diffstyle_lab import cache

    def fail(*a, **k):
        raise FloatingPointError("inversion: non-finite values (simulated)")
    monkeypatch.setattr(cache, "invert_in_batches", fail)                 # fails after the folder is made
    rc, err = run(capsys, args(ws, out))
    assert rc == 2 and "non-finite" in err
    assert not out.exists()


def test_grid_is_written_atomically(ws, tmp_path, capsys, monkeypatch):
    from diffstyle_lab import cli
    saved = []
    real = cli.save_png
    monkeypatch.setattr(cli, "save_png", lambda img, path: (saved.append(path.name), real(img, path)))
    out = tmp_path / "out"
    assert run(capsys, args(ws, out))[0] == 0
    assert "grid.png" in saved and (out / "grid.png").is_file()
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


# =============================================================================================
# Silent wrong results

def test_float_tiffs_in_0_1_are_scaled(tmp_path):
    from diffstyle_lab.images import ImageError, load_image
    a = np.full((8, 8), 0.5, np.float32)
    Image.fromarray(a).save(tmp_path / "half.tif")
    x = load_image(tmp_path / "half.tif", 8)
    assert abs(float(x.mean()) - (128 / 127.5 - 1)) < 1e-6            # grey, not black
    Image.fromarray(np.full((8, 8), 200.0, np.float32)).save(tmp_path / "f255.tif")
    assert abs(float(load_image(tmp_path / "f255.tif", 8).mean()) - (200 / 127.5 - 1)) < 1e-6
    Image.fromarray(np.full((8, 8), -3.0, np.float32)).save(tmp_path / "neg.tif")
    with pytest.raises(ImageError, match=r"neg.tif.*\[0, 1\]"):
        load_image(tmp_path / "neg.tif", 8)


@pytest.mark.parametrize("scale", [255.0, -2.0])
def test_api_refuses_images_outside_minus_one_one(tiny, scale):
    from diffstyle_lab import ddim_invert, inject
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * scale
    with pytest.raises(ValueError, match=r"content images range over .* must lie in \[-1, 1\]"):
        inject(tiny, x, x.clamp(-1, 1), steps=3, inversion_steps=3, progress=False)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ddim_invert(tiny, x, steps=3, progress=False)


def test_notebooks_parameter_typo(capsys):
    rc, err = run(capsys, ["notebooks", "-p", "gama=0.9"])
    assert rc == 2
    one_line_error(err, "-p gama", "did you mean -p gamma")
