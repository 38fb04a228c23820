"""Image input (diffstyle_lab.images.load_image) and the ``inject`` command on files."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from diffstyle_lab.images import ImageError, load_image

BLUE = (40, 80, 200)


def px(x, r, c):
    """The RGB value (0…255) of pixel (r, c) of a 1×3×H×W tensor in [−1, 1]."""
    return ((x[0, :, r, c] + 1) * 127.5).round().tolist()


def close(a, b, tol=6):
    return all(abs(u - v) <= tol for u, v in zip(a, b))


def test_exif_orientation_is_applied(tmp_path):
    # stored 40 wide × 20 high, red block at the stored top-left; orientation 6 = display rotated 90° clockwise
    im = Image.new("RGB", (40, 20), BLUE)
    im.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", "JPEG", quality=98, exif=exif.tobytes())
    x = load_image(tmp_path / "rot.jpg", 40, fit="pad")
    assert x.shape == (1, 3, 40, 40)
    # displayed 20 wide × 40 high: padding left and right, not above and below
    assert close(px(x, 20, 2), (255, 255, 255)) and close(px(x, 20, 37), (255, 255, 255))
    # the stored top-left corner is now the top-right corner
    assert close(px(x, 4, 25), (255, 0, 0), 12) and close(px(x, 4, 14), BLUE, 12)
    assert close(px(x, 36, 25), BLUE, 12)
    # without the tag the same pixels stay landscape
    im.save(tmp_path / "plain.jpg", "JPEG", quality=98)
    y = load_image(tmp_path / "plain.jpg", 40, fit="pad")
    assert close(px(y, 2, 20), (255, 255, 255)) and close(px(y, 14, 4), (255, 0, 0), 12)
    assert close(px(y, 25, 2), BLUE, 12)


def test_alpha_is_composited_on_white(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., 0] = 255                    # red …
    a[:, :4, 3] = 0                    # … transparent on the left
    a[:, 4:, 3] = 128                  # … half-transparent on the right
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    x = load_image(tmp_path / "rgba.png", 8)
    assert close(px(x, 3, 1), (255, 255, 255), 1)
    assert close(px(x, 3, 6), (255, 127, 127), 2)
    la = Image.fromarray(np.stack([np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)], -1), "LA")
    la.save(tmp_path / "la.png")
    assert close(px(load_image(tmp_path / "la.png", 8), 4, 4), (255, 255, 255), 1)


def test_greyscale_palette_and_cmyk_become_rgb(tmp_path):
    Image.new("L", (8, 8), 64).save(tmp_path / "grey.png")
    x = load_image(tmp_path / "grey.png", 8)
    assert x.shape == (1, 3, 8, 8) and close(px(x, 2, 2), (64, 64, 64), 0)
    Image.new("1", (8, 8), 1).save(tmp_path / "bw.png")
    assert close(px(load_image(tmp_path / "bw.png", 8), 0, 0), (255, 255, 255), 0)
    g16 = (np.full((8, 8), 32896, np.uint16))          # 128·257: mid grey in 16 bits
    Image.fromarray(g16).save(tmp_path / "grey16.png")
    assert close(px(load_image(tmp_path / "grey16.png", 8), 1, 1), (128, 128, 128), 1)
    pal = Image.new("RGB", (8, 8), BLUE).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert pal.mode == "P"
    pal.save(tmp_path / "pal.png")
    assert close(px(load_image(tmp_path / "pal.png", 8), 5, 5), BLUE, 2)
    pt = Image.new("P", (8, 8), 1)
    pt.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pt.putpixel((0, 0), 0)
    pt.info["transparency"] = 0
    pt.save(tmp_path / "pal_t.png", transparency=0)
    y = load_image(tmp_path / "pal_t.png", 8)
    assert close(px(y, 0, 0), (255, 255, 255), 1) and close(px(y, 4, 4), (0, 255, 0), 1)
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", "JPEG", quality=98)
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    assert close(px(load_image(tmp_path / "cmyk.jpg", 8), 4, 4), (255, 0, 0), 8)
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "cmyk.tif")
    assert close(px(load_image(tmp_path / "cmyk.tif", 8), 4, 4), (0, 255, 255), 1)


def test_non_square_crop_and_pad(tmp_path):
    im = Image.new("RGB", (60, 20), BLUE)
    im.paste((255, 0, 0), (0, 0, 20, 20))             # left third red
    im.paste((0, 255, 0), (40, 0, 60, 20))            # right third green
    im.save(tmp_path / "wide.png")
    c = load_image(tmp_path / "wide.png", 20, fit="crop")          # the centre square: all blue
    assert c.shape == (1, 3, 20, 20)
    assert close(px(c, 10, 1), BLUE, 3) and close(px(c, 10, 18), BLUE, 3)
    p = load_image(tmp_path / "wide.png", 30, fit="pad")           # 60×60 canvas → 30×30
    assert p.shape == (1, 3, 30, 30)
    assert close(px(p, 2, 15), (255, 255, 255), 2) and close(px(p, 27, 15), (255, 255, 255), 2)
    assert close(px(p, 15, 2), (255, 0, 0), 8) and close(px(p, 15, 27), (0, 255, 0), 8)
    assert close(px(p, 15, 15), BLUE, 3)
    assert load_image(tmp_path / "wide.png", 16, fit="crop").shape == (1, 3, 16, 16)
    Image.new("RGB", (20, 50), BLUE).save(tmp_path / "tall.png")
    t = load_image(tmp_path / "tall.png", 10, fit="pad")
    assert close(px(t, 5, 0), (255, 255, 255), 3) and close(px(t, 5, 5), BLUE, 3)
    with pytest.raises(ValueError, match="fit="):
        load_image(tmp_path / "wide.png", 16, fit="stretch")


def test_broken_files_raise_image_error_naming_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(ImageError, match="notes.png"):
        load_image(tmp_path / "notes.png", 16)
    Image.new("RGB", (64, 64), BLUE).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(tmp_path / "cut.png", 16)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg"):
        load_image(tmp_path / "empty.jpg", 16)
    with pytest.raises(ImageError, match="missing.png"):
        load_image(tmp_path / "missing.png", 16)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ImageError, match="sub"):
        load_image(tmp_path / "sub", 16)


def test_oversized_image_header_is_an_image_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (30, 30)).save(tmp_path / "big.png")       # 900 px > 2·100: a "decompression bomb"
    with pytest.raises(ImageError, match="big.png"):
        load_image(tmp_path / "big.png", 16)


# ---------------------------------------------------------------------------------------------
# diffstyle-lab inject on files

@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from conftest import cli_workspace
    return cli_workspace(tmp_path_factory.mktemp("cli"), (24, 20, 3))   # non-square: cropped to 20×20, resized to 16


def _args(ws, out, *extra):
    return ["inject", "--content", str(ws / "content"), "--style", str(ws / "style"), "--model", str(ws / "model"),
            "--steps", "5", "--inversion-steps", "5", "--cache", "off", "--device", "cpu", "--quiet",
            "--t-boost", "0", "--out", str(out), *extra]


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_inject_command_writes_pairs_grid_manifest_and_resumes(workspace, tmp_path, one_thread):
    from diffstyle_lab.cli import main
    out = tmp_path / "out"
    assert main(_args(workspace, out)) == 0
    names = sorted(f"{c}_png__{s}_png.png" for c in ("c0", "c1") for s in ("s0", "s1"))
    assert sorted(p.name for p in out.glob("*__*.png")) == names
    for n in names:
        with Image.open(out / n) as im:
            assert im.size == (16, 16) and im.mode == "RGB"
    with Image.open(out / "grid.png") as g:
        assert g.size[0] > 3 * 17 * 8 and g.size[1] > 3 * 17 * 8   # 3×3 cells upscaled ×8 (128 px / 16 px) + labels
    man = json.loads((out / "manifest.json").read_text())
    assert sorted(man["pairs"]) == names and man["pairs"]["c1_png__s0_png.png"]["style"].endswith("s0.png")
    assert man["run"]["injection"]["steps"] == 5 and man["run"]["inversion"]["steps"] == 5
    first = {n: np.asarray(Image.open(out / n)).copy() for n in names}
    mtimes = {n: os.stat(out / n).st_mtime_ns for n in names}

    # interrupt: one pair lost its file and its manifest entry → only that one is recomputed, exactly
    # as the uninterrupted run made it (every U-Net call sees --batch pairs)
    (out / "c1_png__s0_png.png").unlink()
    del man["pairs"]["c1_png__s0_png.png"]
    (out / "manifest.json").write_text(json.dumps(man))
    assert main(_args(workspace, out)) == 0
    assert (out / "c1_png__s0_png.png").exists()
    for n in names:
        if n != "c1_png__s0_png.png":
            assert os.stat(out / n).st_mtime_ns == mtimes[n], f"{n} was recomputed"
    assert sorted(json.loads((out / "manifest.json").read_text())["pairs"]) == names
    redo = np.asarray(Image.open(out / "c1_png__s0_png.png"))
    assert np.array_equal(redo, first["c1_png__s0_png.png"])      # same pair, same bytes

    # a file listed in the manifest but missing on disk is recomputed too
    (out / "c0_png__s1_png.png").unlink()
    assert main(_args(workspace, out)) == 0
    assert (out / "c0_png__s1_png.png").exists() and os.stat(out / "c0_png__s0_png.png").st_mtime_ns == mtimes["c0_png__s0_png.png"]

    # other parameters in the same folder: refused, not silently mixed with the old results
    assert main(_args(workspace, out, "--gamma", "0.9")) == 2
    assert os.stat(out / "c0_png__s0_png.png").st_mtime_ns == mtimes["c0_png__s0_png.png"]


def test_broken_input_exits_2_and_writes_nothing(workspace, tmp_path, capsys, one_thread):
    from diffstyle_lab.cli import main
    bad = tmp_path / "content"
    bad.mkdir()
    for p in (workspace / "content").iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "c2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    args = _args(workspace, out)
    args[args.index("--content") + 1] = str(bad)
    assert main(args) == 2
    assert "c2.png" in capsys.readouterr().err
    assert not out.exists()
    assert main(_args(workspace, out, "--gamma", "3")) == 2          # a bad γ: nothing written either
    assert not out.exists() or not any(out.iterdir())
