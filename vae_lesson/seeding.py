"""Reproducibility: one call that fixes every source of randomness the course uses."""
from __future__ import annotations

import random

import numpy as np
import torch

DEFAULT_SEED = 0


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
