"""The one verdict engine (diffstyle_lab.stats.verdicts): bootstrap → interval → verdict word → sentence with
one minimum n, used by the evaluation page, the ground-truth summary and the notebooks.

* the engine's rules, each with a case on both sides;
* behaviour unchanged: the three engines it replaced, read from the git history, give the same numbers and
  sentences as the new code (on the cases where no minimum n decides: n ≥ MIN_N, or n = 1);
* guards that fail when a second engine creeps back: a bootstrap interval computed outside the engine and the
  statistics core, a second minimum n, a verdict word written elsewhere, a summary writer in the script."""

import ast
import importlib.util
import json
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import diffstyle_lab
from diffstyle_lab.faces import groundtruth as G
from diffstyle_lab.faces import groundtruth_summary as S
from diffstyle_lab.stats import bootstrap, verdicts as V

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(diffstyle_lab.__file__).resolve().parent
NAN = float("nan")
# The last commit with three verdict engines (evaluate/claims.py, lab/claims.py, scripts/groundtruth_eval.py).
OLD = "c3851576de777033ed94ca6cbf875816cf08e6c6"


# ---------------------------------------------------------------------------------------------
# the engine's rules

def test_one_minimum_n_decides_every_interval():
    rng = np.random.default_rng(0)
    v = rng.normal(1.0, 0.1, V.MIN_N)
    assert V.mean_interval(v) == bootstrap.bootstrap_ci(v)              # from MIN_N on: the bootstrap's interval
    m, lo, hi = V.mean_interval(v[:-1])                                   # one fewer: the mean, no interval
    assert m == pytest.approx(v[:-1].mean()) and math.isnan(lo) and math.isnan(hi)
    assert V.mean_interval([np.nan, 2.0, np.inf])[0] == 2.0
    a, b = v + 1, v
    assert V.difference_interval(a, b) == bootstrap.paired_difference(a, b)
    d, lo, hi = V.difference_interval(a[:-1], b[:-1])
    assert d == pytest.approx(1.0) and math.isnan(lo)
    assert not math.isnan(V.difference_interval(a[:-1], b[:-1], min_n=V.MIN_N - 1)[1])   # min_n can be lowered
    assert not math.isnan(V.difference_interval(a[:2], b[:2], min_n=1)[1])              # never below 2 …
    assert math.isnan(V.difference_interval(a[:1], b[:1], min_n=1)[1])                  # … resampling's floor
    ratio = lambda x, y: x.mean(-1) / y.mean(-1)  # noqa: E731
    assert V.paired_interval(ratio, a, b) == bootstrap.paired_statistic(ratio, a, b)
    assert math.isnan(V.paired_interval(ratio, a[:-1], b[:-1])[2])
    mat = np.stack([v, v + 0.1, v + 0.2])
    assert V.trend_interval(mat, [0, 1, 2]) == bootstrap.trend(mat, [0, 1, 2])
    assert V.trend_interval(mat[:, :-1], [0, 1, 2])[0] == 1.0 and math.isnan(V.trend_interval(mat[:, :-1], [0, 1, 2])[1])
    assert V.replicate_interval(3.0, [1.0, 2.0, 3.0, 4.0], n=V.MIN_N, level=0.5) == (3.0, 1.75, 3.25)
    assert math.isnan(V.replicate_interval(3.0, [1.0, 2.0], n=V.MIN_N - 1)[1])
    with pytest.raises(ValueError, match="same units"):
        V.difference_interval([1.0, 2.0], [1.0, 2.0, 3.0])


def test_which_side_of_the_null_makes_every_verdict():
    assert [V.side(*iv) for iv in ((0.1, 0.2), (-0.2, -0.1), (-0.1, 0.1), (NAN, 1.0))] == [1, -1, 0, None]
    assert V.side(0.6, 0.7, null=0.5) == 1 and V.side(0.4, 0.7, null=0.5) == 0
    assert [V.effect(*iv) for iv in ((0.1, 0.2), (-0.2, -0.1), (-0.1, 0.1), (NAN, 1.0))] == \
        ["higher", "lower", "no effect detected", "no interval (n too small)"]
    assert V.claim_verdict(0.1, 0.2, 0.0, +1) == "holds" and V.claim_verdict(0.1, 0.2, 0.0, -1) == "does not hold"
    assert V.claim_verdict(-0.2, -0.1, 0.0, -1) == "holds" and V.claim_verdict(-0.1, 0.1, 0.0, +1) == "inconclusive"
    assert V.claim_verdict(NAN, NAN, 0.0, +1) == "inconclusive" and V.claim_verdict(0.6, 0.7, 0.5, +1) == "holds"
    assert V.judged("higher", "lower") == "higher (worse)" and V.judged("lower", "lower") == "lower (better)"
    assert V.judged("no effect detected", "lower") == "no effect detected"
    assert V.overlap_effect((0.15, 0.12, 0.18), (0.4, 0.35, 0.45)) == "lower"
    assert V.overlap_effect((0.15, 0.12, 0.18), (0.17, 0.1, 0.2)).startswith("no difference detected")
    assert V.too_few(V.MIN_N) is None and V.too_few(1) == f"n = 1 pair: too few for an interval (at least {V.MIN_N})"
    assert V.rough(4) == " (with n = 4 a bootstrap has only 35 distinct resamples: a rough interval)" and V.rough(9) == ""
    assert V.ci_text(0.1234, 0.5, 0.95) == "95% CI [0.123, 0.5]" and V.ci_text(-1, 1, 0.9, "+.2f") == "90% CI [-1.00, +1.00]"


def test_a_bad_level_is_refused_with_or_without_an_interval():
    for f in (lambda lv: V.mean_interval([1.0, 2.0], level=lv), lambda lv: V.difference_interval([1.0], [2.0], level=lv),
              lambda lv: V.trend_interval(np.ones((3, 2)), [0, 1, 2], level=lv),
              lambda lv: V.replicate_interval(1.0, [1.0], n=1, level=lv),
              lambda lv: V.paired_interval(np.subtract, [1.0], [2.0], level=lv)):
        with pytest.raises(ValueError, match="level=95"):
            f(95)


# ---------------------------------------------------------------------------------------------
# behaviour unchanged: the old engines, from the git history

def _old_source(path: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD}:{path}"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs the git history with commit {OLD[:7]} (the old engines)")


@pytest.fixture
def old(monkeypatch):
    """``old(path, package)``: the module at ``path`` as it was at commit OLD (relative imports resolved in
    ``package``), registered in sys.modules for the test's duration."""
    def load(path, package=""):
        name = f"{package or 'old'}._old_{Path(path).stem}"
        mod = types.ModuleType(name)
        mod.__package__, mod.__file__ = package, f"{OLD[:7]}:{path}"
        monkeypatch.setitem(sys.modules, name, mod)
        exec(compile(_old_source(path), mod.__file__, "exec"), mod.__dict__)
        return mod
    return load


def test_notebook_sentences_are_unchanged(old):
    from diffstyle_lab.lab import claims as new
    was = old("diffstyle_lab/lab/claims.py", "diffstyle_lab.lab")
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.05, 40)
    base[3] = np.nan
    refs = {new.NO_INJECTION: base, new.PIXEL_BLEND: base + 0.5, new.REINHARD: base + rng.normal(0, 0.05, 40)}
    cols = {"m": ("a measure", "higher"), "k": ("another", "lower"), "s": ("a share", None)}
    table = pd.DataFrame({"m": base + 0.2, "k": base - 0.01, "s": base * 0.3})
    ref_tables = {k: pd.DataFrame({"m": v, "k": v, "s": v}) for k, v in refs.items()}
    for n in (40, 6, V.MIN_N, 1):
        sub = {k: v[:n] for k, v in refs.items()}
        for kw in ({}, {"better": "lower", "share": True, "digits": 2}, {"level": 0.9, "seed": 3, "n_boot": 200}):
            assert new.claim("x", table.m[:n].to_numpy(), sub, **kw) == was.claim("x", table.m[:n].to_numpy(), sub, **kw)
        got, note = new.claims_table(table[:n], {k: v[:n] for k, v in ref_tables.items()}, cols, share=True)
        want, note0 = was.claims_table(table[:n], {k: v[:n] for k, v in ref_tables.items()}, cols, share=True)
        pd.testing.assert_frame_equal(got, want)
        assert note == note0
    assert new.claim("x", [0.3], {new.NO_INJECTION: [0.2]}) == was.claim("x", [0.3], {new.NO_INJECTION: [0.2]})
    assert new.claim("x", (0.2, 0.1, 0.3), {new.NO_INJECTION: 0.0}) == was.claim("x", (0.2, 0.1, 0.3), {new.NO_INJECTION: 0.0})
    for a, b in (((0.15, 0.12, 0.18), 0.0), ((0.15, 0.12, 0.18), (0.4, 0.35, 0.45)), ((0.15, NAN, NAN), (0.1, 0.0, 0.2)),
                 (base[:10], base[10:20] + 0.1), ((0.15, 0.12, 0.18), base), (base + 0.01, base)):
        assert str(new.compare(a, b)) == str(was.compare(a, b))
    for t in ((0.15, 0.12, 0.18), (0.02, -0.01, 0.05), (0.1, NAN, NAN), (0.1, None, None)):
        assert new.gap_sentence(t) == was.gap_sentence(t)
        assert new.interval_text(*(NAN if x is None else x for x in t), share=True) == \
            was.interval_text(*(NAN if x is None else x for x in t), share=True)


def _synthetic_tables(n=40, seed=0, slope=0.5):
    """A γ sweep whose content_kept rises with γ, the ablation's set-level Fréchet distances, a t_edit sweep."""
    from diffstyle_lab import evaluate as ev
    g = np.random.default_rng(seed)
    plan, pairs, sets, boot = [], [], [], []
    base = g.uniform(0.2, 0.4, n)
    for sweep, xs in (("gamma", ev.GAMMAS), ("t_edit", (200, 400, 600))):
        for k, x in enumerate(xs):
            sid = f"{sweep}{k}"
            plan.append({"sweep": sweep, "x": x, "setting_id": sid})
            pairs.append(pd.DataFrame({"setting_id": sid, "pair": np.arange(n), "style_taken": g.uniform(0.4, 0.7, n),
                                       "content_kept": base + slope * float(x) / max(xs) + g.normal(0, 0.05, n),
                                       "gram_style": g.normal(1.0, 0.1, n)}))
    for name, fd in (("replace", 30.0), ("normalised slerp", 10.0), ("add", 11.0), ("lerp", 9.5)):
        plan.append({"sweep": "ablation", "x": name, "setting_id": name})
        sets.append({"setting_id": name, "metric": "frechet_classifier", "value": fd, "ci_low": fd - 1,
                     "ci_high": fd + 1, "n": n, "n_ref": 100})
        boot += [{"setting_id": name, "metric": "frechet_classifier", "b": b, "value": fd + g.normal(0, 1)}
                 for b in range(50)]
    return {"plan": pd.DataFrame(plan), "pairs": pd.concat(pairs, ignore_index=True), "sets": pd.DataFrame(sets),
            "sets_boot": pd.DataFrame(boot)}


def test_evaluation_claims_and_summary_are_unchanged(old):
    from diffstyle_lab.evaluate import claims as new
    was = old("diffstyle_lab/evaluate/claims.py", "diffstyle_lab.evaluate")
    seen = set()
    for n, seed, slope in ((40, 0, 0.5), (V.MIN_N, 1, 0.5), (12, 2, 0.0), (30, 3, -0.4)):
        t = _synthetic_tables(n, seed, slope)
        got = new.assess_claims(t, n_boot=200, seed=seed)
        pd.testing.assert_frame_equal(got, was.assess_claims(t, n_boot=200, seed=seed))
        pd.testing.assert_frame_equal(new.metric_summary(t, n_boot=100), was.metric_summary(t, n_boot=100))
        seen |= set(got.verdict)
    assert seen == set(V.CLAIM_VERDICTS)                  # every verdict was compared
    assert V.claim_rule(0.95) == (
        "A claim **holds** when the 95% interval of its statistic lies entirely on the paper's side of the null, "
        "**does not hold** when it lies entirely on the other side, and is **inconclusive** when it straddles it.")


def test_below_the_minimum_n_the_evaluation_gives_no_interval_and_no_verdict():
    """The one deliberate change: 2 or 3 pairs gave intervals (and verdicts) on the evaluation page; no longer."""
    from diffstyle_lab.evaluate import claims as new
    t = _synthetic_tables(V.MIN_N - 1, 0, 0.5)
    got = new.assess_claims(t, n_boot=200).set_index("claim")
    assert got.loc["content-injected", "verdict"] == "inconclusive" and math.isnan(got.loc["content-injected", "ci_low"])
    assert got.loc["nslerp-vs-replace", "verdict"] == "inconclusive"
    assert new.metric_summary(t, n_boot=100).ci_low.isna().all()


def _scores(n: int, rng) -> dict:
    """Per-pair scores shaped like groundtruth.score's (factor votes 0/1, NaN where a factor is not tested)."""
    vote = lambda: np.where(rng.random(n) < 0.1, np.nan, (rng.random(n) < 0.6).astype(float))  # noqa: E731
    out = {k: rng.uniform(*r, n).astype(np.float32) for k, r in
           (("rmse", (20, 60)), ("ssim", (0.2, 0.9)), ("rmse_bg", (5, 50)), ("rmse_fg", (10, 70)))}
    return out | {k: vote() for k in S.CONTENT_FACTORS + G.COLOUR_FACTORS}


@pytest.fixture
def fake_scoring(monkeypatch):
    """Ground-truth scoring without rendering or sampling: pairs are (n, pose) and scores a function of them."""
    monkeypatch.setattr(G.GroundTruthPairs, "make", classmethod(
        lambda cls, n, seed=90_000, size=32, pose=True: types.SimpleNamespace(n=n, seed=seed, pose=pose)))

    def transfer_scores(model, gt, configs, steps=50):
        rng = np.random.default_rng([gt.n, gt.seed, int(gt.pose), steps])
        return {k: _scores(gt.n, rng) for k in ("style", "floor", "blend", "reinhard", *configs)}
    monkeypatch.setattr(G, "transfer_scores", transfer_scores)


def test_summary_rows_are_unchanged(old):
    was = old("scripts/groundtruth_eval.py")
    rng = np.random.default_rng(5)
    for n in (100, 30, 12):
        sc, ref, floor, bg0 = _scores(n, rng), _scores(n, rng), _scores(n, rng)["rmse"] * 0.3, _scores(n, rng)["rmse_bg"]
        assert json.dumps(S.summarise("s", sc, ref, floor, bg0)) == json.dumps(was.summarise("s", sc, ref, floor, bg0))
        assert S.gap_ci(sc["rmse"], ref["rmse"], floor) == was.gap_ci(sc["rmse"], ref["rmse"], floor)
    small = S.summarise("s", _scores(V.MIN_N - 1, rng), _scores(V.MIN_N - 1, rng), np.ones(V.MIN_N - 1), None)
    assert all(math.isnan(small[k][1]) for k in ("rmse", "gap_closed", "colours_as_style"))   # one minimum n


def _script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_script_is_a_thin_cli_writing_the_same_files(old, fake_scoring, tmp_path, monkeypatch):
    """summary.json and a sweep's JSON, from the command line, are what the old script wrote (but its seconds)."""
    from diffstyle_lab.models import tiny_model
    was = old("scripts/groundtruth_eval.py")
    now = _script(ROOT / "training" / "groundtruth_eval.py", "groundtruth_eval_now")
    model = tiny_model(seed=0)
    for mod in (was, now):
        monkeypatch.setattr(mod, "load_model", lambda path: model)
    outs = {}
    for tag, mod in (("old", was), ("new", now)):
        d = tmp_path / tag / "model"
        d.mkdir(parents=True)
        mod.main([str(d), "--summary", "--pairs", "12", "--steps", "4"])
        mod.main([str(d), "--pairs", "20", "--steps", "4", "--gammas", "0", "0.3", "--t-edits", "100", "300",
                  "--out", str(tmp_path / tag / "sweep.json")])
        outs[tag] = [json.loads(p.read_text()) for p in (d / "summary.json", tmp_path / tag / "sweep.json")]
    for got, want in zip(*(outs[t] for t in ("new", "old"))):
        for x in (got, want):
            x.pop("seconds")
            x["command"] = x.get("command", "").replace(str(tmp_path / "old"), str(tmp_path / "new")).replace(
                "python scripts/groundtruth_eval.py", "python -m training.groundtruth_eval")   # the script moved
            x["model"] = x["model"].replace(str(tmp_path / "old"), str(tmp_path / "new"))
        assert got == want
    assert S.read_summary_file(tmp_path / "new" / "model" / "summary.json")["sets"]["posed"]["pairs"] == 12
    # thin: argument parsing and calls into the package, nothing computed or written by hand
    tree = ast.parse((ROOT / "training" / "groundtruth_eval.py").read_text())
    assert {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)} <= {"parser", "main"}
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.startswith(("diffstyle_lab.stats", "json", "numpy")) for m in imported), imported


@pytest.mark.slow
def test_the_default_models_summary_is_unchanged(old, monkeypatch):
    """model_summary on the shipped model (6 pairs, 4 steps; each set scored once, shared) as the old script gave it."""
    from diffstyle_lab.models import load_default_model
    pytest.importorskip("dicebear", reason="rendering faces needs the [data] extra")
    was = old("scripts/groundtruth_eval.py")
    real, memo = G.transfer_scores, {}

    def once(model, gt, configs, steps=50):
        key = (gt.content.numpy().tobytes(), tuple(configs), steps)
        memo.setdefault(key, real(model, gt, configs, steps=steps))
        return memo[key]
    monkeypatch.setattr(G, "transfer_scores", once)
    m = load_default_model()
    got = S.model_summary(m, "faces32", 6, 90_000, 4, "cmd")
    assert got == was.model_summary(m, "faces32", 6, 90_000, 4, "cmd") and len(memo) == 2
    assert all(not math.isnan(s["gap_closed"][1]) for s in got["sets"].values())


def test_the_notebook_box_reads_the_summary_strictly(tmp_path):
    from diffstyle_lab.lab import boxes
    folder = tmp_path / "m"
    folder.mkdir()
    model = types.SimpleNamespace(source=str(folder), weights_hash="0" * 64)
    (folder / "summary.json").write_text('{"schema": 1, "sets": {}, "sets": {}}')
    with pytest.raises(ValueError, match="summary.json: not valid JSON .*duplicate key 'sets'"):
        boxes.read_summary(model)
    (folder / "summary.json").write_text('{"schema": 2, "sets": {}}')
    with pytest.raises(ValueError, match="expected a schema-1 summary.*training.groundtruth_eval MODEL_DIR --summary"):
        boxes.read_summary(model)
    committed = PKG / "data" / "models" / "faces32" / "summary.json"
    assert S.read_summary_file(committed) == json.loads(committed.read_text())      # the shipped one, as it is


# ---------------------------------------------------------------------------------------------
# guards: a second engine fails here

INTERVAL_FUNCTIONS = {"bootstrap_ci", "bootstrap_indices", "paired_difference", "paired_statistic",
                      "percentile_interval", "trend", "replicates"}
# the statistics core, the engine, and the estimators that make replicates rather than verdicts
INTERVAL_HOMES = {"stats/bootstrap.py", "stats/verdicts.py", "stats/estimators.py", "evaluate/measures.py"}
VERDICT_PHRASES = ("no effect detected", "no interval", "intervals overlap", "too few for an interval", "inconclusive")
CLAIM_WORDS = {"holds", "does not hold"}


def _sources():
    """(name, source) of every module of the package and every script."""
    for p in sorted(PKG.rglob("*.py")):
        yield p.relative_to(PKG).as_posix(), p.read_text()
    for p in sorted((ROOT / "scripts").glob("*.py")):
        yield "scripts/" + p.name, p.read_text()


def _docstrings(tree) -> set[int]:
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return {id(n.body[0].value) for n in nodes if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}


def second_engines(name: str, source: str) -> list[str]:
    """What in one module makes it a second verdict engine (empty for the engine itself)."""
    if name == "stats/verdicts.py":
        return []
    tree, bad = ast.parse(source), []
    docs = _docstrings(tree)
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and name not in INTERVAL_HOMES:
            f = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            if f in INTERVAL_FUNCTIONS:
                bad.append(f"{name}:{n.lineno} computes a bootstrap interval ({f}); use stats.verdicts")
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if isinstance(t, ast.Name) and re.search(r"(^|_)MIN_N$", t.id.upper()):
                    bad.append(f"{name}:{n.lineno} defines its own minimum n ({t.id}); use stats.verdicts.MIN_N")
        elif isinstance(n, ast.arguments):
            args = n.posonlyargs + n.args
            pairs = list(zip(args[len(args) - len(n.defaults):], n.defaults)) + list(zip(n.kwonlyargs, n.kw_defaults))
            for a, d in pairs:
                if d is not None and a.arg == "min_n" and not (isinstance(d, ast.Name) and d.id == "MIN_N"):
                    bad.append(f"{name}:{d.lineno} defaults min_n to something else than MIN_N")
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            if n.value in CLAIM_WORDS or any(w in n.value for w in VERDICT_PHRASES):
                bad.append(f"{name}:{n.lineno} writes a verdict word ({n.value!r}); use stats.verdicts")
    return bad


def test_no_second_verdict_engine():
    bad = [b for name, src in _sources() for b in second_engines(name, src)]
    assert bad == []


def test_the_guard_sees_each_kind_of_second_engine():
    cases = {"from ..stats.bootstrap import bootstrap_ci\nm, lo, hi = bootstrap_ci(v)": "computes a bootstrap interval",
             "import x\nlo, hi = x.percentile_interval(r, 0.95, axis=None)": "computes a bootstrap interval",
             "MIN_N = 3": "its own minimum n", "def f(v, min_n=4):\n    pass": "defaults min_n",
             "def f(v, *, min_n: int = 2):\n    pass": "defaults min_n",
             "word = 'no effect detected' if lo < 0 < hi else 'higher'": "verdict word",
             "v = f'{x}: inconclusive'": "verdict word", "v = 'holds' if lo > 0 else 'x'": "verdict word"}
    for src, why in cases.items():
        found = second_engines("lab/new.py", src)
        assert found and why in found[0], (src, found)
    assert second_engines("lab/new.py", 'def f():\n    """Says "no effect detected" in a docstring."""') == []
    assert second_engines("lab/new.py", "from ..stats.verdicts import MIN_N\ndef f(v, min_n=MIN_N):\n    pass") == []
    assert second_engines("stats/estimators.py", "lo, hi = percentile_interval(r, 0.95)") == []

