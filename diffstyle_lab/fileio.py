"""Files: the one atomic write, the file and tensor digests, strict JSON reading.

Every writer in the package and its tooling goes through :func:`atomic_write` (or one of the small wrappers
below it): the bytes go to a per-process temporary file beside the target, which is then renamed into place, so
a reader never sees half a file and two processes writing the same target never share a temporary. Every hash
goes through :func:`file_sha256`, :func:`sha256_hex` or :func:`tensor_digest`, and JSON that a user, a run or a
cache hands the package is read with :func:`read_json`, which names the file and the fix in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

__all__ = ["atomic_write", "write_bytes", "write_text", "write_json", "write_npz", "write_safetensors",
           "atomic_dir", "file_sha256", "sha256_hex", "tensor_bytes", "tensor_digest", "read_json"]


_UMASK = os.umask(0o022)                         # read the process umask once (umask can only be read by setting it)
os.umask(_UMASK)


# -- writing ---------------------------------------------------------------------------------------------------------
def atomic_write(path, write) -> None:
    """``write(tmp)`` to a per-process temporary file next to ``path`` (suffix ``.tmp``, so no writer guesses a
    format from it), then rename it to ``path``; on any error the temporary is removed and ``path`` is untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)           # mkstemp makes 0600; give the file what open() would have
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_bytes(path, data: bytes) -> None:
    """``data`` to ``path``, atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(path, text: str) -> None:
    """``text`` (UTF-8) to ``path``, atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj, indent: int | None = 1, **dumps) -> None:
    """``json.dumps(obj, indent=indent, **dumps)`` to ``path``, atomically."""
    write_text(path, json.dumps(obj, indent=indent, **dumps))


def write_npz(path, compressed: bool = False, **arrays) -> None:
    """``numpy.savez[_compressed]`` to ``path``, atomically (through a file object: numpy adds no suffix)."""
    import numpy as np
    save = np.savez_compressed if compressed else np.savez

    def write(tmp):
        with open(tmp, "wb") as f:
            save(f, **arrays)
    atomic_write(path, write)


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """``safetensors.torch.save_file`` to ``path``, atomically."""
    from safetensors.torch import save_file
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def atomic_dir(path, build) -> None:
    """``build(tmp_dir)`` fills a fresh temporary folder beside ``path``, which then takes the place of ``path``
    (an existing folder there is removed first: a reader sees the old folder, nothing, or the new one, never a
    half-built one). On any error the temporary folder is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        build(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# -- digests ---------------------------------------------------------------------------------------------------------
def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_hex(*parts) -> str:
    """SHA-256 of the concatenated ``parts`` (bytes; a string is taken as UTF-8; an iterable of parts is
    flattened, so a generator can stream large inputs)."""
    h = hashlib.sha256()

    def feed(x):
        if isinstance(x, str):
            h.update(x.encode("utf-8"))
        elif isinstance(x, (bytes, bytearray, memoryview)):
            h.update(x)
        else:
            for y in x:
                feed(y)
    feed(parts)
    return h.hexdigest()


def tensor_bytes(v) -> bytes:
    """The raw bytes of a tensor (any device, layout or dtype; empty for an empty tensor)."""
    v = (v if torch.is_tensor(v) else torch.as_tensor(v)).detach().to("cpu").contiguous()
    return v.view(torch.uint8).numpy().tobytes() if v.numel() else b""


def tensor_digest(tensors: dict) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of ``tensors`` (in name order): equal only for equal
    tensors of equal dtype, whatever their device or memory layout."""
    def parts():
        for name in sorted(tensors):
            v = torch.as_tensor(tensors[name])
            yield f"{name}|{tuple(v.shape)}|{v.dtype}|"
            yield tensor_bytes(v)
    return sha256_hex(parts())


# -- reading ---------------------------------------------------------------------------------------------------------
def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_json(path, fix: str = "", expect: type | None = dict, allow_nan: bool = True):
    """The JSON in ``path``, strictly: UTF-8, valid JSON, no duplicate keys, no ``NaN``/``Infinity`` unless
    ``allow_nan``, and a top level of type ``expect`` (default an object; ``None``: anything). Anything else
    raises one line naming the file, followed by ``fix`` (e.g. ``"; delete it to recompute"``): ``ValueError``,
    or ``FileNotFoundError`` for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file{fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates,
                          **({} if allow_nan else {"parse_constant": _no_constant}))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}){fix}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file (expected JSON){fix}") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to read{fix}") from None
    except ValueError as e:                                   # a duplicate key or a NaN where none is allowed
        raise ValueError(f"{path}: not valid JSON ({e}){fix}") from None
    if expect is not None and not isinstance(data, expect):
        raise ValueError(f"{path}: holds a JSON {type(data).__name__}, expected {_json_name(expect)}{fix}")
    return data


def _json_name(t) -> str:
    return {dict: "an object {...}", list: "an array [...]"}.get(t, f"a {getattr(t, '__name__', t)}")
