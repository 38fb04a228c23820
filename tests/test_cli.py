"""The command line's parameters have one source of truth: ``InjectionConfig`` (issue 13 §2)."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from diffstyle_lab import InjectionConfig, cli


def parse(*argv):
    return cli.build_parser().parse_args(["inject", "--content", "c", "--style", "s", "--out", "o", *argv])


def test_every_plain_field_is_an_option_described_by_the_docstring():
    p = cli.build_parser()
    inject = next(a for a in p._subparsers._group_actions[0].choices.values() if a.prog.endswith("inject"))
    opts = {o: a for a in inject._actions for o in a.option_strings}
    docs = cli.config_field_docs()
    for f in dataclasses.fields(InjectionConfig):
        if f.name == "mask":
            assert "--mask" in opts                       # a file on the command line
            continue
        opt = "--" + f.name.replace("_", "-")
        assert opt in opts, opt
        assert opts[opt].dest == f.name
        assert f.name in docs, f"InjectionConfig's docstring does not describe {f.name}"
        assert docs[f.name].split()[0] in opts[opt].help
        assert f"default: {f.default}" in opts[opt].help


def test_a_new_field_appears_without_touching_the_cli(monkeypatch):
    @dataclasses.dataclass
    class Extended(InjectionConfig):
        """Parameters.

        gamma:     γ.
        new_knob:  a knob added later, spanning
                   two lines.
        """
        new_knob: int = 3
        fancy: bool = False

    monkeypatch.setattr("diffstyle_lab.sampling.InjectionConfig", Extended)
    a = cli.build_parser().parse_args(["inject", "--content", "c", "--style", "s", "--out", "o", "--new-knob", "7",
                                       "--fancy"])
    assert cli.injection_overrides(a) == {"new_knob": 7, "fancy": True}
    assert cli.config_field_docs(Extended)["new_knob"] == "a knob added later, spanning two lines"


def test_unset_options_are_absent_so_the_model_defaults_apply():
    assert cli.injection_overrides(parse()) == {}
    a = parse("--gamma", "0.5", "--t-edit", "500", "--calibrate", "--method", "lerp")
    assert cli.injection_overrides(a) == {"gamma": 0.5, "t_edit": 500, "calibrate": True, "method": "lerp"}
    assert cli.injection_overrides(parse("--no-calibrate")) == {"calibrate": False}
    with pytest.raises(SystemExit):
        parse("--method", "average")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from diffstyle_lab.models import tiny_unet
    from diffstyle_lab.faces.train import export
    root = tmp_path_factory.mktemp("cli")
    export(tiny_unet(seed=0), root / "model")
    (root / "model" / "diffstyle_lab.json").write_text(json.dumps({"injection_defaults": {"t_edit": 300,
                                                                                          "t_boost": 100}}))
    rng = np.random.RandomState(0)
    for d in ("content", "style"):
        (root / d).mkdir()
        Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8)).save(root / d / f"{d[0]}0.png")
    return root


def run(ws, out, *extra):     # one torch thread: tests/conftest.py
    return cli.main(["inject", "--content", str(ws / "content"), "--style", str(ws / "style"), "--model",
                     str(ws / "model"), "--cache", "off", "--device", "cpu", "--quiet", "--steps", "3",
                     "--inversion-steps", "3", "--out", str(out), *extra])


def test_the_model_defaults_apply_unless_overridden_and_resume_checks_to_dict(ws, tmp_path, capsys):
    from diffstyle_lab import load_model
    out = tmp_path / "out"
    assert run(ws, out) == 0
    params = json.loads((out / "manifest.json").read_text())["params"]
    cfg = cli.make_config(load_model(ws / "model"), {"inversion_steps": 3, "steps": 3})
    assert (cfg.t_edit, cfg.t_boost) == (300, 100)                       # the folder's diffstyle_lab.json
    assert params["injection"] == cfg.to_dict()                          # the resume key is cfg.to_dict()
    assert run(ws, tmp_path / "o2", "--t-edit", "500") == 0
    assert json.loads((tmp_path / "o2" / "manifest.json").read_text())["params"]["injection"]["t_edit"] == 500
    # any field of the config, not only a hand-written list, guards the folder
    capsys.readouterr()
    assert run(ws, out, "--eta-boost", "0.5") == 2
    assert "differs in: eta_boost" in capsys.readouterr().err


def test_demo_calls_the_function_inject_calls(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "inject_files", lambda *a, **k: calls.append((a, k)) or {})
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--device", "cpu", "--quiet"]) == 0
    (content, style, out), kw = calls[0]
    assert str(content).endswith("samples/content") and str(style).endswith("samples/style")
    assert out == str(tmp_path / "d") and kw["device"] == "cpu" and not kw.get("overrides")   # the model's defaults
    assert cli.main(["inject", "--content", "c", "--style", "s", "--out", "o", "--gamma", "0.4"]) == 0
    assert calls[1][1]["overrides"] == {"gamma": 0.4}
