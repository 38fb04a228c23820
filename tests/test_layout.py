"""The package's architecture: no import circles, no reaching into privates, a light core, and the
extension points (mixing rules, ε-providers, hook sites) usable from outside the package."""
import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import diffstyle_lab as dl
from diffstyle_lab import hooks, maths, sampling
from diffstyle_lab.evaluate import plan
from diffstyle_lab.stats import trajectory_norms

PKG = Path(dl.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(name: str, path: Path, modules, module_level_only: bool):
    """(target module, imported names, line) of each import in ``path``; module-level only if asked."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if module_level_only:     # statements at module level, also inside if/try blocks there
        todo, nodes = list(tree.body), []
        while todo:
            n = todo.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            nodes.append(n)
            todo += [c for c in ast.iter_child_nodes(n) if isinstance(c, ast.stmt)]
    for n in nodes:
        if isinstance(n, ast.Import):
            for a in n.names:
                if a.name.split(".")[0] == "diffstyle_lab":
                    yield a.name, [], n.lineno
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = pkg.split(".")[: len(pkg.split(".")) - n.level + 1]
                mod = ".".join(base + ([n.module] if n.module else []))
            else:
                mod = n.module or ""
            if mod.split(".")[0] != "diffstyle_lab":
                continue
            names = [a.name for a in n.names]
            subs = [f"{mod}.{a}" for a in names if f"{mod}.{a}" in modules]
            rest = [a for a in names if f"{mod}.{a}" not in modules]
            if rest or not subs:          # `from . import maths` imports the module maths, not the package
                yield mod, rest, n.lineno
            for s in subs:
                yield s, [], n.lineno


def _graph(module_level_only=True):
    modules = _modules()
    return {m: {t for t, _, _ in _imports(m, p, modules, module_level_only) if t in modules and t != m}
            for m, p in modules.items()}


def _cycles(graph):
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_module_level():
    graph = _graph()
    assert "diffstyle_lab.sampling" in graph["diffstyle_lab.cache"]      # the graph sees relative imports
    assert "diffstyle_lab.stats.bootstrap" in graph["diffstyle_lab.evaluate.claims"]
    assert _cycles(graph) == []


def test_models_and_sampling_do_not_import_each_other_and_the_cache_wraps_the_sampler():
    graph = _graph(module_level_only=False)
    assert "diffstyle_lab.sampling" not in graph["diffstyle_lab.models"]
    assert "diffstyle_lab.cache" not in graph["diffstyle_lab.sampling"]
    assert "diffstyle_lab.config" in graph["diffstyle_lab.models"] and "diffstyle_lab.config" in graph["diffstyle_lab.sampling"]


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    bad = [f"{m}:{line} imports {n} from {t}" for m, p in modules.items()
           for t, names, line in _imports(m, p, modules, module_level_only=False) for n in names
           if n.startswith("_") and not n.startswith("__")]
    assert bad == []


def test_at_most_twelve_modules_at_the_top_level():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 12, top


def test_importing_the_package_and_injecting_loads_no_heavy_library():
    code = ("import sys, torch\ntorch.set_num_threads(1)\nimport diffstyle_lab as dl\n"
            "m = dl.tiny_model()\nx = torch.zeros(1, 3, 16, 16)\n"
            "dl.inject(m, x, x, inversion_steps=2, steps=2, t_edit=0, t_boost=0, progress=False)\n"
            "heavy = ('pandas', 'matplotlib', 'dask', 'papermill', 'ipywidgets')\n"
            "print(sorted({k.split('.')[0] for k in sys.modules} & set(heavy)))\n"
            "print(dl.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]", out[0]
    assert out[1] == str(PKG / "__init__.py")        # this tree, not another install
    # the check can fail: importing a heavy module is seen
    out = subprocess.run([sys.executable, "-c", "import sys, diffstyle_lab.stats.estimators, pandas; "
                          "print('pandas' in sys.modules)"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


# ---------------------------------------------------------------------------------------------
# extension points, each used from this file alone

def _halfway(h, hc, gamma, region):
    return 0.5 * (h + hc)


def test_a_new_mixing_rule_reaches_the_config_the_plan_and_the_statistics(monkeypatch):
    monkeypatch.setattr(maths, "MIX_RULES", dict(maths.MIX_RULES))
    with pytest.raises(ValueError, match="choose one of"):
        dl.InjectionConfig(method="halfway").validate()
    maths.register_mix_rule(maths.MixRule("halfway", _halfway, "half", "halfway", uses_gamma=False))
    with pytest.raises(ValueError, match="exists already"):
        maths.register_mix_rule(maths.MixRule("halfway", _halfway, "half", "halfway"))
    cfg = dl.InjectionConfig(method="halfway").validate()
    h, hc = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)
    assert torch.equal(maths.mix_h(h, hc, 0.3, "halfway"), 0.5 * (h + hc))
    assert torch.equal(sampling.mix_for_config(cfg, h, hc), 0.5 * (h + hc))
    rows = {e.x: e.setting for e in plan.ablation()}
    assert rows["halfway"].method == "halfway" and "halfway" in plan.ablation_names()
    assert rows["halfway"].label.startswith("half_te") and rows["halfway"].key()["gamma"] is None
    assert "halfway" in {s.method for s in trajectory_norms.alt_settings()}
    m = dl.tiny_model()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = dl.inject(m, x, x.flip(0), method="halfway", inversion_steps=3, steps=3, t_edit=0, t_boost=0, progress=False)
    assert out.manifest["injection"]["method"] == "halfway" and torch.isfinite(out.images).all()


class _ScaledEps:
    """An ε-provider defined here: a pixel model's ε with h replaced by 0 everywhere (a provider that
    changes what the sampler sees), delegating the rest."""

    label = "test "

    def __init__(self, model):
        self.inner = sampling.PixelEps(model)
        self.model = model
        self.calls = 0

    def check_x0(self, x0, name="images"):
        return self.inner.check_x0(x0, name)

    def check_x_T(self, x_T, name="x_T"):
        return self.inner.check_x_T(x_T, name)

    def check_content(self, content):
        pass

    def eps(self, x, t, record=False):
        self.calls += 1
        with self.model.hooked.hooks(h=torch.zeros_like):
            return self.inner.eps(x, t, record)

    def asymmetric(self, x, t, edit):
        raise AssertionError("not used by plain generation")

    def invert_eps(self, x, t):
        eps, h, g = self.eps(x, t, record=True)
        return eps, h, h, g

    def content_h(self, content, t):
        return content.h_at(t)


def test_a_new_eps_provider_runs_in_the_samplers():
    m = dl.tiny_model()
    assert isinstance(sampling.PixelEps(m), sampling.EpsProvider) and not isinstance(m, sampling.EpsProvider)
    net = _ScaledEps(m)
    assert isinstance(net, sampling.EpsProvider)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    inv = dl.ddim_invert(net, x, steps=3, progress=False)
    assert net.calls == 3 and inv.h.abs().sum() == 0          # the provider's ε (h zeroed) was used
    plain = dl.ddim_invert(m, x, steps=3, progress=False)
    assert not torch.equal(inv.x_T, plain.x_T)
    out = dl.reverse(net, inv.x_T, None, dl.InjectionConfig(steps=3, t_edit=0, t_boost=0), progress=False)
    assert out.shape == x.shape and net.calls == 3 + 3


def test_a_new_hook_site_is_one_entry(monkeypatch):
    monkeypatch.setitem(hooks.HOOK_SITES, "d0", hooks.HookSite("conv_in", "output", "the first convolution"))
    m = dl.tiny_model()
    x = torch.zeros(1, 3, 16, 16)
    with m.hooked.record("d0", "h") as rec:
        m.hooked.eps(x, 10)
    assert set(rec) == {"d0", "h"} and rec["d0"].shape[0] == 1
    with m.hooked.hooks(d0=lambda t: t * 0):
        changed = m.hooked.eps(x, 10)
    assert not torch.equal(changed, m.hooked.eps(x, 10))
    assert not m.hooked.has_hooks()
    with pytest.raises(ValueError, match="unknown hook point"):
        with m.hooked.hooks(nowhere=lambda t: t):
            pass


def test_the_readme_layout_table_matches_the_tree():
    root = PKG.parent
    text = (root / "README.md").read_text()
    table = text[text.index("| path | what |"):].split("\n\n")[0]
    named = set()
    for row in table.splitlines()[2:]:
        first = row.split(" | ")[0].strip("| ")
        paths = [p.strip("`") for p in first.split(", ")]
        base = Path(paths[0].split(" ")[0].strip("`")).parent
        for p in paths:
            p = p.split(" ")[0].strip("`")
            path = root / (p if "/" in p else base / p)
            assert path.exists(), f"README's layout names {p}, which is not in the tree"
            named.add(path.resolve())
    for p in list(PKG.glob("*.py")) + [d for d in PKG.iterdir() if (d / "__init__.py").is_file()]:
        if p.name != "__init__.py":
            assert p.resolve() in named, f"README's layout table does not name {p.relative_to(root)}"
    code_dirs = {p.parent.relative_to(root).parts[0] for p in root.glob("*/*.py")} - {"build", ".venv"}
    for d in sorted(code_dirs):
        assert (root / d).resolve() in named, f"README's layout table does not name the folder {d}/"


# -- sizes, and the product apart from the release tooling and the research ---------------------------------------
MAX_FILE_LINES, MAX_FUNCTION_LINES = 700, 100
CODE_TREES = ("diffstyle_lab", "scripts", "training", "research", "benchmarks")


def _too_long(path: Path) -> list[str]:
    src = path.read_text()
    out = [f"{path}: {src.count(chr(10))} lines"] if src.count("\n") > MAX_FILE_LINES else []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                out.append(f"{path}:{node.lineno}: {node.name}() is {n} lines")
    return out


def test_the_size_check_sees_a_long_function(tmp_path):
    f = tmp_path / "long.py"
    f.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES + "\n\ndef g():\n    return 1\n")
    assert [m.split(": ", 1)[1] for m in _too_long(f)] == [f"f() is {MAX_FUNCTION_LINES + 1} lines"]


def test_no_file_over_700_lines_and_no_function_over_100():
    root = PKG.parent
    found = [m for t in CODE_TREES for f in sorted((root / t).rglob("*.py")) if "course" not in f.parts
             for m in _too_long(f)]
    assert not found, "split these:\n" + "\n".join(found)


def test_the_package_never_imports_the_release_tooling_or_the_research():
    """training/, research/ and scripts/ sit beside the package (as diffusers' examples/ beside src/): the
    package must run from a wheel, where they do not exist."""
    bad = []
    for f in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            bad += [f"{f.relative_to(PKG.parent)}:{node.lineno}: {n}" for n in names
                    if n.split(".")[0] in ("training", "research", "scripts")]
    assert not bad, bad
    include = (PKG.parent / "pyproject.toml").read_text().split("[tool.setuptools.packages.find]")[1]
    assert 'include = ["diffstyle_lab*"]' in include.split("\n\n")[0]      # only the package is installed
