"""Reproducibility: one call that fixes every source of randomness the course uses."""
from __future__ import annotations

import functools
import os
import random
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch

DEFAULT_SEED = 0
THREADS_VARIABLE = "VAE_LESSON_THREADS"
F = TypeVar("F", bound=Callable)


def seed_everything(seed: int = DEFAULT_SEED, threads: int = 1) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch, and fix torch's CPU thread count.

    One thread is both the fastest setting for the course's small models on a laptop and
    the one whose results do not depend on how work is split between cores.

    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return torch.Generator().manual_seed(seed)


def training_thread_count() -> int:
    """How many CPU threads the course's training uses: 1, unless the environment variable
    ``VAE_LESSON_THREADS`` says otherwise (a positive integer).

    Its models are small MLPs on 8x8 digits: split over threads, each step's matrices are too small
    to share out, and on a busy laptop (a browser, a video call, a second notebook) two threads per
    process fight for the same two cores. Measured on this project's 2-core machine with both cores
    busy: one thread trained at 19-133 steps per second, torch's default of two at 2-7."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_VARIABLE} must be a positive integer (the CPU threads for training), got {value!r}")
    return int(value)


@contextmanager
def training_threads() -> Iterator[int]:
    """Run the block with torch's CPU thread count set to ``training_thread_count()``, and put back
    what it was afterwards (whatever the entry point: a notebook, the app, a script, the benchmark)."""
    before, wanted = torch.get_num_threads(), training_thread_count()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


def with_training_threads(fn: F) -> F:
    """Decorator: ``fn`` runs under ``training_threads()``."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with training_threads():
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
