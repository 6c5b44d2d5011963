"""Saving and loading trained models safely.

A checkpoint is a plain dict {"format", "config", "state_dict"} written with ``torch.save``:
the model's state_dict (tensors only) plus a small config of numbers and strings from which
the model is rebuilt. Loading uses ``torch.load(..., weights_only=True)``, which refuses to
run code from the file, and every failure (missing, corrupt, foreign, wrong sizes) is a clear
error. Writes are atomic: a temporary file in the same folder, then a rename, so an
interrupted save never leaves half a checkpoint behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two kernels may then train the same model twice
    fcntl = None

import torch
from torch import nn

FORMAT = "vae-lesson checkpoint v1"
CACHE_ENV = "VAE_LESSON_CACHE"


def cache_dir() -> Path:
    """Where trained models are kept: $VAE_LESSON_CACHE if set, else ~/.cache/vae-lesson
    (never the repository, which may be read-only on a JupyterHub)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vae-lesson"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def exclusive(path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``.lock while the block runs: two kernels (a class on one
    JupyterHub, two test workers) that both need the same cached model wait for each other, so
    the model is trained once and the second loads what the first saved. In a cache this user may only read
    (the instructor filled it), the lock is taken on the existing lock file, or not at all when there is none."""
    if fcntl is None:
        yield
        return
    lock = Path(f"{path}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a")
    except OSError:  # a shared cache this user may only read (a class's hub): its existing lock, or none
        try:
            handle = open(lock)  # flock works on a file opened for reading
        except OSError:
            yield  # nobody can write here through this user: nothing to wait for
            return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_checkpoint(path, model: nn.Module, config: dict) -> Path:
    """Write {"format", "config", "state_dict"} to ``path`` atomically; returns the path.
    ``config`` holds what rebuilding the model needs (sizes, names), as numbers and strings."""
    path = Path(path)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of numbers and strings, got {type(config).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": config,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path, build: Callable[[dict], nn.Module]) -> tuple[nn.Module, dict]:
    """Load a checkpoint written by ``save_checkpoint``: ``build(config)`` makes the model, then
    its parameters are loaded. Returns (model, config). Raises FileNotFoundError for a missing
    file and ValueError for a corrupt, foreign or mismatched one, saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train the model first (or check the path)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]}). "
                         "It may be corrupt or from another program: delete it and train again.") from exc
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT and "state_dict" in payload):
        raise ValueError(f"{path} is not a vae-lesson checkpoint (expected a dict with format {FORMAT!r}); "
                         "delete it and train again")
    config = payload.get("config", {})
    model = build(config)
    expected = model.state_dict()
    got = payload["state_dict"]
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}; "
                         "it was saved from a different architecture")
    for name, tensor in got.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(f"{path} does not fit this model: {name} has shape {tuple(tensor.shape)} in the file "
                             f"but {tuple(expected[name].shape)} in the model (config {config})")
    model.load_state_dict(got)
    return model, config
