"""Test helpers shared by more than one test module."""

import numpy as np


def random_transfers(rng: np.random.Generator, stores: int, skus: int) -> dict[str, np.ndarray]:
    """Up to five store -> store transfer lines of random SKUs, stores and units (0-29): what a
    fuzzing policy sends the twin (a line to its own store or of 0 units included)."""
    n = int(rng.integers(0, 6))
    return {
        "sku": rng.integers(0, skus, n),
        "src": rng.integers(0, stores, n),
        "dest": rng.integers(0, stores, n),
        "units": rng.integers(0, 30, n),
    }
