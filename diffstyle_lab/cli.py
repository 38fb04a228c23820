"""``diffstyle-lab`` — the command line: inject, convert, notebooks, site, demo (training: ``python -m training.train``).

``inject`` (and ``demo``, which calls the same :func:`inject_files`) gives unique output names, a
content-keyed resume from ``manifest.json``, a single writer per output folder (lock file) and a
verified inversion cache: README.md ("``inject`` writes one PNG per pair …") and docs/faults.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import os
import re
import socket
import sys
import time
import typing
from pathlib import Path

from .fileio import atomic_write, file_sha256, read_json, sha256_hex, write_json  # noqa: F401  (cli.file_sha256 is public)

MANIFEST_FORMAT = 2
LOCK_NAME = ".diffstyle-lab.lock"


# ---------------------------------------------------------------------------------------------
# Injection options, generated from InjectionConfig

def config_field_docs(cls=None) -> dict[str, str]:
    """``{field: description}`` from the ``name: description`` lines of ``InjectionConfig``'s docstring
    (``a / b: …`` documents both; indented lines continue the previous entry)."""
    if cls is None:
        from .sampling import InjectionConfig as cls
    docs, names = {}, []
    for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
        m = re.match(r"^([A-Za-z_]\w*(?:\s*/\s*[A-Za-z_]\w*)*):\s+(.*)$", line)
        if m:
            names = [n.strip() for n in m.group(1).split("/")]
            for n in names:
                docs[n] = m.group(2).strip()
        elif names and line.startswith(" ") and line.strip():
            for n in names:
                docs[n] += " " + line.strip()
        else:
            names = []
    return {k: re.sub(r":\w+:`~?([^`]+)`|``([^`]+)``", lambda m: m.group(1) or m.group(2), v).rstrip(".")
            for k, v in docs.items()}


def _choices(name: str):
    from . import maths
    from .sampling import SPACINGS
    return {"method": maths.mix_methods(), "spacing": SPACINGS}.get(name)


def _plain_type(tp):
    """``int``/``float``/``str``/``bool`` for a field annotation (``X | None`` → ``X``), else None."""
    if tp in (int, float, str, bool):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 and args[0] in (int, float, str, bool) else None


def add_injection_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`~diffstyle_lab.InjectionConfig` field (``t_edit`` → ``--t-edit``), typed
    from its annotation, described by its docstring; booleans get ``--x/--no-x``. Unset options are
    absent from the parsed namespace, so the model's own defaults apply. ``--method``'s choices and help
    list the registered mixing rules (:data:`~diffstyle_lab.maths.MIX_RULES`)."""
    from . import maths
    from .sampling import InjectionConfig
    maths.document_methods()             # the docstring lists the rules registered now
    hints = typing.get_type_hints(InjectionConfig)
    docs = config_field_docs(InjectionConfig)
    g = parser.add_argument_group("injection (InjectionConfig; unset: the model's defaults, then the package's)")
    for f in dataclasses.fields(InjectionConfig):
        tp = _plain_type(hints.get(f.name))
        if tp is None:      # mask (a tensor): --mask reads a file instead
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        text = (docs.get(f.name, f.name.replace("_", " ")) + f" (default: {default})").replace("%", "%%")
        kind = {"action": argparse.BooleanOptionalAction} if tp is bool else {"type": tp, "choices": _choices(f.name)}
        g.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS, help=text, **kind)


def injection_overrides(a: argparse.Namespace) -> dict:
    """The ``InjectionConfig`` fields the user set on the command line."""
    from .sampling import InjectionConfig
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(InjectionConfig) if hasattr(a, f.name)}


def make_config(model, overrides: dict):
    """``InjectionConfig.for_model(model, **overrides)``: the package defaults, the model's, then the user's."""
    from .sampling import InjectionConfig
    return InjectionConfig.for_model(model, **overrides)


# ---------------------------------------------------------------------------------------------
# Output names, hashes, manifest, lock

def output_name(content: Path, style: Path) -> str:
    """``a.png`` × ``b.jpg`` → ``a_png__b_jpg.png``: the extensions keep ``a.png`` and ``a.jpg`` apart."""
    def token(p: Path) -> str:
        return f"{p.stem}_{p.suffix[1:]}" if p.suffix else p.name
    return f"{token(content)}__{token(style)}.png"


def output_names(contents: list[Path], styles: list[Path]) -> dict:
    """``{(content, style): name}`` for every pair; a ValueError if two pairs would share a file
    (names are compared case-insensitively, as macOS and Windows file systems do)."""
    names = {(c, s): output_name(c, s) for c in contents for s in styles}
    seen: dict[str, tuple] = {}
    for pair, n in names.items():
        other = seen.setdefault(n.casefold(), pair)
        if other != pair:
            raise ValueError(f"inputs {other[0]} + {other[1]} and {pair[0]} + {pair[1]} would both be written to "
                             f"{n}: rename one of the files so their names differ")
    return names


def read_manifest(path: Path) -> dict | None:
    """The manifest of an output folder, or None if there is none; anything that is not one is an error."""
    if not path.exists():
        return None
    fix = f"; choose another --out, or delete {path} to recompute everything"
    man = read_json(path, fix)
    for key in ("pairs", "params"):
        if not isinstance(man.get(key), dict):
            raise ValueError(f"{path}: not a diffstyle-lab manifest (no '{key}' object){fix}")
    if man.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} was written by another version of diffstyle-lab (manifest format "
                         f"{json.dumps(man.get('format', 1))[:20]}, this one reads {MANIFEST_FORMAT}){fix}")
    for name, entry in man["pairs"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: the entry of {name[:80]!r} is not an object{fix}")
    return man


def save_png(img, path: Path) -> None:
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


class OutputLockedError(OSError):
    """Another run holds the output folder."""


class FolderLock:
    """An exclusive lock on a folder: ``folder/.diffstyle-lab.lock`` holds the pid, host and start
    time and is ``flock``-ed while the run lasts, so the lock of a killed run is free again (it is
    taken over, and ``stale`` says whose it was). Where ``flock`` is unsupported, a lock file whose pid
    is alive on this host counts as held."""

    def __init__(self, folder):
        self.path = Path(folder) / LOCK_NAME
        self.fd = None
        self.stale = None

    def __enter__(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            got = _try_flock(fd)
            info = os.read(fd, 300).decode(errors="replace").strip()
            if got is None:      # no flock here: judge by the pid
                got = not _owner_alive(info)
            if not got:
                os.close(fd)
                raise OutputLockedError(f"{self.path.parent} is in use by another diffstyle-lab run "
                                        f"({info or 'lock file ' + str(self.path)}); wait for it to finish or "
                                        f"choose another --out (if no such run exists, delete {self.path})")
            try:   # the holder before us may have removed the file while we waited for it
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.stale = info or None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}"
                 .encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def _try_flock(fd):
    """True if taken, False if held by another open file, None where flock is unavailable."""
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except (ImportError, OSError):
        return None


def _owner_alive(info: str) -> bool:
    m = re.match(r"pid (\d+) on (\S+)", info)
    if not m:
        return False
    if m.group(2) != socket.gethostname():
        return True       # another machine's run: cannot check, assume it runs
    try:
        os.kill(int(m.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pair_seed(seed: int, content: Path, style: Path) -> int:
    return int(sha256_hex(f"{seed}|{content.name}|{style.name}")[:12], 16)


# ---------------------------------------------------------------------------------------------
# inject: files in, one PNG per pair out

def provider_help() -> str:
    """``--provider``'s help, from :data:`~diffstyle_lab.sampling.EPS_PROVIDERS`."""
    from .sampling import EPS_PROVIDERS
    kinds = " | ".join(f"{k.name} ({k.doc})" if k.doc else k.name for k in EPS_PROVIDERS.values())
    return f"the ε-provider that runs --model: {kinds} (default: pixel)".replace("%", "%%")


def model_params(net, provider: str) -> dict:
    """The model's part of a run's parameters (the resume key): a pixel model's weights hash as ever; any
    other provider's name and :func:`~diffstyle_lab.cache.provider_digest`."""
    from .cache import provider_digest
    from .sampling import PixelEps
    if type(net) is PixelEps:
        return {"model": net.model.weights_hash}
    return {"model": provider_digest(net), "provider": provider}


def inject_files(content, style, out, *, model=None, device=None, overrides: dict | None = None, mask=None,
                 fit: str = "crop", cache=None, batch: int = 8, quiet: bool = False, echo=print,
                 provider: str = "pixel") -> dict:
    """Content injection for every content × style file pair into the folder ``out`` (see the
    module docstring for what it guarantees). ``model``: a hub id or folder (None: the default model);
    ``provider``: the ε-provider kind that runs it (:data:`~diffstyle_lab.sampling.EPS_PROVIDERS`);
    ``overrides``: ``InjectionConfig`` fields (the rest from the model's defaults); ``mask``: an image
    file; ``cache``: a folder, None (the default cache folder) or ``"off"``; ``batch``: pairs per
    U-Net batch. Returns ``{"out", "new", "total", "skipped"}``."""
    import torch

    from .cache import InversionCache, invert_in_batches
    from .devices import pick_device
    from .images import list_images, load_image, load_mask
    from .sampling import inject, load_provider

    # -- everything that can be wrong is checked before the output folder is touched ------------
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"--batch {batch}: must be a whole number ≥ 1 (pairs per U-Net batch)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder (it is created if missing)")
    dev = pick_device(device, "--device")
    contents, styles = list_images(content), list_images(style)
    names = output_names(contents, styles)
    net = load_provider(provider, model, dev)
    m, size = net.model, getattr(net, "image_size", None)
    if size is None:
        raise ValueError(f"--provider {provider}: its ε-provider has no image_size, so images cannot be loaded "
                         "for it; give the provider an image_size")
    cx = {p: load_image(p, size, fit) for p in contents}       # a broken file stops the run here
    sx = {p: load_image(p, size, fit) for p in styles}
    digest = {p: file_sha256(p) for p in {*contents, *styles}}
    mask_t = load_mask(mask) if mask else None
    cfg = make_config(m, {**(overrides or {}), "mask": mask_t})
    inversion = {"steps": cfg.inversion_steps, "spacing": cfg.spacing, "record_last": cfg.record_last}
    injection = cfg.to_dict()
    injection["mask"] = None if mask_t is None else sha256_hex(mask_t.numpy().tobytes())
    params = {**model_params(net, provider), "injection": injection, "inversion": inversion, "fit": fit,
              "batch": batch}
    compute = {"device": dev, "threads": torch.get_num_threads(), "torch": torch.__version__}

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with FolderLock(out) as lock:
            if lock.stale and not quiet:
                echo(f"note: took over the lock of a run that ended without releasing it ({lock.stale})")
            for leftover in [*out.glob(".*.tmp"), *out.glob("*.tmp.png")]:   # from killed runs
                leftover.unlink()
            man_path = out / "manifest.json"
            old = _resumable_manifest(out, man_path, params)
            done = dict(old["pairs"]) if old is not None else {}
            todo = _pairs_to_make(out, names, done, digest, quiet, echo)
            if old is not None and todo and old.get("compute", compute) != compute and not quiet:
                echo(f"note: earlier pairs were computed with {old.get('compute')}, new ones with {compute}; "
                     "they may differ from an uninterrupted run in the last grey level")

            # -- inversions of the inputs the remaining pairs need, at exactly `batch` images a call
            run_inversion = invert_in_batches if cache == "off" else InversionCache(cache).invert
            invert = functools.partial(_invert_inputs, net, run_inversion, dict(inversion, batch=batch))
            c_at, c_inv = invert(cx, {c for c, _ in todo})
            s_at, s_inv = invert(sx, {s for _, s in todo})

            from tqdm.auto import tqdm
            for k in tqdm(range(0, len(todo), batch), desc="pairs", disable=quiet):
                chunk = todo[k:k + batch]
                padded = chunk + [chunk[-1]] * (batch - len(chunk))   # every U-Net call sees `batch` pairs
                seeds = [_pair_seed(cfg.seed, c, s) for c, s in padded]
                r = inject(net, c_inv.select([c_at[c] for c, _ in padded]), s_inv.select([s_at[s] for _, s in padded]),
                           cfg, inversion_steps=inversion["steps"], progress=False, sample_seeds=seeds)
                for (c, s), img, sd in zip(chunk, r.to_pil(), seeds):
                    save_png(img, out / names[c, s])
                    written += 1
                    done[names[c, s]] = {"content": str(c), "content_sha256": digest[c], "style": str(s),
                                         "style_sha256": digest[s], "seed": sd,
                                         "sha256": file_sha256(out / names[c, s]), **compute}
                run = {k2: v for k2, v in r.manifest.items() if k2 not in ("pair_index", "seconds")}
                man = {"format": MANIFEST_FORMAT, "params": params, "compute": (old or {}).get("compute", compute),
                       "pairs": done, "run": run}
                write_json(man_path, man)

            _save_grid(out, names, cx, sx, size)
    except BaseException:
        if created and written == 0:   # nothing made: leave no empty folder behind
            for f in out.iterdir():
                if f.name == LOCK_NAME or f.name.endswith(".tmp"):
                    f.unlink()
            try:
                out.rmdir()
            except OSError:
                pass
        raise
    total = len(names)
    if not quiet:
        echo(f"{len(todo)} new pair(s), {total} in all -> {out}/ (grid.png, manifest.json)")
    return {"out": str(out), "new": len(todo), "total": total, "skipped": total - len(todo)}


def _resumable_manifest(out: Path, man_path: Path, params: dict) -> dict | None:
    """The folder's manifest (None: a fresh folder), refused when it was made with other parameters."""
    old = read_manifest(man_path)
    if old is not None and old["params"] != params:
        changed = _changed(old["params"], params)
        hint = (" (--batch changes results in the last grey level: rerun with "
                f"--batch {old['params'].get('batch')} to resume)" if changed == ["batch"] else "")
        raise ValueError(f"{out} holds results made with other parameters (differs in: {', '.join(changed)})"
                         f"{hint}; choose another --out, or delete {man_path} to recompute everything")
    return old


def _pairs_to_make(out: Path, names: dict, done: dict, digest: dict, quiet: bool, echo) -> list:
    """The (content, style) pairs whose output is missing or damaged; pairs recorded from other files of the same
    names stop the run."""
    todo, stale, redo = [], [], []
    for (c, s), name in names.items():
        entry, path = done.get(name), out / name
        if entry is None or not path.exists():
            todo.append((c, s))
        elif (entry.get("content_sha256"), entry.get("style_sha256")) != (digest[c], digest[s]):
            stale.append(name)
        elif file_sha256(path) != entry.get("sha256"):
            redo.append(name)
            todo.append((c, s))
    if stale:
        raise ValueError(f"{out} holds {len(stale)} result(s) made from other files with the same names "
                         f"(e.g. {stale[0]}); choose another --out, or delete those outputs to recompute them")
    if redo and not quiet:
        echo(f"note: {len(redo)} output(s) no longer match their recorded checksum and are recomputed "
             f"(e.g. {redo[0]})")
    return todo


def _invert_inputs(net, run_inversion, options: dict, images: dict, needed):
    """``({path: row}, Inversion)`` of the ``images`` (path → image) in ``needed``, in the provider's space,
    at exactly ``options["batch"]`` images a U-Net call; ``({}, None)`` when none is needed."""
    import torch
    from .sampling import provider_input
    keys = [p for p in images if p in needed]
    if not keys:
        return {}, None
    x = provider_input(net, torch.cat([images[p] for p in keys]))
    return {p: i for i, p in enumerate(keys)}, run_inversion(net, x, **options, progress=False)


def _save_grid(out: Path, names: dict, cx: dict, sx: dict, size: int) -> None:
    """grid.png: rows = content, columns = style, with the inputs on the edges; small models' images upscaled
    (nearest neighbour) to ≥ 128 px a cell, labelled with the file names."""
    import torch
    from .images import grid, load_image
    contents, styles = list(cx), list(sx)
    rows = [torch.cat([torch.ones(1, 3, size, size)] + [sx[s] for s in styles])]
    for c in contents:
        rows.append(torch.cat([cx[c]] + [load_image(out / names[c, s], size) for s in styles]))
    save_png(grid(torch.cat(rows), nrow=len(styles) + 1, scale=None,
                  row_labels=["(style)"] + [p.name for p in contents],
                  col_labels=["(content)"] + [p.name for p in styles]), out / "grid.png")


def _changed(old: dict, new: dict) -> list[str]:
    """Names of the parameters that differ (nested dicts by their keys)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b)
        elif a != b:
            out.append(k)
    return out


def cmd_inject(a) -> int:
    inject_files(a.content, a.style, a.out, model=a.model, device=a.device, overrides=injection_overrides(a),
                 mask=a.mask_file, fit=a.fit, cache=a.cache, batch=a.batch, quiet=a.quiet, provider=a.provider)
    return 0


def cmd_demo(a) -> int:
    from .models import data_path
    samples = data_path("samples")
    inject_files(samples / "content", samples / "style", a.out, model=a.model, device=a.device, cache="off",
                 quiet=a.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .devices import DEVICE_CHOICES
    from .sampling import EPS_PROVIDERS
    p = argparse.ArgumentParser(prog="diffstyle-lab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    device_help = (f"{' | '.join(DEVICE_CHOICES)} (or cuda:N); default: $DIFFSTYLE_LAB_DEVICE, else auto "
                   "(cuda, then mps, then cpu)")

    q = sub.add_parser("inject", help="content injection for files or folders (all content × style pairs)")
    q.add_argument("--content", required=True, help="image file or folder of images (content)")
    q.add_argument("--style", required=True, help="image file or folder of images (style)")
    q.add_argument("--out", required=True, help="output folder (one PNG per pair, grid.png, manifest.json)")
    q.add_argument("--mask", dest="mask_file", help="grey-scale mask image (white = inject), any size")
    q.add_argument("--model", help="hub id or local diffusers folder (default: the embedded face model)")
    q.add_argument("--provider", default="pixel", choices=tuple(EPS_PROVIDERS), help=provider_help())
    q.add_argument("--device", default=None, help=device_help)
    q.add_argument("--fit", default="crop", choices=["crop", "pad"], help="non-square images: centre-crop or pad")
    q.add_argument("--cache", default=None, help="inversion cache folder, or 'off' (default: ~/.cache/diffstyle_lab)")
    q.add_argument("--batch", type=int, default=8, help="pairs per U-Net batch (default: 8; recorded: a resume "
                   "keeps it)")
    q.add_argument("--quiet", action="store_true")
    add_injection_options(q)
    q.set_defaults(fn=cmd_inject)

    d = sub.add_parser("demo", help="style transfer of the shipped sample faces with the model's defaults")
    d.add_argument("--out", default="outputs/demo")
    d.add_argument("--model", default=None)
    d.add_argument("--device", default=None, help=device_help)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(fn=cmd_demo)

    from .backends.convert import register as _register_convert
    _register_convert(sub)

    sub.add_parser("notebooks", help="execute every notebook with papermill into outputs/ (ipynb + HTML); "
                   "`diffstyle-lab notebooks --help` lists its options")
    sub.add_parser("site", help="build the course site (static HTML, offline) from the executed notebooks; "
                   "`diffstyle-lab site --help` lists its options")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["notebooks"]:          # everything after it belongs to the papermill runner
        from .lab.run_notebooks import main as run_notebooks
        return run_notebooks(argv[1:])
    if argv[:1] == ["site"]:
        from .lab.site import main as build_site
        return build_site(argv[1:])
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except (ValueError, OSError, FloatingPointError) as e:
        from .images import one_line      # one line, whatever the file names hold
        print(f"diffstyle-lab {a.cmd}: error: {one_line(str(e) or type(e).__name__)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
